"""Importing a user's features: every format round-trips, and every bad input fails with a
message naming the file and the problem."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
import torch

import rerankbench
from conftest import plain_normalise
from rerankbench.features.feature_file import load_features_file
from rerankbench.features.featureset import FeatureError

M, N, D = 6, 9, 8


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"qf": rng.normal(size=(M, D)).astype(np.float32), "gf": rng.normal(size=(N, D)).astype(np.float32),
            "q_ids": rng.integers(1, 4, M), "g_ids": rng.integers(0, 4, N),
            "q_cams": rng.integers(1, 7, M), "g_cams": rng.integers(1, 7, N)}


def pytorch_result(a):
    """The pytorch_result.mat names, labels and cameras stored 1 x n."""
    return {"query_f": a["qf"], "gallery_f": a["gf"], "query_label": a["q_ids"][None], "gallery_label": a["g_ids"][None],
            "query_cam": a["q_cams"][None], "gallery_cam": a["g_cams"][None]}


def write_mat73(path, data):
    """MATLAB v7.3: HDF5 behind a 512-byte header, arrays stored transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in data.items():
            f[key] = np.asarray(value).T
    header = b"MATLAB 7.3 MAT-file, written by the tests".ljust(116) + b"\0" * 8 + b"\x00\x02IM"
    with open(path, "r+b") as f:
        f.write(header)


def write_hdf5(path, data):
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f[key] = value


WRITERS = {
    "npz": lambda path, data: np.savez(path, **data),
    "npy": lambda path, data: np.save(path, data),
    "pt": lambda path, data: torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in data.items()}, path),
    "h5": write_hdf5,
    "mat": lambda path, data: scipy.io.savemat(path, data),
    "mat73": write_mat73,
}


@pytest.mark.parametrize("fmt", list(WRITERS))
@pytest.mark.parametrize("names", ["ours", "pytorch_result"])
def test_every_format_round_trips(tmp_path, fmt, names):
    a = arrays()
    path = tmp_path / f"feats.{fmt.replace('73', '')}"
    WRITERS[fmt](path, a if names == "ours" else pytorch_result(a))
    fs = load_features_file(path)
    np.testing.assert_array_equal(fs.query.features, a["qf"])
    np.testing.assert_array_equal(fs.gallery.features, a["gf"])
    for split, p in ((fs.query, "q"), (fs.gallery, "g")):
        assert split.ids.tolist() == a[f"{p}_ids"].tolist() and split.cams.tolist() == a[f"{p}_cams"].tolist()
        assert split.features.dtype == np.float32
    assert fs.name == "feats" and fs.source == {"kind": "file", "path": str(path.resolve())}


def test_float64_features_labels_n_by_1_and_no_cameras(tmp_path):
    a = arrays()
    path = tmp_path / "f.npz"
    np.savez(path, qf=a["qf"].astype(np.float64), gf=a["gf"], q_ids=a["q_ids"][:, None].astype(np.float64),
             g_ids=a["g_ids"][:, None])
    fs = load_features_file(path)
    assert fs.query.features.dtype == np.float32 and fs.query.cams is None
    assert fs.query.ids.tolist() == a["q_ids"].tolist()


def bad(**changes):
    a = {**arrays(), **changes}
    return {key: value for key, value in a.items() if value is not None}


@pytest.mark.parametrize("suffix, data, expected", [
    (".npz", bad(g_ids=None), "missing key(s) g_ids"),
    (".h5", bad(qf=None, gf=None), "missing key(s) qf, gf"),
    (".npz", bad(qf=np.full((M, D), np.inf, np.float32)), "NaN/inf"),
    (".pt", bad(gf=np.where(np.eye(N, D) > 0, np.nan, 1.0).astype(np.float32)), "NaN/inf values (first in row 0)"),
    (".npz", bad(qf=np.ones((M, D, 1), np.float32)), "2-D"),
    (".npz", bad(qf=np.ones((M, D), np.int64)), "qf must be floating point, got int64"),
    (".h5", bad(gf=np.ones((N, D + 1), np.float32)), "query features are 8-d but gallery features are 9-d"),
    (".npz", bad(q_ids=np.arange(M - 1)), "6 feature rows but ids of shape (5,)"),
    (".mat", bad(g_cams=np.ones((1, N + 2), np.int64)), "9 feature rows but cameras of shape (11,)"),
    (".npz", bad(q_ids=np.ones((2, 3))), "q_ids must be a vector"),
    (".npz", bad(g_ids=np.full(N, 0.5)), "g_ids must hold whole numbers"),
    (".npz", bad(q_cams=None), "give both q_cams and g_cams"),
])
def test_bad_contents(tmp_path, suffix, data, expected):
    path = tmp_path / f"bad{suffix}"
    {".npz": WRITERS["npz"], ".h5": write_hdf5, ".pt": WRITERS["pt"], ".mat": WRITERS["mat"]}[suffix](path, data)
    with pytest.raises(FeatureError) as error:
        load_features_file(path)
    assert str(error.value).startswith(f"{path}: ") and expected in str(error.value)


@pytest.mark.parametrize("name, content, expected", [
    ("f.npz", b"junk", "not a readable .npz file"),
    ("f.npy", b"junk", "not a readable .npy file"),
    ("f.pt", b"junk", "not a readable torch file"),
    ("f.h5", b"junk", "not a readable HDF5 file"),
    ("f.mat", b"junk" * 40, "not a readable .mat file"),
    ("f.csv", b"1,2", "unknown features file type '.csv'"),
    ("missing.npz", None, "no such features file"),
])
def test_unreadable_files(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FeatureError) as error:
        load_features_file(path)
    assert str(error.value).startswith(f"{path}: ") and expected in str(error.value)


@pytest.mark.parametrize("suffix, save", [(".npy", lambda p: np.save(p, np.ones((3, 4)))),
                                          (".pt", lambda p: torch.save(torch.ones(3, 4), p))])
def test_a_single_array_is_not_a_feature_file(tmp_path, suffix, save):
    path = tmp_path / f"one{suffix}"
    save(path)
    with pytest.raises(FeatureError, match="not a dict of arrays"):
        load_features_file(path)


# ------------------------------------------------------------------ files that are not features at all
SUFFIXES = [".npz", ".npy", ".pt", ".pth", ".h5", ".hdf5", ".mat"]
READABLE = {".npz": ".npz", ".npy": ".npy", ".pt": "torch", ".pth": "torch", ".h5": "HDF5", ".hdf5": "HDF5",
            ".mat": ".mat"}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("content", ["empty", "random bytes", "short random bytes"])
def test_empty_and_random_files(tmp_path, suffix, content):
    path = tmp_path / f"feats{suffix}"
    size = {"empty": 0, "random bytes": 4096, "short random bytes": 100}[content]
    path.write_bytes(np.random.default_rng(size).bytes(size))
    with pytest.raises(FeatureError) as error:
        load_features_file(path)
    message = str(error.value)
    if content == "empty":
        assert message == f"{path}: empty file (0 bytes)"
    else:
        reason = "neither a zip archive nor a .npy array)" if suffix == ".npz" else ""  # not numpy's "pickled data"
        assert message.startswith(f"{path}: not a readable {READABLE[suffix]} file ({reason}")
    assert "\n" not in message


def test_a_directory_is_not_a_features_file(tmp_path):
    for path in (tmp_path, tmp_path / "feats.npz"):
        path.mkdir(exist_ok=True)
        with pytest.raises(FeatureError) as error:
            load_features_file(path)
        assert str(error.value) == f"{path}: is a directory, not a features file"


@pytest.mark.parametrize("suffix, changes, expected", [
    (".npy", dict(q_ids=np.array([1, 2, 3, 1, 2, 3], dtype=object)), "q_ids must hold whole numbers, got object"),
    (".npy", dict(g_ids=["a", "b", "c", "a", "b", "c", "a", "b", "c"]), "g_ids must hold whole numbers, got <U1"),
    (".npz", dict(q_cams=np.array(list("abcdef"))), "q_cams must hold whole numbers, got <U1"),
    (".npy", dict(q_ids=[1, [2, 3], 1, 2, 3, 1]), "q_ids must be an array, got a list that numpy cannot turn into one"),
    (".npy", dict(qf=[[0.5, 1.0]] * (M - 1) + [[0.5]]), "qf must be an array, got a list that numpy cannot turn into "
                                                         "one"),
])
def test_labels_and_features_that_are_not_numbers(tmp_path, suffix, changes, expected):
    path = tmp_path / f"x{suffix}"
    WRITERS[suffix[1:]](path, {**arrays(), **changes})
    with pytest.raises(FeatureError) as error:
        load_features_file(path)
    assert str(error.value).startswith(f"{path}: {expected}")


# ------------------------------------------------------------------ the features' scale
def metrics_of_every_method(fs):
    return {name: rerankbench.evaluate(rerankbench.rerank(name, fs), fs) for name in ("baseline", "aqe", "k_reciprocal")}


def clustered(seed=0, m=30, n=120, dim=16):
    """Features of 10 identities around their centres, so that rankings mean something."""
    rng = np.random.default_rng(seed)
    q_ids, g_ids = rng.integers(1, 11, m), np.concatenate([np.arange(1, 11), rng.integers(1, 11, n - 10)])
    centres = rng.normal(size=(11, dim))
    return {"qf": centres[q_ids] + 0.7 * rng.normal(size=(m, dim)), "gf": centres[g_ids] + 0.7 * rng.normal(size=(n, dim)),
            "q_ids": q_ids, "g_ids": g_ids, "q_cams": rng.integers(0, 3, m), "g_cams": rng.integers(0, 3, n)}


@pytest.mark.parametrize("factor", [1e20, 1e-30])
def test_float32_files_at_any_scale_give_the_same_metrics(tmp_path, factor):
    a = clustered()
    np.savez(tmp_path / "one.npz", **{**a, "qf": a["qf"].astype(np.float32), "gf": a["gf"].astype(np.float32)})
    np.savez(tmp_path / "scaled.npz", **{**a, "qf": (a["qf"] * factor).astype(np.float32),
                                        "gf": (a["gf"] * factor).astype(np.float32)})
    want = metrics_of_every_method(load_features_file(tmp_path / "one.npz"))
    assert want["baseline"]["cmc1"] > 50
    assert metrics_of_every_method(load_features_file(tmp_path / "scaled.npz")) == want


def test_float64_rows_beyond_float32_are_rescaled_before_the_cast(tmp_path):
    # rows 0-2 of qf and every 3rd of gf at 1e39, 1e300, 1e-50 and 1e-300: beyond float32 (inf, or 0
    # or subnormal there); rescaled by a power of two in float64, they keep their directions
    a = clustered()
    factors = {"qf": np.ones(30), "gf": np.ones(120)}
    factors["qf"][:3] = [1e39, 1e-50, 1e300]
    factors["gf"][::3] = np.resize([1e39, 1e-300, 1e-50, 1e300], 40)
    np.savez(tmp_path / "wide.npz", **{**a, **{key: a[key] * factors[key][:, None] for key in factors}})
    np.savez(tmp_path / "one.npz", **{**a, "qf": a["qf"].astype(np.float32), "gf": a["gf"].astype(np.float32)})
    fs = load_features_file(tmp_path / "wide.npz")
    for split, key in ((fs.query, "qf"), (fs.gallery, "gf")):
        assert split.features.dtype == np.float32 and np.isfinite(split.features).all()
        largest = np.abs(split.features).max(axis=1)
        beyond = factors[key] != 1
        assert ((largest[beyond] >= 0.5) & (largest[beyond] < 1)).all()
        np.testing.assert_array_equal(split.features[~beyond], a[key][~beyond].astype(np.float32))  # the others as given
        np.testing.assert_allclose(plain_normalise(split.features), plain_normalise(a[key]), atol=1e-7)
    assert metrics_of_every_method(fs) == metrics_of_every_method(load_features_file(tmp_path / "one.npz"))


def test_float64_nan_and_inf_are_still_reported(tmp_path):
    a = clustered()
    a["gf"][4, 2] = np.inf
    a["gf"][5, 0] = 1e39
    np.savez(tmp_path / "f.npz", **a)
    with pytest.raises(FeatureError, match=r"gallery: features hold 1 NaN/inf values \(first in row 4\)"):
        load_features_file(tmp_path / "f.npz")
