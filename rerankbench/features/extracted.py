"""The feature set of a real dataset: its released folder read, its images' features extracted
with a checkpoint (or taken from the cache), assembled into a FeatureSet.

Cache: CACHE/features/<test set>-<key>/<split>.npz, the key made of the test set, its images
(ReleasedSplits.digest), the checkpoint's SHA-256 and the preprocessing, so a second run
extracts nothing and any change extracts again. Each file is written atomically, one process
extracts a dataset at a time (the others wait for its files), and a damaged file is reported
and extracted again. Junk images (identity -1, Market-1501) are
not extracted: evaluation ignores them, and without them the gallery and k1 = N/C are those
of Table I, as in fast-reid and torchreid.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..runtime.files import DamagedFile, discard, folder_lock, load_npz, write_atomic
from .checkpoint import file_sha256, load_backbone
from .extraction import Extraction, extract
from .featureset import FeatureSet, Split
from .released import Images, ReleasedLayout

CACHE_VERSION = 1
BLOCKS = ("c3", "c4", "c5")  # the backbone's pooled blocks, each cached per split


class RegisteredDataset(Protocol):
    """What reading a real dataset needs of a registered test set (twins.twin.TwinDataset has it)."""

    name: str
    protocol: str
    k_override: int | None
    released: ReleasedLayout | None


def released_feature_set(dataset: RegisteredDataset, data_root: str | Path, extraction: Extraction,
                         cache_dir: str | Path | None = None, with_train: bool = False, show_progress: bool = False,
                         log: Callable[[str], None] | None = None) -> FeatureSet:
    """The test set's feature set from DATA_ROOT, with its train split when asked."""
    log = log or (lambda message: None)
    if dataset.released is None:
        raise ValueError(f"{dataset.name}: no reader for its released layout")
    released = dataset.released.read(Path(data_root))
    images = {"query": _without_junk(released.query), "gallery": _without_junk(released.gallery)}
    if with_train:
        images["train"] = released.train
    checkpoint_sha256 = file_sha256(Path(extraction.checkpoint))
    preprocessing = extraction.preprocessing(dataset.released.image_size)
    key = hashlib.sha1(json.dumps([dataset.name, released.digest(), checkpoint_sha256, preprocessing, CACHE_VERSION],
                                  sort_keys=True).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / "features" / f"{dataset.name}-{key}" if cache_dir is not None else None
    with nullcontext() if folder is None else folder_lock(folder):  # one process extracts, the others wait
        blocks = {name: _read(folder, name, len(split)) for name, split in images.items()}
        missing = [name for name, found in blocks.items() if found is None]
        if missing:
            model, report = load_backbone(extraction.checkpoint, extraction.last_stride, extraction.allow_partial)
            log(f"{dataset.name}: checkpoint {report.describe()}")
            for name in missing:
                blocks[name] = extract(model, images[name].paths, preprocessing, extraction.batch_size,
                                       extraction.device, show_progress, f"{dataset.name} {name}")
                if folder is not None:
                    write_atomic(folder / f"{name}.npz", lambda tmp, arrays=blocks[name]: np.savez(tmp, **arrays))
            if folder is not None:
                log(f"{dataset.name}: features cached in {folder}")
        else:
            log(f"{dataset.name}: features from the cache, {folder}")
    splits = {name: Split(blocks[name]["c5"], split.ids, split.cams, {"c3": blocks[name]["c3"], "c4": blocks[name]["c4"]})
              for name, split in images.items()}
    source = {"kind": "released", "data_root": str(Path(data_root).resolve()), "folder": str(released.root),
              "lists": list(released.lists), "checkpoint": str(Path(extraction.checkpoint).resolve()),
              "checkpoint_sha256": checkpoint_sha256, "preprocessing": preprocessing,
              "junk_dropped": len(released.gallery) + len(released.query) - len(images["gallery"]) - len(images["query"])}
    return FeatureSet(dataset.name, splits["query"], splits["gallery"], dataset.protocol, source, splits.get("train"),
                      dataset.k_override)


def _without_junk(images: Images) -> Images:
    return images.rows(np.flatnonzero(images.ids != -1))


def _read(folder: Path | None, split: str, rows: int) -> dict[str, np.ndarray] | None:
    """The split's cached blocks (C3, C4, C5, one row per image), or None: not there, or damaged
    (reported and removed, so that they are extracted again)."""
    path = None if folder is None else folder / f"{split}.npz"
    if path is None or not path.exists():
        return None
    try:
        return load_npz(path, {name: (rows, None) for name in BLOCKS})
    except DamagedFile as error:
        discard(path, error, "extracting the features again")
        return None
