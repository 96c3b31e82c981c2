"""The gallery context's shared steps: the gallery's own kNN graph (every other row an outsider
that lists itself and its nearest gallery rows), reciprocity as entering a list, and the steps
made once per gallery and cached."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import assert_distances_close, make_featureset, plain_euclidean, plain_normalise
from rerankbench.engine.contexts import galleries
from rerankbench.engine.expansion import expand
from rerankbench.engine.neighbours import build_gallery_graph, build_knn_graph
from rerankbench.engine.reciprocal import reciprocal_sets
from rerankbench.engine.shared import SharedSteps
from test_neighbours import _with_duplicates, block_side  # noqa: F401 (a fixture)

GALLERY = np.array([0, 2, 3, 5, 7, 10, 11, 12, 17, 20, 25, 30, 31, 33, 40, 44, 50, 55, 59])


@pytest.mark.parametrize("k", [1, 2, 5, 19, 25])
def test_gallery_graph_against_brute_force(k, block_side):
    """The gallery rows' lists are the kNN graph of the gallery alone (build_knn_graph, tested in
    test_neighbours.py); the others' their nearest gallery rows, against brute force. Rows 3, 10, 25,
    41 are copies (ties by index), as are 7, 44, 50 (in the gallery) and 0, 33; outside the gallery,
    row 41 copies gallery rows 3, 10, 25."""
    x = _with_duplicates()
    graph = build_gallery_graph(torch.from_numpy(x), GALLERY, k)
    assert graph.k == min(k, len(GALLERY))  # a gallery row's list holds the gallery at most
    k = graph.k
    x64 = x.astype(np.float64)
    own = build_knn_graph(torch.from_numpy(x[GALLERY]), k)
    np.testing.assert_array_equal(graph.indices[GALLERY], GALLERY[own.indices])
    np.testing.assert_array_equal(graph.distances[GALLERY], own.distances)
    assert_distances_close(graph.distances[GALLERY], np.take_along_axis(
        plain_euclidean(x64[GALLERY], x64[GALLERY]), own.indices, 1))
    outside = np.setdiff1d(np.arange(60), GALLERY)
    np.testing.assert_array_equal(graph.outsiders, np.isin(np.arange(60), outside))
    s = np.round(x64[outside] @ x64[GALLERY].T, 9)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k - 1]
    np.testing.assert_array_equal(graph.indices[outside], np.hstack([outside[:, None], GALLERY[order]]))
    d = plain_euclidean(x64[outside], x64[GALLERY])
    assert_distances_close(graph.distances[outside], np.hstack([np.zeros((len(outside), 1)),
                                                                np.take_along_axis(d, order, 1)]))
    assert_distances_close(graph.farthest[outside], d.max(1))
    assert_distances_close(graph.farthest[GALLERY], plain_euclidean(x64[GALLERY], x64[GALLERY]).max(1))
    assert graph.truncated(1).outsiders is graph.outsiders


def test_an_outsider_is_in_a_gallery_rows_list_when_it_would_enter_it():
    """Points on a line: gallery rows 1, 2, 3 at 0, 1, 3; the outsider row 0 at 1.5 (d = 1.5, 0.5, 1.5).
    Row 2's kNN(2, 2) is [2, 1] (d 1): the outsider, at 0.5, would enter it; row 1's is [1, 2] (d 1):
    at 1.5 it would not; row 3's is [3, 2] (d 2): at 1.5 it would. R(0, 1): of kNN(0, 2) = [0, 2], 2."""
    knn = torch.tensor([[0, 2, 1], [1, 2, 3], [2, 1, 3], [3, 2, 1]])
    distances = torch.tensor([[0.0, 0.5, 1.5], [0.0, 1.0, 3.0], [0.0, 1.0, 2.0], [0.0, 2.0, 3.0]])
    outsiders = torch.tensor([True, False, False, False])
    sets = reciprocal_sets(knn, 1, distances, outsiders)
    assert sets[0].tolist() == [0, 2]
    assert sets[1].tolist() == [1, 2] and sets[2].tolist() == [2, 1] and sets[3].tolist() == [3, -1]
    assert reciprocal_sets(knn, 1)[0].tolist() == [0, -1]  # read from the lists, row 0 is in none
    assert reciprocal_sets(knn, 2, distances, outsiders)[0].tolist() == [0, 2, 1]  # 1.5 <= row 1's 3.0


def test_the_gallery_steps_are_made_once_per_gallery_and_cached(tmp_path):
    fs = make_featureset(num_query=20, num_gallery=80, dim=8, num_ids=10, clustered=True, protocol="vehicleid")
    shared = SharedSteps(fs, cache_dir=tmp_path)
    steps = galleries(shared)
    assert len(steps) == 10 and len({id(s) for s in steps}) == 10  # one per draw
    assert galleries(shared)[3] is steps[3]
    first = steps[0]
    graph = first.knn_graph(4)
    assert graph.outsiders.sum() == 100 - len(first.gallery) and first.timings["knn_graph"]["cached"] is False
    assert first.query_gallery_distances() is shared.query_gallery_distances()  # the same X, the same distances
    label = next(name for name, child in shared.children.items() if child is first)
    assert (first.folder / "knn-4.npz").exists() and first.folder == shared.folder / label
    assert shared.summary()[label]["gallery"] == {"rows": len(first.gallery)}
    expanded = first.derived("aqe", lambda parent: expand(parent.features, parent.knn_graph(4), 4,
                                                          lambda _, s: torch.ones_like(s)))
    assert expanded.gallery is first.gallery and expanded.knn_graph(3).outsiders is not None
    rows, columns = expanded.candidates()
    np.testing.assert_array_equal(columns, first.gallery)
    assert expanded.query_gallery_distances().matrix.shape == (100 - len(first.gallery), len(first.gallery))
    again = galleries(SharedSteps(fs, cache_dir=tmp_path))[0]
    np.testing.assert_array_equal(again.knn_graph(4).indices, graph.indices)
    assert again.timings["knn_graph"]["cached"] is True
    np.testing.assert_array_equal(again.knn_graph(4).outsiders, graph.outsiders)


def test_a_query_like_a_gallery_row_lists_it_first(block_side):
    """A query that copies a gallery row lists itself, then that row at distance ~0."""
    x = plain_normalise(np.random.default_rng(2).normal(size=(30, 6)))
    x[0] = x[17]
    graph = build_gallery_graph(torch.from_numpy(x.astype(np.float32)), np.arange(10, 30), 3)
    assert graph.indices[0].tolist()[:2] == [0, 17] and graph.distances[0, 1] < 1e-3
