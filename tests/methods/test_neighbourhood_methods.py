"""k-reciprocal, alpha-QE + k-reciprocal, SCA, ECN and GNN re-ranking against plain dense
re-implementations of the reference procedures, written here from spec/methods.md: full
T x T float64 matrices and per-row loops, as the public code does (no package code)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import rerankbench
from conftest import (
    assert_distances_close,
    clustered_set,
    make_featureset,
    plain_euclidean,
    plain_knn,
    plain_normalise,
    random_set,
)
from rerankbench.engine import registry


# ----------------------------------------------------------------------- plain references
def plain_rows(fs):
    return plain_normalise(np.concatenate([fs.query.features, fs.gallery.features])), fs.num_query


def plain_min_overlap(v: np.ndarray, m: int) -> np.ndarray:
    """S[q, g] = sum_j min(V[q, j], V[g, j]) for query rows q < m and gallery rows g >= m."""
    return np.stack([np.minimum(v[q], v[m:]).sum(1) for q in range(m)])


def plain_k_reciprocal(x: np.ndarray, m: int, k1: int, k2: int, lam: float, power: int = 2) -> np.ndarray:
    e = plain_euclidean(x, x)
    d = (e / e.max(1, keepdims=True)) ** power  # canonical: e^2 / max e^2 (power 4: torchreid's squared input)
    rank = plain_knn(x, len(x))
    top = {k: [set(rank[i, :k + 1]) for i in range(len(x))] for k in (k1, round(k1 / 2))}

    def reciprocal(i, k):
        return [j for j in rank[i, :k + 1] if i in top[k][j]]

    v = np.zeros_like(d)
    for i in range(len(x)):
        r = reciprocal(i, k1)
        expansion = list(r)
        for c in r:
            rc = reciprocal(c, round(k1 / 2))  # round half to even, as numpy.around
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expansion += rc
        members = np.unique(expansion)
        w = np.exp(-d[i, members])
        v[i, members] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(0) for i in range(len(x))])
    s = plain_min_overlap(v, m)
    return (1 - lam) * (1 - s / (2 - s)) + lam * d[:m, m:]


def plain_sca(x: np.ndarray, m: int, k1: int, k2: int) -> np.ndarray:
    e = plain_euclidean(x, x)
    d = e / e.max(1, keepdims=True)  # not squared
    rank = plain_knn(x, len(x))
    f = np.zeros_like(d)
    for i in range(len(x)):
        w = np.exp(-d[i, rank[i, :k1]])
        f[i, rank[i, :k1]] = w / w.sum()
    if k2 != 1:
        f = np.stack([f[rank[i, :k2]].sum(0) for i in range(len(x))])
    s = plain_min_overlap(f, m)
    return 1 - s / (2 * k2 - s)


def plain_ecn(x: np.ndarray, m: int, k: int, t: int, q: int) -> np.ndarray:
    cosine_distance = 1 - x @ x.T
    rank = plain_knn(x, len(x))
    position = np.argsort(rank, axis=1)
    f = np.maximum(0, k - position).astype(np.float64)
    r = -(f @ f.T)

    def expanded(i):
        top = list(rank[i, 1:t + 1])
        return top + [j for n in top for j in rank[n, 1:q + 1]]

    out = np.empty((m, len(x) - m))
    for p in range(m):
        for g in range(m, len(x)):
            out[p, g - m] = np.mean([r[e, p] for e in expanded(g)] + [r[e, g] for e in expanded(p)])
    return np.where(out != 0, out, cosine_distance[:m, m:])


def plain_gnn(x: np.ndarray, m: int, k1: int, k2: int) -> np.ndarray:
    """The reference's steps as it runs them (gnn_reranking.py): S = X X^T; each row's top-k1
    list (topk(S, k1): similarities and initial_rank); A binary from the list; weights S^2 of the
    list; twice A <- A + A^T, A[i] <- sum over initial_rank[i, :k2] of w_ij A[j] (the first k2 of
    the top-k1 list: min(k1, k2) of them), rows L2-normalised; similarity A_q A_g^T."""
    similarity = x @ x.T
    initial_rank = plain_knn(x, k1)
    a = np.zeros_like(similarity)
    np.put_along_axis(a, initial_rank, 1.0, axis=1)
    w = np.take_along_axis(similarity, initial_rank, 1) ** 2
    if k2 != 1:
        for _ in range(2):
            a = a + a.T
            a = np.stack([w[i, :k2] @ a[initial_rank[i, :k2]] for i in range(len(x))])
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return 1 - a[:m] @ a[m:].T


def plain_alpha_qe(x: np.ndarray, k: int, alpha: float) -> np.ndarray:
    neighbours = plain_knn(x, k)
    w = np.maximum(np.einsum("id,ikd->ik", x, x[neighbours]), 0) ** alpha
    return plain_normalise(np.einsum("ik,ikd->id", w, x[neighbours]))


def plain_method(fs, name, p):
    x, m = plain_rows(fs)
    if name == "k_reciprocal":
        return plain_k_reciprocal(x, m, p["k1"], p["k2"], p["lambda"], 4 if p["distance"] == "squared" else 2)
    if name == "alpha_qe_k_reciprocal":
        return plain_k_reciprocal(plain_alpha_qe(x, p["k"], p["alpha"]), m, p["k1"], p["k2"], p["lambda"])
    if name == "sca":
        return plain_sca(x, m, p["k1"], p["k2"])
    if name == "ecn":
        return plain_ecn(x, m, p["k"], p["t"], p["q"])
    if name == "gnn":
        return plain_gnn(x, m, p["k1"], p["k2"])
    raise AssertionError(name)


# ------------------------------------------------------------------------------ the cases
def small_clustered(seed=3):
    """600 rows in 24-d, tight clusters of ~10 images (reciprocal sets of several members)."""
    return make_featureset(num_query=60, num_gallery=540, dim=24, num_ids=54, seed=seed, clustered=True, spread=0.5)


SETS = {"random": random_set, "clustered": clustered_set, "small_clustered": small_clustered}

CASES = [  # (data, method, params)
    ("random", "k_reciprocal", {}),
    ("clustered", "k_reciprocal", {}),
    ("small_clustered", "k_reciprocal", {"k1": 20}),
    # odd k1: the 2/3 rule on R(c, round(k1/2)); 25 -> 12 and 27 -> 14 (half to even), 5 -> 2, 7 -> 4
    ("clustered", "k_reciprocal", {"k1": 25, "k2": 1}),
    ("small_clustered", "k_reciprocal", {"k1": 27, "k2": 3, "lambda": 0.5}),
    ("small_clustered", "k_reciprocal", {"k1": 5}),
    ("small_clustered", "k_reciprocal", {"k1": 7, "distance": "squared"}),
    ("clustered", "k_reciprocal", {"k1": 2, "k2": 2}),
    ("small_clustered", "k_reciprocal", {"k1": 20, "lambda": 0.0}),  # the Jaccard distance alone
    ("clustered", "alpha_qe_k_reciprocal", {}),
    ("small_clustered", "alpha_qe_k_reciprocal", {"k": 4, "alpha": 2.0, "k1": 9, "k2": 4}),
    ("random", "sca", {}),
    ("clustered", "sca", {}),
    ("small_clustered", "sca", {"k1": 4, "k2": 2}),
    ("small_clustered", "sca", {"k1": 15, "k2": 1}),
    ("random", "ecn", {}),
    ("clustered", "ecn", {}),
    ("small_clustered", "ecn", {"k": 10, "t": 2, "q": 5}),
    ("random", "gnn", {}),
    ("clustered", "gnn", {}),
    ("small_clustered", "gnn", {"k1": 26, "k2": 7}),
    ("small_clustered", "gnn", {"k1": 12, "k2": 1}),
    ("small_clustered", "gnn", {"k1": 4, "k2": 7}),  # k2 > k1: the first k2 of the top-k1 list, so 4
    ("clustered", "gnn", {"k1": 3, "k2": 10}),
]


@pytest.fixture(scope="module")
def sets():
    return {name: make() for name, make in SETS.items()}


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("data, method, params", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_matches_plain_dense_reference(sets, data, method, params, device):
    fs = sets[data]
    resolved = registry.method(method, **params).resolved(fs)
    want = plain_method(fs, method, resolved)
    got = rerankbench.rerank(method, fs, device=device, **params)
    assert got.shape == (fs.num_query, fs.num_gallery) and got.dtype == np.float32
    assert_distances_close(got, want)
    # identical ranking up to the reference's own near-ties (two images within 1e-6 of each other:
    # which comes first is the last bit's choice, and BLAS paths differ there, e.g. Intel's MKL):
    # every step of our order is a step of the reference's, and without such ties the metrics are equal
    order = np.argsort(got, axis=1, kind="stable")
    assert np.diff(np.take_along_axis(np.asarray(want, np.float64), order, 1), axis=1).min() >= -1e-6
    if np.array_equal(order, np.argsort(want.astype(np.float32), axis=1, kind="stable")):
        assert rerankbench.evaluate(got, fs) == rerankbench.evaluate(want.astype(np.float32), fs)


def test_gnn_on_vehicleid_defaults_propagates_over_k1_neighbours_and_records_it(vehicleid_twin):
    """k1 = N/C = 4, k2 = 7: the reference reads initial_rank[:, :7] of a top-4 list, so 4 neighbours."""
    fs = vehicleid_twin
    assert registry.method("gnn").resolved(fs) == {"k1": 4, "k2": 4}  # the k2 that ran
    x, m = plain_rows(fs)
    want = plain_gnn(x, m, k1=4, k2=7)
    got = rerankbench.rerank("gnn", fs)
    assert_distances_close(got, want)
    assert rerankbench.evaluate(got, fs) == rerankbench.evaluate(want.astype(np.float32), fs)
