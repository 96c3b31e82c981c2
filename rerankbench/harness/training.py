"""The `train` command: a learned method's training on a feature set's train split, exactly as
`run` does it before the method's first cell (same parameters, same checkpoints, which `run`
then loads)."""
from __future__ import annotations

from typing import Callable

from ..engine.reranker import Reranker
from ..engine.shared import SharedSteps
from ..runtime.device import resolve_device
from .loading import DataRequest


def train(method: Reranker, request: DataRequest, device: str = "cpu",
          log: Callable[[str], None] = lambda line: None) -> dict:
    """Train (or load) `method`'s model on the requested feature set's train split; returns what a
    record keeps of the training (checkpoint, epochs, losses, seconds)."""
    if not method.needs_train:
        raise ValueError(f"method {method.name!r} learns nothing: there is nothing to train")
    fs = request.load(log)
    shared = SharedSteps(fs, str(resolve_device(device)), request.cache_dir, request.show_progress)
    resolved = method.resolved(fs)
    log(f"{method.name} on {fs.name}'s train split ({len(fs.train)} images), {shared.device}: {resolved}")
    method.trained(shared, log)
    return method.details(shared)["training"]
