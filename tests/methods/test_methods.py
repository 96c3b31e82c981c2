"""Baseline, AQE and alpha-QE against dense plain numpy re-implementations written from
spec/methods.md (no package code in the references)."""
from __future__ import annotations

import numpy as np
import pytest

import rerankbench
from conftest import assert_distances_close, clustered_set, plain_euclidean, plain_knn, plain_normalise, random_set
from rerankbench.features.featureset import FeatureSet, Split


# ----------------------------------------------------------------------- plain references
def plain_expand(x: np.ndarray, k: int, alpha: float | None) -> np.ndarray:
    """x'_i = normalise(sum_{j in kNN(i,k)} w_ij x_j); w = 1 (AQE) or max(cos, 0)^alpha (alpha-QE)."""
    neighbours = plain_knn(x, k)
    out = np.empty_like(x)
    for i in range(len(x)):
        members = x[neighbours[i]]
        if alpha is None:
            w = np.ones(len(members))
        else:
            w = np.maximum(members @ x[i], 0.0) ** alpha
        out[i] = (w[:, None] * members).sum(0)
    return plain_normalise(out)


def plain_method(fs: FeatureSet, name: str, k: int | None = None, alpha: float = 3.0) -> np.ndarray:
    """The M x N distances of a method from the spec, dense, float64."""
    x = plain_normalise(np.concatenate([fs.query.features, fs.gallery.features]))
    m = fs.num_query
    if name == "baseline":
        return plain_euclidean(x[:m], x[m:])
    y = plain_expand(x, k, None if name == "aqe" else alpha)
    return plain_euclidean(y[:m], y[m:])


CASES = [  # (data, method, params for rerankbench.rerank, k for the reference)
    ("random", "baseline", {}, None),
    ("clustered", "baseline", {}, None),
    ("random", "aqe", {}, "N/C"),
    ("clustered", "aqe", {}, "N/C"),
    ("clustered", "aqe", {"k": 1}, 1),
    ("clustered", "aqe", {"k": 40}, 40),
    ("random", "alpha_qe", {}, "N/C"),
    ("clustered", "alpha_qe", {}, "N/C"),
    ("clustered", "alpha_qe", {"k": 7, "alpha": 2.5}, 7),
    # k far beyond the clusters: many neighbours with negative cosine, clipped to weight 0
    ("random", "alpha_qe", {"k": 400, "alpha": 2.5}, 400),
    ("clustered", "alpha_qe", {"k": 250, "alpha": 1.0}, 250),
]


@pytest.fixture(scope="module")
def sets():
    return {"random": random_set(), "clustered": clustered_set()}


@pytest.mark.parametrize("data, method, params, k", CASES)
def test_method_matches_plain_reference(sets, data, method, params, k):
    fs = sets[data]
    if k == "N/C":
        k = fs.default_k
    want = plain_method(fs, method, k, params.get("alpha", 3.0))
    assert want.min() > 1e-2  # no collapsed rows (see clustered_set): every distance is resolvable
    got = rerankbench.rerank(method, fs, **params)
    assert got.shape == (fs.num_query, fs.num_gallery) and got.dtype == np.float32
    assert_distances_close(got, want)
    # identical ranking: the metrics of both are exactly equal
    assert rerankbench.evaluate(got, fs) == rerankbench.evaluate(want.astype(np.float32), fs)


def test_clipping_matters_in_the_alpha_case(sets):
    # the k = 400 case above really has negative cosines among the neighbours, and clipping
    # them changes the result (the case is not vacuous): compare with signed weights
    # sign(c) |c|^alpha, which a method without the clip would amount to for odd powers
    fs = sets["random"]
    x = plain_normalise(fs.stacked())
    neighbours = plain_knn(x, 400)
    cos = np.take_along_axis(x @ x.T, neighbours, axis=1)
    assert (cos < 0).mean() > 0.1
    signed = np.sign(cos) * np.abs(cos) ** 2.5
    y_signed = plain_normalise(np.einsum("ik,ikd->id", signed, x[neighbours]))
    m = fs.num_query
    got = rerankbench.rerank("alpha_qe", fs, k=400, alpha=2.5)
    assert np.isfinite(got).all()
    assert np.abs(got - plain_euclidean(y_signed[:m], y_signed[m:])).max() > 1e-3


def test_default_k_values(sets):
    # N/C: the gallery's images per identity, hand-checked from the construction:
    # random set: 500 images of 40 identities -> round(12.5) = 12 (Python rounds half to even)
    assert sets["random"].default_k == round(500 / 40) == 12
    # clustered: 900 images; identities 1..60 present plus the distractor label 0 (junk -1 not
    # counted): the package counts every label >= 0
    ids = sets["clustered"].gallery.ids
    assert sets["clustered"].default_k == round(900 / len(np.unique(ids[ids >= 0])))


def test_aqe_with_k1_is_the_baseline(sets):
    fs = sets["clustered"]
    np.testing.assert_allclose(rerankbench.rerank("aqe", fs, k=1), rerankbench.rerank("baseline", fs), atol=1e-6)


# ------------------------------------------------------------------- hand-worked tiny case
def _tiny():
    # X = [q; g1; g2; g3] in 2-D: q = (1, 0), g1 = (.8, .6), g2 = (0, 1), g3 = (-1, 0)
    q = Split(np.array([[1.0, 0.0]], np.float32), np.array([1]))
    g = Split(np.array([[0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]], np.float32), np.array([1, 2, 3]))
    return FeatureSet("tiny", q, g)


def test_aqe_hand_worked_expands_gallery_rows_too():
    # k = 2. Cosines: q.g1 = .8, q.g2 = 0, q.g3 = -1, g1.g2 = .6, g1.g3 = -.8, g2.g3 = 0.
    #   kNN(q) = [q, g1]   -> q'  ~ (1.8, .6)
    #   kNN(g1) = [g1, q]  -> g1' ~ (1.8, .6)          (so d(q', g1') = 0)
    #   kNN(g2) = [g2, g1] -> g2' ~ (.8, 1.6)
    #   kNN(g3) = [g3, g2] -> g3' ~ (-1, 1)
    # cos(q', g2') = (1.44 + .96) / (sqrt(3.6) sqrt(3.2)) = 2.4 / (2.4 sqrt 2) = 1/sqrt2
    # cos(q', g3') = (-1.8 + .6) / (sqrt(3.6) sqrt 2) = -1.2 / sqrt(7.2) = -1/sqrt5
    d = rerankbench.rerank("aqe", _tiny(), k=2)
    want = [[0.0, np.sqrt(2 - np.sqrt(2)), np.sqrt(2 + 2 / np.sqrt(5))]]
    np.testing.assert_allclose(d, want, atol=1e-3)  # the 0 is a float32 sqrt(2 - 2cos): see test_neighbours
    np.testing.assert_allclose(d[:, 1:], np.array(want)[:, 1:], atol=1e-6)
    # with the query expanded alone, d(q', g1) = sqrt(2 - 2 (1.8*.8 + .6*.6)/sqrt(3.6)) = 0.3249...:
    # the 0 above shows the gallery row g1 was expanded as well
    query_only = np.sqrt(2 - 2 * (1.8 * 0.8 + 0.6 * 0.6) / np.sqrt(3.6))
    assert query_only > 0.3 and d[0, 0] < 1e-3


def test_alpha_qe_hand_worked():
    # alpha = 1, k = 2: q' ~ q + .8 g1 = (1.64, .48), g1' ~ g1 + .8 q = (1.6, .6),
    #   |q'|^2 = 2.6896 + .2304 = 2.92, |g1'|^2 = 2.56 + .36 = 2.92, q'.g1' = 2.624 + .288 = 2.912
    #   -> d(q', g1') = sqrt(2 - 2 * 2.912/2.92)
    # g2' ~ g2 + .6 g1 = (.48, 1.36): cos(q', g2') = (1.64*.48 + .48*1.36)/(sqrt(2.92) sqrt(.2304 + 1.8496))
    # g3' ~ g3 + 0 * g2 = g3 (cos(g3, g2) = 0 gets weight 0): cos(q', g3') = -1.64/sqrt(2.92)
    d = rerankbench.rerank("alpha_qe", _tiny(), k=2, alpha=1)
    want = [np.sqrt(2 - 2 * 2.912 / 2.92),
            np.sqrt(2 - 2 * (1.64 * 0.48 + 0.48 * 1.36) / (np.sqrt(2.92) * np.sqrt(2.08))),
            np.sqrt(2 + 2 * 1.64 / np.sqrt(2.92))]
    np.testing.assert_allclose(d[0], want, atol=2e-5)


def test_alpha_qe_clips_negative_similarities():
    # k = 4 (everything), alpha = 2.5: negative cosines get weight 0 instead of NaN.
    #   q:  weights q 1, g1 .8^2.5, g2 0, g3 0      -> q'  ~ (1 + .8^3.5, .6 * .8^2.5)
    #   g1: weights g1 1, q .8^2.5, g2 .6^2.5, g3 0 -> g1' ~ (.8 + .8^2.5, .6 + .6^2.5)
    #   g2: weights g2 1, g1 .6^2.5, q 0, g3 0      -> g2' ~ (.8 * .6^2.5, 1 + .6 * .6^2.5)
    #   g3: weights g3 1, others 0 (cos 0, -.8, -1) -> g3' = g3
    a, b = 0.8 ** 2.5, 0.6 ** 2.5
    qp = np.array([1 + 0.8 * a, 0.6 * a])
    gp = np.array([[0.8 + a, 0.6 + b], [0.8 * b, 1 + 0.6 * b], [-1.0, 0.0]])
    qp /= np.linalg.norm(qp)
    gp /= np.linalg.norm(gp, axis=1, keepdims=True)
    want = np.sqrt(2 - 2 * gp @ qp)
    d = rerankbench.rerank("alpha_qe", _tiny(), k=4, alpha=2.5)
    assert np.isfinite(d).all()
    np.testing.assert_allclose(d[0], want, atol=2e-5)


def test_expansion_applies_to_gallery_rows(sets):
    # on the clustered set, AQE's result is far from "expand the queries only" and equal to the
    # reference that expands query and gallery rows alike
    fs = sets["clustered"]
    k = fs.default_k
    x = plain_normalise(fs.stacked())
    y = plain_expand(x, k, None)
    m = fs.num_query
    query_only = plain_euclidean(y[:m], x[m:])
    both = plain_euclidean(y[:m], y[m:])
    got = rerankbench.rerank("aqe", fs)
    assert np.abs(got - query_only).max() > 0.1
    assert_distances_close(got, both)
