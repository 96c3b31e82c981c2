"""ann-sweep: one faiss index searched at several settings gives, at each, the recall@K that the
whole graph built at that setting records (same seeded rows), and every list probed is exact."""
from __future__ import annotations

import json

import pytest
import torch

from rerankbench.benchmarks.ann_sweep import run
from rerankbench.cli import main
from rerankbench.engine.knn_backends import parse_knn
from rerankbench.engine.registry import datasets
from rerankbench.engine.screened_graph import layout_independent
from rerankbench.features.featureset import unit_rows

pytest.importorskip("faiss")


def test_sweep_recall_is_the_built_graphs_recall(tmp_path):
    # 6 lists of about 64 of the 385 images, K = 40: one probed list cannot hold most rows' 40 nearest
    figures = run("market1501", "ivf", [1, 2, 6], ["nlist=6"], scale=0.02, k=40, sample=150, screened=False,
                  output=tmp_path, log=lambda *_: None)
    x = unit_rows(torch.from_numpy(datasets()["market1501"].load(scale=0.02).stacked()))
    assert figures["rows"] == len(x) and figures["params"]["nlist"] == 6
    for point in figures["curve"]:
        _, found = parse_knn("ivf", {"nlist": 6, "nprobe": point["nprobe"], "recall_rows": 150}).build(x, 40)
        assert point["recall"] == found["knn_recall"]
        assert point["speedup"] == pytest.approx(figures["exact_s"] / (figures["build_s"] + point["search_s"]))
    assert figures["curve"][-1]["recall"] == 1.0  # every list probed
    assert figures["curve"][-1]["head_recall"] == 1.0
    assert figures["curve"][-1]["kth_gap"] == pytest.approx(0.0, abs=1e-6)  # the same lists (fp32 products of two paths)
    assert figures["curve"][0]["recall"] < 1.0
    for point in figures["curve"]:  # no K-list's farthest is nearer than the exact K-th neighbour
        assert point["kth_gap"] >= -1e-6 and 0.0 <= point["head_recall"] <= 1.0
    assert figures["curve"][0]["kth_gap"] > 0.0  # most rows miss neighbours and take farther ones (a median)


def test_sweep_command_writes_its_report(tmp_path):
    assert main(["ann-sweep", "--dataset", "market1501", "--scale", "0.02", "--k", "10", "--backend", "hnsw",
                 "--values", "16,64", "--sample", "100", "--output", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "ann_sweep_hnsw_market1501.json").read_text())
    assert [p["efSearch"] for p in figures["curve"]] == [16, 64]
    assert figures["screened_identical"] or not layout_independent()  # identical wherever its premise holds (screened_graph.py)
    assert "--values 16,64 --sample 100" in (tmp_path / "ann_sweep_hnsw_market1501.md").read_text()


@pytest.mark.parametrize("argv,message", [(["--backend", "flat"], "hnsw or ivf"),
                                          (["--values", "8,many"], "whole numbers"),
                                          (["--backend", "ivf", "--values", "0"], "at least 1")])
def test_bad_sweeps_are_one_line_errors(argv, message, capsys):
    assert main(["ann-sweep", "--dataset", "market1501", "--scale", "0.02", *argv]) == 2
    assert message in capsys.readouterr().err
