"""Every method in the gallery context (--context gallery) against plain dense re-implementations
of its definition (the methods' docstrings, engine/contexts.py), with no package code.

The references are the all-context references of test_neighbourhood_methods.py and
test_methods.py written over a `Context`: the rows of X, each row's ranking (its kNN lists),
whether row i counts as in row j's kNN(j, k), each row's farthest distance, and A^T for GNN.
`everything(x)` is the all context; the tests first check that the references over it give
exactly what the existing references give. `alone(q, g)` is the gallery context of one query:
X' = [q; G], the gallery rows ranking the gallery alone (q last: in none of their lists), q
ranking itself then the gallery, and q counting as in kNN(j, k) when it would enter it (j's
ranking over X', where q, row 0, wins ties). Each query is referenced alone, so that the test
also shows that no query sees another.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

import rerankbench
from conftest import assert_distances_close, make_featureset, plain_euclidean, plain_knn, plain_normalise
from rerankbench.engine import registry
from rerankbench.engine.contexts import GalleryDistances, in_context
from rerankbench.engine.distances import materialise
from rerankbench.engine.shared import SharedSteps
from rerankbench.features.featureset import FeatureSet, Split
from rerankbench.features.trials import trials
from test_methods import plain_expand
from test_neighbourhood_methods import plain_ecn, plain_gnn, plain_k_reciprocal, plain_rows, plain_sca


# ------------------------------------------------------------------------------ contexts
@dataclass
class Context:
    x: np.ndarray  # unit rows, float64
    lists: np.ndarray  # lists[i]: row i's ranking, itself first
    member: Callable[[int, int, int], bool]  # is row i in kNN(j, k)?
    farthest: np.ndarray  # each row's largest distance to the rows it is compared with
    reverse: Callable[[np.ndarray, int, int], np.ndarray]  # GNN's A^T at step r (0, 1) with its k1


def everything(x: np.ndarray) -> Context:
    lists = plain_knn(x, len(x))
    tops: dict = {}

    def member(i, j, k):
        tops.setdefault(k, [set(row[:k]) for row in lists])
        return i in tops[k][j]
    return Context(x, lists, member, plain_euclidean(x, x).max(1), lambda a, step, k1: a.T)


def alone(q: np.ndarray, g: np.ndarray) -> Context:
    x = np.vstack([q, g])
    n = len(g)
    full = plain_knn(x, n + 1)  # row j >= 1: j's ranking were q one more row of the gallery
    lists = np.vstack([full[0], np.hstack([1 + plain_knn(g, n), np.zeros((n, 1), dtype=np.int64)])])

    def member(i, j, k):
        return bool((full[j, :k] == 0).any()) if i == 0 and j != 0 else i in lists[j, :k]

    def reverse(a, step, k1):
        """The gallery's A^T over the gallery rows alone; q: its own entry, and at the first step a 1
        at each gallery row j whose kNN(j, k1) it would enter."""
        out = np.zeros_like(a)
        out[1:, 1:] = a[1:, 1:].T
        out[0, 0] = a[0, 0]
        if step == 0:
            out[0, 1:] = [member(0, j, k1) for j in range(1, n + 1)]
        return out
    return Context(x, lists, member, plain_euclidean(x, x)[:, 1:].max(1), reverse)


# ---------------------------------------------------------------------------- references
def expand(c: Context, k: int, alpha: float | None) -> np.ndarray:
    out = np.empty_like(c.x)
    for i in range(len(c.x)):
        members = c.x[c.lists[i, :k]]
        w = np.ones(k) if alpha is None else np.maximum(members @ c.x[i], 0.0) ** alpha
        out[i] = (w[:, None] * members).sum(0)
    return plain_normalise(out)


def k_reciprocal(c: Context, m: int, k1: int, k2: int, lam: float, power: int = 2) -> np.ndarray:
    e = plain_euclidean(c.x, c.x)
    d = (e / c.farthest[:, None]) ** power

    def reciprocal(i, k):
        return [j for j in c.lists[i, :k + 1] if c.member(i, j, k + 1)]
    v = np.zeros_like(d)
    for i in range(len(c.x)):
        r = reciprocal(i, k1)
        expansion = list(r)
        for candidate in r:
            rc = reciprocal(candidate, round(k1 / 2))
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expansion += rc
        members = np.unique(expansion)
        w = np.exp(-d[i, members])
        v[i, members] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[c.lists[i, :k2]].mean(0) for i in range(len(c.x))])
    s = np.stack([np.minimum(v[q], v[m:]).sum(1) for q in range(m)])
    return (1 - lam) * (1 - s / (2 - s)) + lam * d[:m, m:]


def sca(c: Context, m: int, k1: int, k2: int) -> np.ndarray:
    d = plain_euclidean(c.x, c.x) / c.farthest[:, None]
    f = np.zeros_like(d)
    for i in range(len(c.x)):
        w = np.exp(-d[i, c.lists[i, :k1]])
        f[i, c.lists[i, :k1]] = w / w.sum()
    if k2 != 1:
        f = np.stack([f[c.lists[i, :k2]].sum(0) for i in range(len(c.x))])
    s = np.stack([np.minimum(f[q], f[m:]).sum(1) for q in range(m)])
    return 1 - s / (2 * k2 - s)


def ecn(c: Context, m: int, k: int, t: int, q: int) -> np.ndarray:
    position = np.argsort(c.lists, axis=1)
    f = np.maximum(0, k - position).astype(np.float64)
    r = -(f @ f.T)

    def expanded(i):
        top = list(c.lists[i, 1:t + 1])
        return top + [j for n in top for j in c.lists[n, 1:q + 1]]
    out = np.array([[np.mean([r[e, p] for e in expanded(g)] + [r[e, g] for e in expanded(p)])
                     for g in range(m, len(c.x))] for p in range(m)])
    return np.where(out != 0, out, 1 - c.x[:m] @ c.x[m:].T)


def gnn(c: Context, m: int, k1: int, k2: int) -> np.ndarray:
    similarity = c.x @ c.x.T
    rank = c.lists[:, :k1]
    a = np.zeros_like(similarity)
    np.put_along_axis(a, rank, 1.0, axis=1)
    w = np.take_along_axis(similarity, rank, 1) ** 2
    if k2 != 1:
        for step in range(2):
            a = a + c.reverse(a, step, k1)
            a = np.stack([w[i, :k2] @ a[rank[i, :k2]] for i in range(len(c.x))])
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return 1 - a[:m] @ a[m:].T


def reference(c: Context, m: int, name: str, p: dict) -> np.ndarray:
    x = c.x
    if name == "baseline":
        return plain_euclidean(x[:m], x[m:])
    if name in ("aqe", "alpha_qe"):
        y = expand(c, p["k"], None if name == "aqe" else p["alpha"])
        return plain_euclidean(y[:m], y[m:])
    if name == "k_reciprocal":
        return k_reciprocal(c, m, p["k1"], p["k2"], p["lambda"], 4 if p["distance"] == "squared" else 2)
    if name == "alpha_qe_k_reciprocal":
        y = expand(c, p["k"], p["alpha"])
        return k_reciprocal(everything(y) if m > 1 else alone(y[0], y[1:]), m, p["k1"], p["k2"], p["lambda"])
    if name == "sca":
        return sca(c, m, p["k1"], p["k2"])
    if name == "ecn":
        return ecn(c, m, p["k"], p["t"], p["q"])
    if name == "gnn":
        return gnn(c, m, p["k1"], p["k2"])
    raise AssertionError(name)


def gallery_reference(fs: FeatureSet, name: str, p: dict) -> np.ndarray:
    x, m = plain_rows(fs)
    return np.stack([reference(alone(x[i], x[m:]), 1, name, p)[0] for i in range(m)])


# ------------------------------------------------------------------------------- the cases
def small(seed=3):
    """24 queries, 150 gallery images in 12-d: clusters of ~8 (reciprocal sets of several)."""
    return make_featureset(num_query=24, num_gallery=150, dim=12, num_ids=18, seed=seed, clustered=True, spread=0.6)


def loose(seed=5):
    return make_featureset(num_query=20, num_gallery=120, dim=16, num_ids=12, seed=seed, clustered=True, spread=1.2)


SETS = {"small": small, "loose": loose}
CASES = [
    ("small", "baseline", {}), ("small", "aqe", {}), ("small", "aqe", {"k": 1}), ("loose", "alpha_qe", {}),
    ("small", "alpha_qe", {"k": 12, "alpha": 2.5}),
    ("small", "k_reciprocal", {}), ("loose", "k_reciprocal", {"k1": 12}), ("small", "k_reciprocal", {"k1": 5}),
    ("small", "k_reciprocal", {"k1": 7, "k2": 1, "distance": "squared"}),
    ("small", "k_reciprocal", {"k1": 9, "lambda": 0.0}),
    ("small", "alpha_qe_k_reciprocal", {}), ("loose", "alpha_qe_k_reciprocal", {"k": 4, "alpha": 2.0, "k1": 9, "k2": 4}),
    ("small", "sca", {}), ("loose", "sca", {"k1": 4, "k2": 3}), ("small", "sca", {"k1": 12, "k2": 1}),
    ("small", "ecn", {}), ("loose", "ecn", {"k": 10, "t": 2, "q": 5}),
    ("small", "gnn", {}), ("loose", "gnn", {"k1": 12, "k2": 7}), ("small", "gnn", {"k1": 6, "k2": 1}),
    ("small", "gnn", {"k1": 4, "k2": 7}),
]


@pytest.fixture(scope="module")
def sets():
    return {name: make() for name, make in SETS.items()}


@pytest.mark.parametrize("data, method, params", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_the_references_over_everything_are_the_all_context_references(sets, data, method, params):
    """Over `everything(x)` the context-aware references give what the existing ones give."""
    fs = sets[data]
    p = registry.method(method, **params).resolved(fs)
    x, m = plain_rows(fs)
    existing = {"baseline": lambda: plain_euclidean(x[:m], x[m:]),
                "aqe": lambda: plain_euclidean(*np.split(plain_expand(x, p.get("k"), None), [m])),
                "alpha_qe": lambda: plain_euclidean(*np.split(plain_expand(x, p.get("k"), p.get("alpha")), [m])),
                "k_reciprocal": lambda: plain_k_reciprocal(x, m, p["k1"], p["k2"], p["lambda"],
                                                           4 if p.get("distance") == "squared" else 2),
                "alpha_qe_k_reciprocal": lambda: plain_k_reciprocal(plain_expand(x, p["k"], p["alpha"]), m, p["k1"],
                                                                    p["k2"], p["lambda"]),
                "sca": lambda: plain_sca(x, m, p.get("k1"), p.get("k2")),
                "ecn": lambda: plain_ecn(x, m, p.get("k"), p.get("t"), p.get("q")),
                "gnn": lambda: plain_gnn(x, m, p.get("k1"), p.get("k2"))}[method]()
    np.testing.assert_allclose(reference(everything(x), m, method, p), existing, rtol=0, atol=1e-12)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("data, method, params", CASES, ids=lambda v: v if isinstance(v, str) else None)
def test_matches_the_plain_gallery_context_reference(sets, data, method, params, device):
    fs = sets[data]
    want = gallery_reference(fs, method, registry.method(method, **params).resolved(fs))
    got = rerankbench.rerank(method, fs, device=device, context="gallery", **params)
    assert got.shape == (fs.num_query, fs.num_gallery) and got.dtype == np.float32
    assert_distances_close(got, want)
    assert rerankbench.evaluate(got, fs) == rerankbench.evaluate(want.astype(np.float32), fs)


# ------------------------------------------------------- as if each query arrived alone
QUICK = {"acp": {"layers": 1, "heads": 2, "slots": 2, "d_memory": 4, "d": 8, "epochs": 1, "epoch_size": 32}}
METHODS = list(registry.methods())


def subset(fs: FeatureSet, query_rows: np.ndarray, gallery_rows: np.ndarray, name: str = "part") -> FeatureSet:
    """The feature set of these rows of X = [Q; G] as queries and gallery (the train split and the
    data's k1 = N/C kept)."""
    x, ids = fs.stacked(), np.concatenate([fs.query.ids, fs.gallery.ids])
    cams = None if fs.query.cams is None else np.concatenate([fs.query.cams, fs.gallery.cams])

    def split(rows):
        return Split(x[rows], ids[rows], None if cams is None else cams[rows])
    return FeatureSet(name, split(query_rows), split(gallery_rows), train=fs.train, k_override=fs.default_k)


@pytest.mark.parametrize("name", METHODS)
def test_a_query_scores_as_it_would_alone(market_twin, name):
    """Each query's distances are those it gets when it is the only query."""
    fs = market_twin
    m, t = fs.num_query, fs.num_query + fs.num_gallery
    params = QUICK.get(name, {})
    together = rerankbench.rerank(name, fs, context="gallery", **params)
    for query in (0, m // 2, m - 1):
        alone_one = rerankbench.rerank(name, subset(fs, np.array([query]), np.arange(m, t)), context="gallery", **params)
        assert_distances_close(alone_one[0], together[query])


@pytest.mark.parametrize("name", METHODS)
def test_each_vehicleid_draw_is_its_own_gallery_context(vehicleid_twin, name):
    """On VehicleID's pool, one draw's distances are those of a feature set made of that draw's
    queries and gallery alone: the other draws' galleries, and the other queries, play no part."""
    fs = vehicleid_twin
    params = {**QUICK, "ecn": {"k": 12, "t": 3, "q": 5}}.get(name, {})  # its galleries hold 16 images
    method = registry.method(name, **params)
    distances = in_context(method, SharedSteps(fs), "gallery")
    assert isinstance(distances, GalleryDistances)
    for query_rows, gallery_rows in trials(fs)[:3]:
        part = subset(fs, query_rows, gallery_rows)
        want = rerankbench.rerank(name, part, context="gallery", **params)
        assert_distances_close(materialise(distances, query_rows, gallery_rows), want)


def test_a_neighbourhood_larger_than_the_gallery_is_refused(vehicleid_twin):
    assert min(len(g) for _, g in trials(vehicleid_twin)) == 16
    with pytest.raises(ValueError, match=r"^parameter ecn.k = 25 is larger than the 16 rows of the gallery "
                                         r"\(context gallery\)$"):
        rerankbench.rerank("ecn", vehicleid_twin, context="gallery")
    with pytest.raises(ValueError, match=r"^parameter k_reciprocal.k1 = 16 is larger than the 15 rows of the "
                                         r"gallery \(context gallery\) other than the row itself$"):
        rerankbench.rerank("k_reciprocal", vehicleid_twin, context="gallery", k1=16)
    rerankbench.rerank("k_reciprocal", vehicleid_twin, context="gallery", k1=15)


def test_acp_expands_a_query_over_its_gallery_neighbours(market_twin):
    """Eq. (1) written out over the gallery context's sequences: a gallery row's k1 nearest gallery
    rows, a query's itself and its k1 - 1 nearest gallery rows."""
    fs = market_twin
    method = registry.method("acp", **QUICK["acp"], k1=5, k2=3)
    shared = SharedSteps(fs)
    model = method.trained(shared).model
    raw = fs.stacked()
    x = plain_normalise(raw)
    m = fs.num_query
    near_gallery = m + np.argsort(-(x[:m] @ x[m:].T), axis=1, kind="stable")[:, :4]
    sequences = np.vstack([np.hstack([np.arange(m)[:, None], near_gallery]), m + plain_knn(x[m:], 5)])
    with torch.no_grad():
        s = torch.sigmoid(model(torch.tensor(raw[sequences]), 3)).double().numpy()
    y = plain_normalise(np.einsum("ik,ikd->id", s, x[sequences]))
    got = materialise(in_context(method, shared, "gallery"), np.arange(m), np.arange(m, len(x)))
    assert_distances_close(got, plain_euclidean(y[:m], y[m:]))
