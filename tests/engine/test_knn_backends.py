"""kNN backends (faiss flat, ivf, hnsw): graphs against a numpy brute force, recall measured as a
plain count says, parameters checked in one line, and each backend's graph cached apart."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import make_featureset, plain_euclidean, plain_normalise
from rerankbench.engine.knn_backends import parse_knn, recall_at_k
from rerankbench.engine.shared import SharedSteps

pytest.importorskip("faiss")


def _clustered(seed=0, rows=3000, dim=32):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(60, dim))
    x = centres[rng.integers(0, 60, rows)] + 0.5 * rng.normal(size=(rows, dim))
    return plain_normalise(x).astype(np.float32)


def brute_force(x: np.ndarray, k: int):
    """Self first, then by float64 similarity (no ties in these inputs)."""
    s = x.astype(np.float64) @ x.astype(np.float64).T
    np.fill_diagonal(s, np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    d = plain_euclidean(x, x)
    np.fill_diagonal(d, 0.0)
    return order, np.take_along_axis(d, order, 1)


def test_flat_is_the_brute_force_graph():
    x = _clustered()
    graph, found = parse_knn("flat").build(torch.from_numpy(x), 15)
    want, want_d = brute_force(x, 15)
    s = x.astype(np.float64) @ x.astype(np.float64).T
    rows, ranks = np.nonzero(graph.indices != want)  # only near-ties fp32 cannot order may swap
    np.testing.assert_allclose(s[rows, graph.indices[rows, ranks]], s[rows, want[rows, ranks]], atol=1e-6)
    assert len(rows) <= 4
    np.testing.assert_allclose(graph.distances, want_d, atol=1e-5)
    np.testing.assert_allclose(graph.farthest, np.sqrt(np.maximum(2 - 2 * s.min(1), 0)), atol=1e-5)
    assert found == {}


@pytest.mark.parametrize("backend,params", [("ivf", {"nlist": 30, "nprobe": 30}), ("ivf", {"nlist": 30, "nprobe": 2}),
                                            ("hnsw", {"efSearch": 64})])
def test_approximate_graphs_and_their_recall(backend, params):
    x = _clustered(1)
    graph, found = parse_knn(backend, params).build(torch.from_numpy(x), 10)
    want, _ = brute_force(x, 10)
    np.testing.assert_array_equal(graph.indices[:, 0], np.arange(len(x)))  # itself first
    sample = np.sort(np.random.default_rng(0).choice(len(x), 2000, replace=False))
    plain = np.mean([len(set(graph.indices[r]) & set(want[r])) / 10 for r in sample])
    assert found["knn_recall"] == pytest.approx(plain, abs=1e-12)
    d = np.sqrt(np.maximum(2 - 2 * np.einsum("id,ikd->ik", x.astype(np.float64), x[graph.indices].astype(np.float64)), 0))
    np.testing.assert_allclose(graph.distances[:, 1:], d[:, 1:], atol=1e-5)  # each found neighbour's true distance
    assert (np.diff(graph.distances[:, 1:], axis=1) >= -1e-6).all()
    if params.get("nprobe") == 30:  # every list probed: exact
        assert found["knn_recall"] == 1.0
    if params.get("nprobe") == 2:
        assert found["knn_recall"] < 1.0


def test_recall_counts_the_shared_neighbours():
    x = torch.from_numpy(_clustered(2, rows=200))
    exact, _ = parse_knn("exact").build(x, 5)
    assert recall_at_k(x, exact, 200) == 1.0
    broken = exact.indices.copy()
    broken[:, 4] = (broken[:, 4] + 1) % 200  # one of five wrong (where it was not already a neighbour)
    from rerankbench.engine.neighbours import KnnGraph
    plain = np.mean([len(set(b) & set(e)) / 5 for b, e in zip(broken, exact.indices)])
    assert recall_at_k(x, KnnGraph(broken, exact.distances, exact.farthest), 200) == pytest.approx(plain)


@pytest.mark.parametrize("backend,settings,message", [
    ("annoy", [], "unknown kNN backend 'annoy'"), ("ivf", ["nprobe"], "NAME=VALUE"),
    ("ivf", ["efSearch=3"], "has no parameter 'efSearch'"), ("hnsw", ["M=0"], "at least 1"),
    ("ivf", ["nlist=many"], "whole number"), ("exact", ["screen=fp8"], "one of fp32, bf16")])
def test_bad_backends_and_parameters_are_one_line_errors(backend, settings, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_knn(backend, settings)
    assert "\n" not in str(error.value)


def test_each_backend_is_cached_apart_with_its_recall(tmp_path):
    fs = make_featureset(40, 400, dim=16, clustered=True)
    first = SharedSteps(fs, cache_dir=tmp_path, knn=parse_knn("ivf", ["nlist=8", "nprobe=1"]))
    graph = first.knn_graph(6)
    other = SharedSteps(fs, cache_dir=tmp_path, knn=parse_knn("ivf", ["nlist=8", "nprobe=8"]))
    assert other.graph_folder != first.graph_folder and "graph-ivf-" in first.graph_folder.name
    exact = SharedSteps(fs, cache_dir=tmp_path)
    assert exact.graph_folder == exact.folder  # where the exact graph always was
    again = SharedSteps(fs, cache_dir=tmp_path, knn=parse_knn("ivf", ["nlist=8", "nprobe=1"]))
    np.testing.assert_array_equal(again.knn_graph(6).indices, graph.indices)
    assert again.timings["knn_graph"]["cached"] and again.knn_recall == first.knn_recall is not None
    assert exact.knn_recall is None and len(list(tmp_path.rglob("knn-*.npz"))) == 1
