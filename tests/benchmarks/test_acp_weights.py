"""acp-weights: eq. 1 over ACP's sequences with its s, s's rank profile, uniform and label weights."""
import json

import numpy as np
import pytest
from conftest import plain_normalise
from rerankbench.benchmarks.acp_weights import run
from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.engine.distances import PrecomputedDistances
from rerankbench.engine.shared import SharedSteps
from rerankbench.evaluation.protocols import evaluate_all

TINY = {"layers": 1, "heads": 2, "slots": 2, "d_memory": 4, "d": 8, "epochs": 2, "epoch_size": 48}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    figures = run("market1501", 0.02, TINY, results=folder, output=folder / "out", log=lambda line: None)
    return folder, figures


def _metrics(folder, name, **params):
    fs = registry.datasets()["market1501"].load(0.02, with_train=True, cache_dir=folder / "cache")
    shared = SharedSteps(fs, "cpu", str(folder / "cache"))
    chosen = registry.method(name, **params)
    chosen.prepare(shared)
    return fs, shared, chosen, evaluate_all(chosen.rerank(shared), fs)


def test_acps_own_weights_score_as_the_method_and_uniform_ones_as_aqe(measured):
    folder, figures = measured
    k1 = figures["params"]["k1"]
    assert figures["metrics"]["acp"] == _metrics(folder, "acp", **TINY)[3]
    assert figures["metrics"]["uniform"] == _metrics(folder, "aqe", k=k1)[3]


def test_the_rank_profile_and_the_labels_against_a_plain_expansion(measured):
    folder, figures = measured
    fs, shared, acp, _ = _metrics(folder, "acp", **TINY)
    k1 = figures["params"]["k1"]
    x = plain_normalise(np.concatenate([fs.query.features, fs.gallery.features]).astype(np.float64))
    ids = np.concatenate([fs.query.ids, fs.gallery.ids])
    lists = shared.knn_graph(k1).indices
    s = acp.correlations(shared).numpy().astype(np.float64)
    same = ids[lists] == ids[lists[:, :1]]
    assert figures["s_true"] == pytest.approx(s[same].mean(), abs=1e-6)
    assert figures["s_false"] == pytest.approx(s[~same].mean(), abs=1e-6)
    assert figures["s_spread_within_rank"] == pytest.approx(np.mean([np.std(s[:, r], ddof=1) for r in range(1, k1)]),
                                                            abs=1e-6)
    profile = s.mean(axis=0)
    for name, weights in (("rank_profile", np.broadcast_to(profile, s.shape)), ("labels", same.astype(np.float64))):
        expanded = plain_normalise(np.einsum("ik,ikd->id", weights, x[lists]))
        q, g = expanded[:fs.num_query], expanded[fs.num_query:]
        distances = np.sqrt(np.maximum((q**2).sum(1)[:, None] + (g**2).sum(1)[None] - 2 * q @ g.T, 0))
        plain = evaluate_all(PrecomputedDistances(distances.astype(np.float32), np.arange(fs.num_query),
                                                  fs.num_query + np.arange(fs.num_gallery)), fs)
        for metric in ("cmc1", "cmc5", "map"):
            assert figures["metrics"][name][metric] == pytest.approx(plain[metric], abs=1e-9), (name, metric)
    assert figures["metrics"]["labels"]["map"] >= figures["metrics"]["uniform"]["map"]


def test_the_report_names_its_command_and_the_cli_writes_it(measured, tmp_path):
    folder, figures = measured
    page = (folder / "out" / "acp_weights_market1501.md").read_text()
    assert "python -m rerankbench acp-weights --dataset market1501 --scale 0.02 --set acp.layers=1" in page
    assert json.loads((folder / "out" / "acp_weights_market1501.json").read_text())["metrics"] == figures["metrics"]
    assert main(["acp-weights", "--dataset", "market1501", "--scale", "0.02", "--results", str(folder),
                 "--output", str(tmp_path), *[f"--set=acp.{k}={v}" for k, v in TINY.items()]]) == 0
    assert json.loads((tmp_path / "acp_weights_market1501.json").read_text())["metrics"] == figures["metrics"]
