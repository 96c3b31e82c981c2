"""A user's own features: an .npz file with keys qf, gf (M x D, N x D), q_ids, g_ids and
optionally q_cams, g_cams (without cameras nothing is filtered by camera)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .featureset import FeatureError, FeatureSet, Split

REQUIRED = ("qf", "gf", "q_ids", "g_ids")


def load_features_file(path: str | Path, protocol: str = "market") -> FeatureSet:
    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: no such features file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise FeatureError(f"{path}: not a readable .npz file ({error})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise FeatureError(f"{path}: holds a single array, not an .npz archive with keys qf, gf, q_ids, g_ids")
    with data:
        arrays = {key: data[key] for key in data.files}
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise FeatureError(f"{path}: missing key(s) {', '.join(missing)}; expected qf, gf, q_ids, g_ids "
                           f"(and optionally q_cams, g_cams), found {', '.join(sorted(arrays)) or 'none'}")
    if ("q_cams" in arrays) != ("g_cams" in arrays):
        raise FeatureError(f"{path}: give both q_cams and g_cams, or neither")
    try:
        splits = [Split(_float(arrays[f"{p}f"]), _labels(arrays[f"{p}_ids"], path, f"{p}_ids"),
                        _labels(arrays[f"{p}_cams"], path, f"{p}_cams") if f"{p}_cams" in arrays else None)
                  for p in ("q", "g")]
        return FeatureSet(path.stem, *splits, protocol=protocol, source={"kind": "file", "path": str(path.resolve())})
    except FeatureError as error:
        raise FeatureError(f"{path}: {error}") from None


def _float(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32, copy=False) if np.issubdtype(array.dtype, np.floating) else array


def _labels(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    array = np.asarray(array).reshape(-1) if np.asarray(array).ndim == 2 and 1 in np.asarray(array).shape else np.asarray(array)
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            return array.astype(np.int64)
        raise FeatureError(f"{key} must hold whole numbers, got {array.dtype}")
    return array.astype(np.int64)
