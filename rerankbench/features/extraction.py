"""Features of image files from a backbone: PIL preprocessing, batches, optional flip averaging.

Preprocessing, as fast-reid's test transform: the image as RGB, resized to (height, width)
with bicubic interpolation, scaled to [0, 1] and normalised with the ImageNet mean and
standard deviation (fast-reid's pixel_mean / pixel_std are the same on the 0-255 scale).
With flip, each block is the mean of the image's and its mirror image's features.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..runtime.device import resolve_device
from ..runtime.progress import progress
from .released import LayoutError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Extraction:
    """How features are extracted: the checkpoint and the options that change them (all but
    batch_size, allow_partial and device are part of the feature cache's key).

    image_size: (height, width), or None for the dataset's own (256 x 128 persons, 256 x 256
    vehicles). allow_partial: use a checkpoint that does not fit the backbone exactly.
    """

    checkpoint: str
    last_stride: int = 1
    flip: bool = False
    image_size: tuple[int, int] | None = None
    batch_size: int = 64
    allow_partial: bool = False
    device: str = "auto"

    def preprocessing(self, default_size: tuple[int, int]) -> dict:
        """Everything about the input that changes the features, as stored in records and cache keys."""
        height, width = self.image_size or default_size
        return {"height": height, "width": width, "interpolation": "bicubic", "mean": MEAN, "std": STD,
                "flip": self.flip, "last_stride": self.last_stride}


def load_image(path: Path, height: int, width: int) -> np.ndarray:
    """The image as a height x width x 3 uint8 RGB array."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize((width, height), Image.BICUBIC))
    except (OSError, ValueError) as error:
        raise LayoutError(f"{path}: not a readable image ({error})") from None


def extract(model: torch.nn.Module, paths: list[Path], preprocessing: dict, batch_size: int = 64,
            device: str = "auto", show_progress: bool = False, label: str = "extracting") -> dict[str, np.ndarray]:
    """The model's pooled blocks ({"c3", "c4", "c5"}, each n x C float32) for the images."""
    device = resolve_device(device)
    model = model.to(device).eval()
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    size = preprocessing["height"], preprocessing["width"]
    parts: dict[str, list[np.ndarray]] = {}
    for start in progress(range(0, len(paths), batch_size), label, show_progress):
        batch = np.stack([load_image(path, *size) for path in paths[start:start + batch_size]])
        x = torch.from_numpy(batch).to(device).permute(0, 3, 1, 2).float().div_(255).sub_(mean).div_(std)
        with torch.inference_mode():
            blocks = model(x)
            if preprocessing["flip"]:
                blocks = {name: (block + flipped) / 2 for (name, block), flipped in
                          zip(blocks.items(), model(x.flip(3)).values())}
        for name, block in blocks.items():
            parts.setdefault(name, []).append(block.float().cpu().numpy())
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}
