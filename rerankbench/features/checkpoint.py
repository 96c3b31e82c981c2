"""Loading a trained ResNet-50 checkpoint into backbone.ResNet50, from any of three key layouts:

- torchvision: the state dict itself, keys conv1.weight, layer1.0.conv1.weight, ..., fc.*;
- fast-reid: {"model": state dict, ...}, the backbone under "backbone.", its BNNeck and
  classifier under "heads.", and the input normalisation as pixel_mean / pixel_std;
- torchreid: {"state_dict": state dict, "epoch": ...}, keys as torchvision's, "module."
  in front when it was saved from nn.DataParallel, the classifier as classifier.*.

Head keys (classifiers, BNNeck, normalisation buffers) are set aside: the embedding is the
pooled C5. Backbone keys that are missing, unexpected or of the wrong shape refuse the
checkpoint unless allow_partial, and are reported either way. The file is read with
torch.load(weights_only=True): tensors and plain containers only, never arbitrary objects.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from .backbone import ResNet50

CONTAINERS = {"model": "fast-reid", "state_dict": "torchreid"}
PREFIXES = ("module.", "backbone.")  # nn.DataParallel; fast-reid's Baseline
HEADS = ("fc.", "classifier.", "heads.", "pixel_mean", "pixel_std")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the backbone; the message names the file."""


@dataclass(frozen=True)
class CheckpointReport:
    """What loading a checkpoint did: its layout, how many backbone tensors it set, and the
    keys it lacked (missing), had beyond the backbone (unexpected), had in another shape
    (mismatched) or set aside as head keys."""

    path: str
    sha256: str
    layout: str
    loaded: int
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]
    head: list[str]

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self) -> str:
        problems = [f"{len(keys)} {name} ({_some(keys)})" for name, keys in
                    (("missing", self.missing), ("unexpected", self.unexpected), ("mismatched", self.mismatched)) if keys]
        return (f"{self.path} ({self.layout} layout): {self.loaded} backbone tensors loaded, "
                f"{len(self.head)} head keys set aside; " + ("; ".join(problems) or "nothing missing or unexpected"))


def load_backbone(path: str | Path, last_stride: int = 1, allow_partial: bool = False) -> tuple[ResNet50, CheckpointReport]:
    """A ResNet50 in eval mode with the checkpoint's weights, and the report of what loaded."""
    path = Path(path)
    sha256 = file_sha256(path)
    layout, state = _backbone_state(path)
    model = ResNet50(last_stride)
    own = model.state_dict()
    head = sorted(key for key in state if key.startswith(HEADS))
    unexpected = sorted(key for key in state if key not in own and key not in head)
    mismatched = sorted(key for key in state if key in own and state[key].shape != own[key].shape)
    missing = sorted(key for key in own if key not in state and not key.endswith("num_batches_tracked"))
    fitting = {key: value for key, value in state.items() if key in own and key not in mismatched}
    report = CheckpointReport(str(path), sha256, layout, len(fitting), missing, unexpected, mismatched, head)
    if not report.fits and not allow_partial:
        raise CheckpointError(f"does not fit a ResNet-50: {report.describe()} (allow a partial load to use it anyway)")
    model.load_state_dict(fitting, strict=False)
    return model.eval(), report


def _backbone_state(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(layout name, state dict with the wrapper keys and prefixes taken off)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not a checkpoint
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({str(error).splitlines()[0]})") from None
    layout = "torchvision"
    for key, name in CONTAINERS.items():
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            layout, data = name, data[key]
            break
    if not isinstance(data, dict) or not any(isinstance(value, torch.Tensor) for value in data.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors (nor one under 'model' or 'state_dict')")
    state = {}
    for key, value in data.items():
        while key.startswith(PREFIXES):
            key = key.partition(".")[2]
        if isinstance(value, torch.Tensor):
            state[key] = value
    return layout, state


def file_sha256(path: Path) -> str:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _some(keys: list[str], shown: int = 3) -> str:
    return ", ".join(keys[:shown]) + (f", ... {len(keys) - shown} more" if len(keys) > shown else "")
