"""Runs with a kNN backend and top-L re-ranking: recorded in every record, part of the cell's
identity, top-L chosen when the matrix exceeds the budget (said in one line), bad input refused."""
from __future__ import annotations

import pytest

from rerankbench.engine.knn_backends import parse_knn
from rerankbench.harness.runner import RunOptions, run_benchmark
from rerankbench.harness.store import cell_key_of

OPTIONS = dict(scale=0.02, dim=32, show_progress=False, threads=1)
CELLS = [("baseline", {}), ("k_reciprocal", {})]


def test_backend_and_top_l_are_recorded_and_name_the_cell(tmp_path):
    pytest.importorskip("faiss")
    exact = run_benchmark(["market1501"], CELLS, RunOptions(results=str(tmp_path), **OPTIONS), log=lambda _: None)
    log = []
    approx = run_benchmark(["market1501"], CELLS, RunOptions(results=str(tmp_path), knn=parse_knn("hnsw"),
                                                             matrix_budget_mb=0.01, **OPTIONS), log=log.append)
    assert any("exceed the" in line and "top 1,000" in line for line in log)
    assert all(r["knn"]["backend"] == "hnsw" and r["top_l"] == 1000 for r in approx)
    assert all(0 < r["knn_recall"] <= 1 for r in approx) and all(r["knn_recall"] is None for r in exact)
    assert exact[0]["knn"] == {"backend": "exact"} and exact[0]["top_l"] is None
    assert {cell_key_of(r) for r in exact}.isdisjoint(cell_key_of(r) for r in approx)
    assert exact[0]["map"] == approx[0]["map"]  # the baseline: 1,000 covers this small gallery
    old = {k: v for k, v in exact[1].items() if k not in ("knn", "top_l")}  # a record from before the fields
    assert cell_key_of(old) == cell_key_of(exact[1])


@pytest.mark.parametrize("options,message", [
    (dict(context="gallery", knn=parse_knn("hnsw")), "gallery context uses the exact graph"),
    (dict(context="gallery", top_l=10), "gallery context keeps whole rows"),
    (dict(top_l=0), "at least 1"), (dict(distractors=-1), "whole number >= 0")])
def test_bad_combinations_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message) as error:
        RunOptions(**options)
    assert "\n" not in str(error.value)
