"""The exact graph's other builds -- by row shards (Ray's) and screened by bf16 products -- equal
neighbours.build_knn_graph exactly (indices, distances, farthest), on random and tied inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import plain_normalise
from rerankbench.engine.neighbours import build_knn_graph
from rerankbench.engine.row_shards import build_by_shards, shard_bounds
from rerankbench.engine.screened_graph import U, build_screened_graph, layout_independent, rounding_bounds


def _inputs(seed: int, rows: int, dim: int, ties: bool) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, rows // 20), dim))
    x = centres[rng.integers(0, len(centres), rows)] + 0.7 * rng.normal(size=(rows, dim))
    if ties:
        x[[10, 25, 41]] = x[3]  # exact duplicates: ties broken by the smaller row
        x[rows - 30:rows - 5] = x[rows - 31]  # a tie run longer than the margin K + 8: sorted whole
        x[33] = x[0] * 2.5  # a duplicate after normalisation
    return torch.from_numpy(plain_normalise(x).astype(np.float32))


CASES = [(0, 60, 8, True, 7), (1, 700, 64, True, 20), (2, 1500, 256, False, 30), (3, 5000, 128, True, 12)]


def _same(a, b):
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.distances, b.distances)
    np.testing.assert_array_equal(a.farthest, b.farthest)


@pytest.mark.parametrize("seed,rows,dim,ties,k", CASES)
@pytest.mark.parametrize("shards", [1, 3, 8])
def test_row_shards_give_the_exact_graph(seed, rows, dim, ties, k, shards):
    x = _inputs(seed, rows, dim, ties)
    _same(build_by_shards(x, k, shards), build_knn_graph(x, k))


def test_shard_bounds_cover_the_rows_once():
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert shard_bounds(2, 5) == [(0, 1), (1, 2)]


@pytest.mark.parametrize("seed,rows,dim,ties,k", CASES)
def test_screened_graph_is_the_exact_graph(seed, rows, dim, ties, k):
    x = _inputs(seed, rows, dim, ties)
    _same(build_screened_graph(x, k), build_knn_graph(x, k))


def test_screened_graph_rescores_a_row_of_many_ties_whole():
    x = _inputs(4, 900, 32, True)
    x[200:700] = x[199]  # 501 equal rows: each one's pool holds all of them
    _same(build_screened_graph(x, 10), build_knn_graph(x, 10))


def test_screened_graph_over_many_blocks_and_a_short_last_group(monkeypatch):
    import rerankbench.engine.screened_graph as screened
    monkeypatch.setattr(screened, "BLOCK_BYTES", 2 * 700 * 48)  # blocks of 48 rows, the last of 28 (700 = 14 x 48 + 28)
    x = _inputs(1, 700, 64, True)
    _same(build_screened_graph(x, 20), build_knn_graph(x, 20))


@pytest.mark.parametrize("rows,k", [(1, 5), (2, 5), (17, 40), (33, 3)])
def test_screened_graph_of_a_few_rows(rows, k):
    x = _inputs(6, rows, 16, False) if rows > 2 else torch.nn.functional.normalize(torch.ones(rows, 16), dim=1)
    _same(build_screened_graph(x, k), build_knn_graph(x, k))


def test_the_bound_holds_and_is_tighter_than_the_worst_case():
    x = _inputs(5, 2000, 2048, False)
    cheap = x.bfloat16()
    c = (cheap[:500] @ cheap.T).double()
    exact = x[:500].double() @ x.double().T
    bound = rounding_bounds(x, cheap)[:500, None]
    slack = bound + U * c.abs() - (c - exact).abs()  # |c - s| <= u |c| + A_i, s itself within g_D of exact
    assert slack.min().item() > 1e-4
    assert 0.0030 < bound.min().item() <= bound.max().item() < 0.0045  # the worst case, 2u + u^2, is 0.0079


def test_knn_benchmark_reports_the_screened_graph_equal_to_the_exact_one(tmp_path):
    import json
    from rerankbench.cli import main
    assert main(["knn-benchmark", "--dataset", "market1501", "--scale", "0.02", "--k", "10", "--backends", "none",
                 "--output", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "knn_graphs_market1501.json").read_text())
    assert figures["screened_identical"] or not layout_independent()  # identical wherever its premise holds (screened_graph.py)
    assert figures["rows"] == 385 and "ivf_s" not in figures
    assert "--backends none" in (tmp_path / "knn_graphs_market1501.md").read_text()


@pytest.mark.parametrize("seed,rows,dim,ties,k", CASES)
@pytest.mark.parametrize("chosen", [3, 40, "half"])
def test_the_lists_of_any_rows_are_the_exact_graphs_rows(seed, rows, dim, ties, k, chosen, monkeypatch):
    import rerankbench.engine.row_shards as row_shards
    monkeypatch.setattr(row_shards, "CHUNK_ROWS", 64)  # several chunks, the last a short one
    x = _inputs(seed, rows, dim, ties)
    picked = np.random.default_rng(seed).permutation(rows)[:rows // 2 if chosen == "half" else chosen]
    picked = np.concatenate([picked, [3, 10, rows - 20]])  # with tied rows, in no order
    indices, distances, lowest = row_shards.rows_knn(x, picked, k)
    whole = build_knn_graph(x, k)
    np.testing.assert_array_equal(indices, whole.indices[picked])
    np.testing.assert_array_equal(distances, whole.distances[picked])
    np.testing.assert_array_equal(row_shards.euclidean_from_similarity(torch.from_numpy(lowest)).numpy(),
                                  whole.farthest[picked])


def test_the_lists_of_no_rows_are_empty():
    from rerankbench.engine.row_shards import rows_knn
    indices, distances, lowest = rows_knn(_inputs(0, 60, 8, False), np.array([], np.int64), 7)
    assert indices.shape == distances.shape == (0, 7) and lowest.shape == (0,)
