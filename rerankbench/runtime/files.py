"""Files that concurrent runs and crashes cannot spoil: the caches, checkpoints and reports.

- `write_atomic`: a file is written under a temporary name of this process's own, beside its
  final name, and renamed over it (os.replace, atomic on POSIX): a reader sees the old file or
  the new one, never half of one, and two processes writing the same file never collide;
  whichever rename comes last wins, with the same content.
- `locked`, `folder_lock`: an exclusive lock (fcntl.flock on a lock file) around work two processes would
  otherwise do twice, such as building one kNN graph: the second waits, then finds the first
  one's result. flock holds between processes of one machine; on a network filesystem it
  depends on the server (NFS v4 honours it).
- `load_npy`, `load_npz`, `DamagedFile`: a cached array read back and checked (readable, whole,
  the shape and dtype expected); what is wrong is named in one line, and the caller rebuilds
  the entry after `discard` has reported and removed it.
"""
from __future__ import annotations

import fcntl
import os
import pickle
import uuid
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

# what numpy, zipfile and pickle raise for a file that is truncated, empty or not what it claims
UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError)


class DamagedFile(ValueError):
    """A cache or checkpoint file that cannot be used; the message names the file and the problem."""


class RebuiltCache(UserWarning):
    """A damaged cache entry was found, reported and is being rebuilt."""


def temporary_name(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and call, ending in path's suffix
    (np.save and np.savez append theirs otherwise); no cache pattern (knn-*.npz) matches it."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Write `path` through `write(temporary path)`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text))


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the lock file `path` (created if missing) while the block runs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def folder_lock(folder: str | Path):
    """The lock of a cache folder: the file <folder>.lock beside it, so the folder holds its data alone."""
    folder = Path(folder)
    return locked(folder.with_name(folder.name + ".lock"))


def load_npy(path: str | Path, shape: tuple | None = None, dtype=None, mmap: bool = False) -> np.ndarray:
    """A .npy array, checked: readable and whole (a memory map checks the file's length against its
    header), and of `shape` (None entries: any length) and `dtype` when given."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except UNREADABLE as error:
        raise DamagedFile(f"{path}: {_problem(path, error)}") from None
    _check(path, "the array", array, shape, dtype)
    return array


def load_npz(path: str | Path, shapes: dict[str, tuple | None]) -> dict[str, np.ndarray]:
    """The named arrays of an .npz archive, each read whole (zip checks every member's CRC) and of
    its shape (None entries: any length; a shape of None: any shape)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in shapes if key not in archive.files]
            if missing:
                raise DamagedFile(f"{path}: no {', '.join(missing)} in it (holds {', '.join(archive.files) or 'nothing'})")
            arrays = {key: archive[key] for key in shapes}
    except UNREADABLE as error:
        raise DamagedFile(f"{path}: {_problem(path, error)}") from None
    for key, shape in shapes.items():
        _check(path, key, arrays[key], shape, None)
    return arrays


def discard(path: str | Path, problem: str | Exception, action: str = "rebuilding it") -> None:
    """Report a damaged cache entry in one line (a RebuiltCache warning) and remove it."""
    path = Path(path)
    text = str(problem)
    text = text if text.startswith(str(path)) else f"{path}: {text}"
    warnings.warn(f"{text}; {action}", RebuiltCache, stacklevel=2)
    path.unlink(missing_ok=True)


def _check(path: Path, name: str, array: np.ndarray, shape: tuple | None, dtype) -> None:
    if shape is not None and (len(shape) != array.ndim or any(want is not None and want != got
                                                               for want, got in zip(shape, array.shape))):
        expected = "x".join("?" if n is None else str(n) for n in shape)
        raise DamagedFile(f"{path}: {name} has shape {array.shape}, expected {expected}")
    if dtype is not None and array.dtype != np.dtype(dtype):
        raise DamagedFile(f"{path}: {name} is {array.dtype}, expected {np.dtype(dtype)}")


def _problem(path: Path, error: Exception) -> str:
    """What is wrong with an unreadable file, in words."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError:
        return "missing"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"unreadable ({text})"
