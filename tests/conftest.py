"""Shared tiny fixtures: random feature sets and plain (numpy-only) helpers.

Nothing here calls package code except the FeatureSet/Split constructors, so the helpers can
serve as independent references in the tests.
"""
from __future__ import annotations

import os

# One thread for torch and MKL in the tests and the processes they start, set before torch loads:
# with two, Intel's MKL splits fp32 products between the threads differently from run to run (the
# last bits: 2 of 10 rebuilds of a twin's distances differed, 3 December 2026), and near-ties turn
# that into metric differences between runs that the tests compare to the digit.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rerankbench.features.featureset import FeatureSet, Split  # noqa: E402


def make_featureset(num_query: int = 30, num_gallery: int = 200, dim: int = 16, num_ids: int = 10,
                    num_cams: int | None = 4, seed: int = 0, protocol: str = "market", clustered: bool = False,
                    spread: float = 0.6, name: str = "toy", k_override: int | None = None) -> FeatureSet:
    """A random FeatureSet. Identities 1..num_ids; every query identity also appears in the gallery.

    clustered=True: features = identity centre + spread * noise (so ranking is meaningful);
    otherwise plain Gaussian noise with no identity structure.
    """
    rng = np.random.default_rng(seed)
    q_ids = rng.integers(1, num_ids + 1, num_query)
    g_ids = np.concatenate([np.arange(1, num_ids + 1), rng.integers(1, num_ids + 1, num_gallery - num_ids)])
    g_ids = rng.permutation(g_ids)
    if clustered:
        centres = rng.normal(size=(num_ids + 1, dim))
        q = centres[q_ids] + spread * rng.normal(size=(num_query, dim))
        g = centres[g_ids] + spread * rng.normal(size=(num_gallery, dim))
    else:
        q = rng.normal(size=(num_query, dim))
        g = rng.normal(size=(num_gallery, dim))
    q_cams = g_cams = None
    if num_cams is not None:
        q_cams = rng.integers(0, num_cams, num_query)
        g_cams = rng.integers(0, num_cams, num_gallery)
    return FeatureSet(name, Split(q.astype(np.float32), q_ids.astype(np.int64), q_cams),
                      Split(g.astype(np.float32), g_ids.astype(np.int64), g_cams),
                      protocol=protocol, source={"kind": "test", "seed": seed}, k_override=k_override)


def plain_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def plain_euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a_i - b_j|| for unit rows, computed directly as sqrt(max(2 - 2 a.b, 0)) in float64."""
    return np.sqrt(np.maximum(2.0 - 2.0 * (np.asarray(a, np.float64) @ np.asarray(b, np.float64).T), 0.0))


def assert_distances_close(got, want):
    """|got - want| <= 1e-5, except near 0: float32 computes sqrt(2 - 2 cos) from a cosine good to
    about 1e-7, and the square root turns that into up to ~5e-4 at d = 0 (duplicates)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    tolerance = np.where(want > 0.05, 1e-5, 1e-3)
    bad = np.abs(got - want) > tolerance
    assert not bad.any(), f"{int(bad.sum())} distances differ, e.g. {got[bad][:3]} vs {want[bad][:3]}"


def plain_knn(x: np.ndarray, k: int) -> np.ndarray:
    """kNN(i, k) over the rows of x (unit rows, float64): i itself first, then by decreasing
    cosine similarity (= increasing Euclidean distance), ties by smaller index."""
    s = x @ x.T
    np.fill_diagonal(s, np.inf)
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def clustered_set(seed=0):
    """~1050 rows in 16-d with identity clusters, exact duplicates and a few -1/0 labels.

    The clusters overlap enough (spread 0.9) that no two rows share their whole kNN set: with
    tight clusters AQE maps such rows to one feature, their float32 distance is rounding noise
    (sqrt(2 - 2 cos) cannot resolve below ~3e-4) and the ranking among them is arbitrary."""
    fs = make_featureset(num_query=150, num_gallery=900, dim=16, num_ids=60, seed=seed, clustered=True, spread=0.9)
    q, g = fs.query, fs.gallery
    gf, g_ids = g.features.copy(), g.ids.copy()
    gf[100:104] = gf[5]  # exact duplicates (ties in every row's ranking)
    g_ids[100:104] = g_ids[5]
    g_ids[200:210] = -1  # junk
    g_ids[300:320] = 0  # distractors
    return FeatureSet("clustered", q, Split(gf, g_ids, g.cams))


def random_set(seed=1):
    return make_featureset(num_query=100, num_gallery=500, dim=32, num_ids=40, seed=seed)


@pytest.fixture(scope="session")
def market_twin():
    from rerankbench.engine import registry
    return registry.datasets()["market1501"].load(scale=0.02, seed=0, dim=32, with_train=True, cache_dir=None)


@pytest.fixture(scope="session")
def vehicleid_twin():
    from rerankbench.engine import registry
    return registry.datasets()["vehicleid_small"].load(scale=0.02, seed=0, dim=32, with_train=True, cache_dir=None)


def pytest_collection_modifyitems(config, items):
    """The benchmarks (tests/benchmarks/) run with `pytest --benchmark-only` and not in the normal
    run, which checks them through tests/test_benchmark_suite.py instead."""
    if config.getoption("benchmark_only", False) or config.getoption("benchmark_disable", False):
        return
    skip = pytest.mark.skip(reason="a benchmark: run with pytest --benchmark-only")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
