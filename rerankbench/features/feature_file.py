"""A user's own features, in any of the formats they come in: load_features_file is the one
entry point (`run --features FILE`).

Formats, by the file's suffix:
  .npz          numpy archive, one array per key
  .npy          a dict of arrays saved with np.save (read with allow_pickle: load your own files only)
  .pt / .pth    a dict of tensors or arrays saved with torch.save (read with weights_only)
  .h5 / .hdf5   one dataset per key at the top level
  .mat          MATLAB, v5 (scipy) or v7.3 (HDF5), e.g. the pytorch_result.mat many re-ID
                repositories write
Keys: qf, gf (M x D, N x D), q_ids, g_ids and optionally q_cams, g_cams (without cameras
nothing is filtered by camera), or their pytorch_result.mat names query_f, gallery_f,
query_label, gallery_label, query_cam, gallery_cam. Labels may be stored 1 x n or n x 1.
A train split for a learned re-ranker (ACP) is optional: tf and t_ids (and t_cams).

Features are used as float32. Rows of wider floats (float64) that float32 cannot hold (a largest
|x| above 3.4e38, or below 1.2e-38, where they would lose their digits or become 0) are
divided by a power of two near their largest |x| before the cast (scale_free_rows): only the
rows' directions count, as every method L2-normalises them. Anything else wrong with a file
(empty, unreadable, a key missing, shapes or types that do not fit, NaN/inf, all-zero rows) is
a FeatureError of one line naming the file and the problem.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .featureset import FeatureError, FeatureSet, Split, largest_magnitudes, outside_float32, scale_free_rows

KEYS = {"qf": "query_f", "gf": "gallery_f", "q_ids": "query_label", "g_ids": "gallery_label",
        "q_cams": "query_cam", "g_cams": "gallery_cam", "tf": "train_f", "t_ids": "train_label",
        "t_cams": "train_cam"}  # ours: pytorch_result.mat's (train_*: by analogy)
REQUIRED = ("qf", "gf", "q_ids", "g_ids")


def load_features_file(path: str | Path, protocol: str = "market") -> FeatureSet:
    path = Path(path)
    if path.is_dir():
        raise FeatureError(f"{path}: is a directory, not a features file")
    if not path.is_file():
        raise FeatureError(f"{path}: no such features file")
    readers = {".npz": _read_npz, ".npy": _read_npy, ".pt": _read_torch, ".pth": _read_torch,
               ".h5": _read_hdf5, ".hdf5": _read_hdf5, ".mat": _read_mat}
    if path.suffix.lower() not in readers:
        raise FeatureError(f"{path}: unknown features file type {path.suffix!r}; use one of {', '.join(readers)}")
    try:
        if path.stat().st_size == 0:
            raise FeatureError("empty file (0 bytes)")
        arrays = {key: _array(value, key) for key, value in readers[path.suffix.lower()](path).items()}
        return _feature_set(arrays, path, protocol)
    except FeatureError as error:
        raise FeatureError(f"{path}: {error}") from None


def _feature_set(arrays: dict[str, np.ndarray], path: Path, protocol: str) -> FeatureSet:
    named = {ours: arrays[ours] if ours in arrays else arrays.get(theirs) for ours, theirs in KEYS.items()}
    missing = [key for key in REQUIRED if named[key] is None]
    if missing:
        raise FeatureError(f"missing key(s) {', '.join(missing)}; expected qf, gf, q_ids, g_ids (and optionally "
                           f"q_cams, g_cams) or query_f, gallery_f, query_label, gallery_label (and query_cam, "
                           f"gallery_cam), found {', '.join(sorted(arrays)) or 'none'}")
    if (named["q_cams"] is None) != (named["g_cams"] is None):
        raise FeatureError("give both q_cams and g_cams (query_cam and gallery_cam), or neither")
    if (named["tf"] is None) != (named["t_ids"] is None):
        raise FeatureError("a train split needs both tf and t_ids (train_f and train_label)")
    splits = [Split(_features(named[f"{p}f"], f"{p}f"), _labels(named[f"{p}_ids"], f"{p}_ids"),
                    None if named[f"{p}_cams"] is None else _labels(named[f"{p}_cams"], f"{p}_cams"))
              for p in ("q", "g", "t") if named[f"{p}f"] is not None]
    return FeatureSet(path.stem, *splits[:2], protocol=protocol, source={"kind": "file", "path": str(path.resolve())},
                      train=splits[2] if len(splits) > 2 else None)


def _array(value, key: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (TypeError, ValueError):  # e.g. lists of rows of different lengths
        raise FeatureError(f"{key} must be an array, got a {type(value).__name__} that numpy cannot turn into one "
                           "(rows of different lengths?)") from None


def _features(array: np.ndarray, key: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.floating):
        raise FeatureError(f"{key} must be floating point, got {array.dtype}")
    if array.ndim == 2 and array.size and array.dtype.itemsize > 4:
        outside = outside_float32(largest_magnitudes(array))
        if outside.any():
            import torch
            array = np.array(array, np.float64)  # a copy (longdouble through float64, which torch knows)
            array[outside] = scale_free_rows(torch.from_numpy(array[outside])).numpy()
    return array.astype(np.float32, copy=False)


def _labels(array: np.ndarray, key: str) -> np.ndarray:
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise FeatureError(f"{key} must be a vector (n, 1 x n or n x 1), got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    raise FeatureError(f"{key} must hold whole numbers, got {array.dtype}")


def _read_npz(path: Path) -> dict:
    with open(path, "rb") as f:
        if not f.read(6).startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
            raise FeatureError("not a readable .npz file (neither a zip archive nor a .npy array)")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                return {key: data[key] for key in data.files}
    except Exception as error:  # numpy and zipfile raise many kinds for a damaged archive
        raise _unreadable(".npz", error) from None
    raise FeatureError("holds a single array, not an .npz archive with keys qf, gf, q_ids, g_ids")


def _read_npy(path: Path) -> dict:
    try:
        data = np.load(path, allow_pickle=True)
    except Exception as error:  # unpickling what is not a pickle raises any kind
        raise _unreadable(".npy", error) from None
    if isinstance(data, np.ndarray) and data.dtype == object and data.shape == ():
        data = data.item()
    return _dict(data, "np.save")


def _read_torch(path: Path) -> dict:
    import torch
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a file that is not its own
        raise _unreadable("torch", error) from None
    return {key: value.numpy() if isinstance(value, torch.Tensor) else value
            for key, value in _dict(data, "torch.save").items()}


def _read_hdf5(path: Path) -> dict:
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return {key: f[key][()] for key in f if isinstance(f[key], h5py.Dataset)}
    except Exception as error:  # OSError for most, others for damaged insides
        raise _unreadable("HDF5", error) from None


def _read_mat(path: Path) -> dict:
    """MATLAB v5 through scipy; v7.3 is HDF5, whose arrays MATLAB stores transposed."""
    import scipy.io
    try:
        return {key: value for key, value in scipy.io.loadmat(path).items() if not key.startswith("__")}
    except NotImplementedError:  # scipy's answer for v7.3
        return {key: value.T for key, value in _read_hdf5(path).items()}
    except Exception as error:  # scipy raises many kinds for a damaged file
        raise _unreadable(".mat", error) from None


def _unreadable(kind: str, error: Exception) -> FeatureError:
    """"not a readable KIND file (REASON)": the reader's first line of message, or its type."""
    reason = next(iter(str(error).splitlines()), "").strip() or type(error).__name__
    return FeatureError(f"not a readable {kind} file ({reason})")


def _dict(data, writer: str) -> dict:
    if not isinstance(data, dict):
        raise FeatureError(f"holds a {type(data).__name__}, not a dict of arrays as {writer} writes it "
                           "(keys qf, gf, q_ids, g_ids)")
    return data
