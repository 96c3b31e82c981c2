"""gpu-check: without a CUDA device it runs nothing and exits 0; with --device cpu its steps run
and its report gives every method and every kNN backend."""
import json

import pytest
import torch

import rerankbench

from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.engine.knn_backends import BACKENDS


def test_without_a_cuda_device_it_says_so_and_exits_0(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["gpu-check", "--output", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "gpu-check: no CUDA device here, nothing to check"
    assert list(tmp_path.iterdir()) == []


def test_its_steps_on_the_cpu_report_every_method_and_backend(capsys, tmp_path):
    assert main(["gpu-check", "--device", "cpu", "--no-tests", "--scale", "0.02", "--output", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [m["method"] for m in figures["methods"]] == list(registry.methods())
    assert all(m["status"] == "ok" and 0 < m["map"] <= 100 for m in figures["methods"])
    fs = rerankbench.load_dataset("market1501", scale=0.02)
    for name in ("baseline", "k_reciprocal"):  # the cells' metrics are the API's
        expected = rerankbench.evaluate(rerankbench.rerank(name, fs), fs)["map"]
        assert {m["method"]: m["map"] for m in figures["methods"]}[name] == pytest.approx(expected, abs=1e-9)
    assert [b["backend"] for b in figures["knn"]] == list(BACKENDS)
    assert {b["backend"]: b["recall"] for b in figures["knn"]}["exact"] == 1.0
    assert {b["backend"]: b["recall"] for b in figures["knn"]}["flat"] == 1.0
    page = (tmp_path / "gpu_check.md").read_text()
    assert "CUDA-parametrised tests: not run" in page
    assert "Command: python -m rerankbench gpu-check --dataset market1501 --scale 0.02 --device cpu --no-tests" in page
