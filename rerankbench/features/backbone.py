"""ResNet-50 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) in plain
torch, for feature extraction (torchvision cannot be imported with the CPU build of torch used
here).

Its parameter names are torchvision's (conv1, bn1, layer1..layer4 of Bottleneck blocks with
conv1..conv3, bn1..bn3 and downsample.0/.1), which fast-reid's and torchreid's ResNet-50 share
under their prefixes (checkpoint.py reads them). The stride sits on each block's 3x3 conv
(ResNet v1.5, as in all three). last_stride=1 keeps layer4 at the resolution of layer3, as in
fast-reid's BoT baseline (Luo et al., "Bag of Tricks and a Strong Baseline for Deep Person
Re-identification", CVPRW 2019).

The output is global average pooling of blocks C3, C4 and C5 (layer2, layer3, layer4: 512,
1024 and 2048-d): C5 is the embedding, C3 and C4 feed ACP's multi-block fusion.
"""
from __future__ import annotations

import torch
from torch import nn

BLOCKS = (3, 4, 6, 3)  # Bottleneck blocks in layer1..layer4
WIDTHS = (64, 128, 256, 512)  # their inner widths; outputs are 4x these


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (with the stride), 1x1 expand by 4, plus the (projected) input."""

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = 4 * width
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


class ResNet50(nn.Module):
    def __init__(self, last_stride: int = 1):
        super().__init__()
        self.last_stride = last_stride
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (blocks, width, stride) in enumerate(zip(BLOCKS, WIDTHS, (1, 2, 2, last_stride)), 1):
            layer = [Bottleneck(in_channels, width, stride)] + [Bottleneck(4 * width, width) for _ in range(blocks - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*layer))
            in_channels = 4 * width
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pooled blocks of a normalised image batch (B x 3 x H x W): {"c3", "c4", "c5"}, each B x C."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return {name: block.mean(dim=(2, 3)) for name, block in (("c3", c3), ("c4", c4), ("c5", c5))}
