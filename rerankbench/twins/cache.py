"""A twin's splits on disk, <cache>/twins/<test set>-<key>/, read back only as a whole set.

Each split ("query", "gallery", "train") is a few .npy files -- <split>.features.npy,
<split>.ids.npy and, when the twin has cameras, <split>.cams.npy -- and, written last, the
manifest <split>.manifest.json naming each file with its shape, dtype and size in bytes. A
split is read only through its manifest: no manifest (a write cut short by a kill), a file
missing, of another size, or whose header disagrees with the manifest, and the split counts
as missing, is reported in one line and generated again. Every file is written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..features.featureset import Split
from ..runtime.files import DamagedFile, discard, load_npy, write_atomic, write_text_atomic

REQUIRED = ("features", "ids")  # and "cams" when the twin has cameras


def manifest_path(folder: Path, split: str) -> Path:
    return folder / f"{split}.manifest.json"


def write_split(folder: Path, split: str, data: Split) -> None:
    """The split's arrays, then its manifest."""
    arrays = {"features": data.features, "ids": data.ids}
    if data.cams is not None:
        arrays["cams"] = data.cams
    entries = {}
    for name, array in arrays.items():
        path = write_atomic(folder / f"{split}.{name}.npy", lambda tmp, array=array: np.save(tmp, array))
        entries[name] = {"shape": list(array.shape), "dtype": str(array.dtype), "bytes": path.stat().st_size}
    write_text_atomic(manifest_path(folder, split), json.dumps({"split": split, "arrays": entries}, indent=1) + "\n")


def write_split_streaming(folder: Path, split: str, rows: int, dim: int, fill, ids: np.ndarray,
                          cams: np.ndarray | None) -> None:
    """A split whose features (rows x dim float32) `fill(out)` writes into a memory map block by
    block (never whole in memory), then its ids and cameras, then its manifest."""
    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dim))
        fill(out)
        out.flush()
        del out
    path = write_atomic(folder / f"{split}.features.npy", write)
    entries = {"features": {"shape": [rows, dim], "dtype": "float32", "bytes": path.stat().st_size}}
    for name, array in {"ids": ids, "cams": cams}.items():
        if array is not None:
            path = write_atomic(folder / f"{split}.{name}.npy", lambda tmp, array=array: np.save(tmp, array))
            entries[name] = {"shape": list(array.shape), "dtype": str(array.dtype), "bytes": path.stat().st_size}
    write_text_atomic(manifest_path(folder, split), json.dumps({"split": split, "arrays": entries}, indent=1) + "\n")


def read_split(folder: Path, split: str) -> Split | None:
    """The split as its manifest describes it (features memory-mapped), or None when it is missing
    or damaged (reported, and its manifest removed so that it is written again whole)."""
    manifest = manifest_path(folder, split)
    if not manifest.exists():
        if any(folder.glob(f"{split}.*.npy")):
            discard(manifest, f"{folder}: the {split} split has no manifest (a write cut short)", "generating it again")
        return None
    try:
        arrays = {name: _array(folder / f"{split}.{name}.npy", entry, memory_map=name == "features")
                  for name, entry in _entries(manifest).items()}
    except DamagedFile as error:
        discard(manifest, error, f"generating the {split} split again")
        return None
    return Split(arrays["features"], arrays["ids"], arrays.get("cams"))


def _entries(manifest: Path) -> dict[str, dict]:
    try:
        entries = json.loads(manifest.read_text())["arrays"]
        for name, entry in entries.items():
            if not (isinstance(entry.get("shape"), list) and isinstance(entry.get("dtype"), str)
                    and isinstance(entry.get("bytes"), int)):
                raise ValueError(f"the entry of {name} is incomplete")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DamagedFile(f"{manifest}: not a readable manifest ({error})") from None
    missing = [name for name in REQUIRED if name not in entries]
    if missing:
        raise DamagedFile(f"{manifest}: names no {', '.join(missing)} array")
    return entries


def _array(path: Path, entry: dict, memory_map: bool) -> np.ndarray:
    if not path.exists():
        raise DamagedFile(f"{path}: missing")
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise DamagedFile(f"{path}: {size} bytes, its manifest says {entry['bytes']}")
    return load_npy(path, tuple(entry["shape"]), entry["dtype"], mmap=memory_map)
