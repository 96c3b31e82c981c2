"""The exact kNN graph and the shared steps (with their disk cache)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import assert_distances_close, make_featureset, plain_euclidean, plain_normalise
from rerankbench.engine.distances import materialise
from rerankbench.engine.neighbours import KnnGraph, build_knn_graph
from rerankbench.engine.shared import SharedSteps


def brute_force_knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Self first, then by distance, ties (exact duplicates) by smaller index; float64.

    Similarities are rounded to 1e-9 before ordering so that the rows built as exact
    duplicates tie; distinct rows here differ by far more than that.
    """
    s = np.round(x @ x.T, 9)
    np.fill_diagonal(s, np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    d = plain_euclidean(x, x)
    np.fill_diagonal(d, 0.0)
    return order, np.take_along_axis(d, order, axis=1)


def _with_duplicates(seed=0, rows=60, dim=8):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, dim))
    x[[10, 25, 41]] = x[3]  # row 3 and three exact copies
    x[[7, 50]] = x[44]  # row 44 and two copies
    x[33] = x[0] * 2.5  # same direction, different norm: a duplicate after normalisation
    return plain_normalise(x).astype(np.float32)


@pytest.fixture(params=[None, 16, 7], ids=["one-block", "blocks-of-16", "blocks-of-7"])
def block_side(request, monkeypatch):
    """Square blocks of X X^T of this side (None: the default, one block for these sizes), so
    that the running merge of candidates across blocks and the transposed updates are tested."""
    import rerankbench.engine.neighbours
    if request.param:
        monkeypatch.setattr(rerankbench.engine.neighbours, "GRAPH_BLOCK_BYTES", 4 * request.param ** 2)
    return request.param


@pytest.mark.parametrize("k", [1, 2, 4, 7, 60])
def test_knn_graph_matches_brute_force(k, block_side):
    x = _with_duplicates()
    graph = build_knn_graph(torch.from_numpy(x), k)
    want_idx, want_d = brute_force_knn(x.astype(np.float64), k)
    assert graph.indices.shape == (60, k) and graph.distances.dtype == np.float32
    np.testing.assert_array_equal(graph.indices[:, 0], np.arange(60))  # self first
    np.testing.assert_array_equal(graph.indices, want_idx)
    assert_distances_close(graph.distances, want_d)
    assert graph.k == k


def test_duplicates_come_in_index_order(block_side):
    # hand-worked: row 3 has exact copies 10, 25, 41 (distance 0): kNN(3, 4) = [3, 10, 25, 41],
    # kNN(25, 4) = [25, 3, 10, 41] (self first, then the copies by index)
    x = _with_duplicates()
    graph = build_knn_graph(torch.from_numpy(x), 4)
    assert graph.indices[3].tolist() == [3, 10, 25, 41]
    assert graph.indices[25].tolist() == [25, 3, 10, 41]
    assert graph.indices[41].tolist() == [41, 3, 10, 25]
    assert graph.indices[50].tolist()[:3] == [50, 7, 44]
    np.testing.assert_allclose(graph.distances[3], 0.0, atol=1e-3)
    assert graph.distances[3, 0] == 0.0  # self exactly 0
    assert graph.indices[33, 1] == 0 and graph.indices[0, 1] == 33


def test_many_exact_ties_break_by_index(block_side):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8))
    x[::2] = x[0]  # rows 0, 2, 4, ..., 58: thirty exact copies
    x = plain_normalise(x).astype(np.float32)
    graph = build_knn_graph(torch.from_numpy(x), 5)
    assert graph.indices[0].tolist() == [0, 2, 4, 6, 8]
    assert graph.indices[4].tolist() == [4, 0, 2, 6, 8]


def test_k_larger_than_rows_is_clipped(block_side):
    x = _with_duplicates(rows=60)
    graph = build_knn_graph(torch.from_numpy(x), 100)
    assert graph.indices.shape == (60, 60)
    for row in graph.indices:
        assert sorted(row.tolist()) == list(range(60))


def test_farthest_and_kept_distances(block_side):
    # farthest[i] = max_j ||x_i - x_j||; keep=(rows, columns, out) writes those distances from
    # the same products, for contiguous and for scattered rows and columns
    x = _with_duplicates(rows=60)[:50]
    d = plain_euclidean(x.astype(np.float64), x.astype(np.float64))
    rows, columns = np.arange(5, 20), np.arange(20, 50)
    scattered_rows, scattered_columns = np.array([1, 40, 3, 22]), np.array([0, 2, 30, 31, 49])
    out = np.zeros((len(rows), len(columns)), np.float32)
    graph = build_knn_graph(torch.from_numpy(x), 6, keep=(rows, columns, out))
    np.testing.assert_allclose(graph.farthest, d.max(1), atol=1e-5)
    assert_distances_close(out, d[np.ix_(rows, columns)])
    out = np.zeros((4, 5), np.float32)
    build_knn_graph(torch.from_numpy(x), 6, keep=(scattered_rows, scattered_columns, out))
    assert_distances_close(out, d[np.ix_(scattered_rows, scattered_columns)])


def test_truncated():
    graph = KnnGraph(np.arange(12).reshape(3, 4), np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), np.ones(3, np.float32))
    small = graph.truncated(2)
    assert small.k == 2
    np.testing.assert_array_equal(small.indices, [[0, 1], [4, 5], [8, 9]])
    np.testing.assert_array_equal(small.distances, graph.distances[:, :2])
    assert graph.truncated(4).k == 4
    with pytest.raises(ValueError, match="4 neighbours"):
        graph.truncated(5)


# ------------------------------------------------------------------------ shared steps and cache
def test_shared_features_are_normalised_stack():
    fs = make_featureset(num_query=12, num_gallery=40, dim=8, seed=2)
    shared = SharedSteps(fs)
    want = plain_normalise(np.concatenate([fs.query.features, fs.gallery.features]))
    np.testing.assert_allclose(shared.features.numpy(), want, atol=1e-6)
    assert shared.features.dtype == torch.float32
    # the feature set itself is left as given
    assert not np.allclose(np.linalg.norm(fs.query.features, axis=1), 1.0)


def test_knn_graph_cache_round_trip(tmp_path):
    fs = make_featureset(num_query=20, num_gallery=80, dim=16, seed=1)
    first = SharedSteps(fs, cache_dir=tmp_path)
    g1 = first.knn_graph(5)
    assert first.timings["knn_graph"]["cached"] is False
    want_idx, want_d = brute_force_knn(plain_normalise(fs.stacked()), 5)
    np.testing.assert_array_equal(g1.indices, want_idx)
    assert_distances_close(g1.distances, want_d)

    second = SharedSteps(fs, cache_dir=tmp_path)
    g2 = second.knn_graph(5)
    assert second.timings["knn_graph"]["cached"] is True
    np.testing.assert_array_equal(g2.indices, g1.indices)
    np.testing.assert_array_equal(g2.distances, g1.distances)

    third = SharedSteps(fs, cache_dir=tmp_path)  # a smaller k is served by the stored k = 5
    g3 = third.knn_graph(3)
    assert third.timings["knn_graph"]["cached"] is True
    np.testing.assert_array_equal(g3.indices, g1.indices[:, :3])

    fourth = SharedSteps(fs, cache_dir=tmp_path)  # a larger k than stored is computed again
    g4 = fourth.knn_graph(9)
    assert fourth.timings["knn_graph"]["cached"] is False
    assert fourth.timings["knn_graph"]["k"] == 9
    np.testing.assert_array_equal(g4.indices[:, :5], g1.indices)
    want_idx, _ = brute_force_knn(plain_normalise(fs.stacked()), 9)
    np.testing.assert_array_equal(g4.indices, want_idx)
    # and within one SharedSteps a smaller k after a larger one reuses the graph in memory
    np.testing.assert_array_equal(fourth.knn_graph(2).indices, g1.indices[:, :2])

    other = make_featureset(num_query=20, num_gallery=80, dim=16, seed=7)  # another fingerprint
    fifth = SharedSteps(other, cache_dir=tmp_path)
    fifth.knn_graph(5)
    assert fifth.timings["knn_graph"]["cached"] is False


def test_query_gallery_distances_and_cache(tmp_path):
    fs = make_featureset(num_query=15, num_gallery=50, dim=16, seed=3)
    x = plain_normalise(fs.stacked())
    want = plain_euclidean(x[:15], x[15:])
    m, t = 15, 65
    first = SharedSteps(fs, cache_dir=tmp_path)
    d1 = materialise(first.query_gallery_distances(), np.arange(m), np.arange(m, t))
    assert first.timings["distances"]["cached"] is False
    np.testing.assert_allclose(d1, want, atol=1e-5)
    second = SharedSteps(fs, cache_dir=tmp_path)
    d2 = materialise(second.query_gallery_distances(), np.arange(m), np.arange(m, t))
    assert second.timings["distances"]["cached"] is True
    np.testing.assert_array_equal(d1, d2)
    # a subset of rows and columns, in any order, comes from the same matrix
    rows, cols = np.array([4, 0, 9]), np.array([60, 15, 33, 34])
    sub = materialise(second.query_gallery_distances(), rows, cols)
    np.testing.assert_array_equal(sub, d1[np.ix_(rows, cols - m)])
    with pytest.raises(IndexError):  # gallery rows are not query candidates in the market protocol
        materialise(second.query_gallery_distances(), np.array([20]), np.array([30]))


def test_shared_distances_without_cache():
    fs = make_featureset(num_query=10, num_gallery=30, dim=8, seed=4)
    shared = SharedSteps(fs)
    x = plain_normalise(fs.stacked())
    d = materialise(shared.query_gallery_distances(), np.arange(10), np.arange(10, 40))
    np.testing.assert_allclose(d, plain_euclidean(x[:10], x[10:]), atol=1e-5)
    assert shared.folder is None


def test_vehicleid_shared_distances_cover_all_rows():
    fs = make_featureset(num_query=20, num_gallery=10, dim=8, seed=5, protocol="vehicleid", num_cams=None)
    shared = SharedSteps(fs)
    x = plain_normalise(fs.stacked())
    full = materialise(shared.query_gallery_distances(), np.arange(30), np.arange(30))
    assert_distances_close(full, plain_euclidean(x, x))


@pytest.mark.parametrize("protocol", ["market", "vehicleid"])
def test_build_makes_graph_and_distances_in_one_pass(tmp_path, protocol, block_side):
    fs = make_featureset(num_query=40, num_gallery=200, dim=8, seed=3, protocol=protocol)
    rows = np.arange(240) if protocol == "vehicleid" else np.arange(40)
    columns = np.arange(240) if protocol == "vehicleid" else np.arange(40, 240)
    fused = SharedSteps(fs, cache_dir=tmp_path)
    fused.build(10, True)
    assert fused.timings["knn_graph"]["with_distances"] and fused.timings["distances"]["with_knn_graph"]
    apart = SharedSteps(fs)
    np.testing.assert_array_equal(fused.knn_graph(10).indices, apart.knn_graph(10).indices)
    np.testing.assert_array_equal(fused.knn_graph(10).farthest, apart.knn_graph(10).farthest)
    want = plain_euclidean(plain_normalise(fs.stacked())[rows], plain_normalise(fs.stacked())[columns])
    assert_distances_close(materialise(fused.query_gallery_distances(), rows, columns), want)
    assert_distances_close(materialise(apart.query_gallery_distances(), rows, columns), want)
    again = SharedSteps(fs, cache_dir=tmp_path)  # both come back from the cache
    again.build(10, True)
    assert again.timings["knn_graph"]["cached"] and again.timings["distances"]["cached"]
    np.testing.assert_array_equal(materialise(again.query_gallery_distances(), rows, columns),
                                  materialise(fused.query_gallery_distances(), rows, columns))
