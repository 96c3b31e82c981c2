"""The acp method: eq. (1) against a plain re-implementation, its parameters, its training
through `run` (checkpoints, records) and through `train`."""
from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
import torch

import rerankbench
from conftest import assert_distances_close, make_featureset, plain_euclidean, plain_knn, plain_normalise
from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.engine.distances import materialise
from rerankbench.engine.shared import SharedSteps
from rerankbench.features.featureset import FeatureSet, Split
from rerankbench.harness.store import ResultsStore

TINY = {"layers": 1, "heads": 2, "slots": 2, "d_memory": 4, "d": 8, "epochs": 2, "epoch_size": 48}


def with_train(fs: FeatureSet, seed: int = 7) -> FeatureSet:
    """`fs` with a clustered train split of other identities (60 x 8 images)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(1, 61), 8)
    centres = rng.normal(size=(61, fs.dim))
    features = (centres[ids] + 0.6 * rng.normal(size=(len(ids), fs.dim))).astype(np.float32)
    return dataclasses.replace(fs, train=Split(features, ids))


@pytest.fixture(scope="module")
def toy():
    return with_train(make_featureset(num_query=40, num_gallery=260, dim=16, num_ids=20, clustered=True, spread=0.8))


def plain_acp(fs: FeatureSet, model: torch.nn.Module, k1: int, k2: int) -> np.ndarray:
    """Eq. (1) written out: each row's k1-NN sequence through the whole model (forward), then
    x*_i = normalise(sum_j s_ij x_j) and Euclidean distances, dense, float64."""
    raw = np.concatenate([fs.query.features, fs.gallery.features])
    x = plain_normalise(raw)
    neighbours = plain_knn(x, k1)
    with torch.no_grad():
        s = torch.sigmoid(model(torch.tensor(raw[neighbours]), k2)).double().numpy()
    expanded = np.stack([(s[i, :, None] * x[neighbours[i]]).sum(0) for i in range(len(x))])
    y = plain_normalise(expanded)
    return plain_euclidean(y[:fs.num_query], y[fs.num_query:])


@pytest.mark.parametrize("params", [{}, {"k1": 5, "k2": 2}, {"k1": 30, "k2": 6, "refinement": "false"},
                                    {"relations": "true"}])
def test_acp_matches_eq_1_written_out(toy, params):
    method = registry.method("acp", **TINY, **params)
    shared = SharedSteps(toy)
    resolved = method.resolved(toy)
    trained = method.trained(shared)
    assert not trained.model.training and len(trained.losses) == 2
    got = materialise(method.rerank(shared), np.arange(toy.num_query), np.arange(toy.num_query, 300))
    want = plain_acp(toy, trained.model, resolved["k1"], resolved["k2"])
    assert_distances_close(got, want)
    assert rerankbench.evaluate(got, toy) == rerankbench.evaluate(want.astype(np.float32), toy)



def test_test_separation_counts_the_queries_sequences_pair_by_pair(toy):
    """AUC by a plain count of (true, false) pairs, ties 1/2, over each query's kNN(k1) sequence,
    probe excluded; the mean s of the true and the false neighbours."""
    method = registry.method("acp", **TINY, k1=6, k2=3)
    shared = SharedSteps(toy)
    got = method.details(shared)["test_separation"]
    model = method.trained(shared).model
    raw = np.concatenate([toy.query.features, toy.gallery.features])
    ids = np.concatenate([toy.query.ids, toy.gallery.ids])
    x = plain_normalise(raw)
    rows = plain_knn(x, 6)[:toy.num_query]
    with torch.no_grad():
        s = torch.sigmoid(model(torch.tensor(raw[rows]), 3)).double().numpy()[:, 1:]
    cos = np.einsum("qd,qld->ql", x[:toy.num_query], x[rows])[:, 1:]
    labels = ids[rows[:, 1:]] == ids[:toy.num_query, None]

    def plain_auc(scores):
        true, false = scores[labels], scores[~labels]
        return np.mean([(t > f) + 0.5 * (t == f) for t in true for f in false])
    assert got["sequences"] == toy.num_query
    assert got["auc"] == pytest.approx(plain_auc(s), abs=1e-9)
    assert got["cosine_auc"] == pytest.approx(plain_auc(cos), abs=1e-9)
    assert got["s_true"] == pytest.approx(s[labels].mean(), abs=1e-6)
    assert got["s_false"] == pytest.approx(s[~labels].mean(), abs=1e-6)


def test_k2_beyond_k1_is_recorded_as_what_runs(toy):
    """The refinement reads the first k2 of a k1-long sequence: with k1 = 3 a k2 of 6 reads 3."""
    method = registry.method("acp", **TINY, k1=3, k2=6)
    assert method.resolved(toy)["k2"] == 3
    shared = SharedSteps(toy)
    trained = method.trained(shared)
    got = materialise(method.rerank(shared), np.arange(toy.num_query), np.arange(toy.num_query, 300))
    assert_distances_close(got, plain_acp(toy, trained.model, 3, 6))

def test_the_model_is_trained_once_per_recipe_and_shared_by_cells(toy, monkeypatch):
    module = sys.modules[type(registry.method("acp")).__module__]
    calls = []
    real_train = module.train
    monkeypatch.setattr(module, "train", lambda *a, **k: calls.append(1) or real_train(*a, **k))
    shared = SharedSteps(toy)
    for k1 in (5, 8):  # a k1 sweep: one model
        registry.method("acp", k1=k1, **TINY).rerank(shared)
    assert len(calls) == 1
    registry.method("acp", k1=5, **{**TINY, "heads": 4}).rerank(shared)  # another architecture: another model
    assert len(calls) == 2
    assert sum(label.startswith("acp-") for label in shared.summary()) == 2


def test_parameters_resolve_from_the_preset_and_the_train_split(toy):
    resolved = registry.method("acp").resolved(toy)
    assert resolved == {"k1": toy.default_k, "k2": 6, "preset": "basic", "layers": 3, "slots": 8, "heads": 16,
                        "d_memory": 32, "d": 256, "dropout": 0.4, "gamma": 2.0, "fusion": True, "encoder": True,
                        "memory": True, "refinement": True, "relations": False, "epochs": 20, "epoch_size": 480,
                        "sequences": "paper", "ranking": 0.0, "validation": 0.0, "seed": 0}
    xl = registry.method("acp", preset="xl", heads="4", dropout="0.1", memory="false").resolved(toy)
    assert (xl["d"], xl["d_memory"], xl["gamma"], xl["heads"], xl["dropout"], xl["memory"]) == (1024, 128, 1.0, 4, 0.1, False)
    with pytest.raises(ValueError, match="acp.preset"):
        registry.method("acp", preset="huge").resolved(toy)
    with pytest.raises(ValueError, match="acp.heads"):
        registry.method("acp", heads="2.5").resolved(toy)


def test_auto_preset_is_xl_from_100000_training_images(toy):
    def train_of(n):
        return dataclasses.replace(toy, train=Split(np.ones((n, 1), np.float32), np.arange(n)))
    assert registry.method("acp").resolved(train_of(99_999))["preset"] == "basic"
    assert registry.method("acp").resolved(train_of(100_000))["preset"] == "xl"


def test_auto_epoch_size_is_3000_or_1000_for_xl_x_scale_on_twins_and_every_image_on_real_data(toy):
    def source(**kind):
        return dataclasses.replace(toy, source=kind)
    assert registry.method("acp").resolved(source(kind="file"))["epoch_size"] == 480
    assert registry.method("acp").resolved(source(kind="synthetic", scale=0.1))["epoch_size"] == 300
    assert registry.method("acp").resolved(source(kind="synthetic", scale=1.0))["epoch_size"] == 480  # all it has
    assert registry.method("acp", preset="xl").resolved(source(kind="synthetic", scale=0.1))["epoch_size"] == 100
    assert registry.method("acp", preset="xl").resolved(source(kind="file"))["epoch_size"] == 480
    assert registry.method("acp", epoch_size="100").resolved(toy)["epoch_size"] == 100


def test_no_train_split_is_a_clear_error(toy):
    with pytest.raises(ValueError, match="ACP learns from a train split, and 'toy' has none"):
        registry.method("acp").resolved(dataclasses.replace(toy, train=None))


def test_unknown_training_sequences_are_a_clear_error(toy):
    with pytest.raises(ValueError, match="acp.sequences must be one of paper, knn, mixed, got 'test'"):
        registry.method("acp", sequences="test").resolved(toy)
    with pytest.raises(ValueError, match="acp.ranking must be >= 0, got -1"):
        registry.method("acp", ranking=-1)


def _features_file(fs: FeatureSet, path):
    np.savez(path, qf=fs.query.features, gf=fs.gallery.features, q_ids=fs.query.ids, g_ids=fs.gallery.ids,
             q_cams=fs.query.cams, g_cams=fs.gallery.cams, tf=fs.train.features, t_ids=fs.train.ids)
    return path


def test_run_trains_once_records_the_recipe_and_reuses_the_checkpoint(toy, tmp_path, capsys):
    path = _features_file(toy, tmp_path / "toy.npz")
    results = tmp_path / "results"
    settings = [f"--set=acp.{key}={value}" for key, value in TINY.items()]
    argv = ["run", "--methods", "baseline,acp", "--features", str(path), "--results", str(results), "--no-progress",
            *settings]
    assert main(argv) == 0
    records = [json.loads(line) for line in (results / "records.jsonl").read_text().splitlines()]
    acp = next(r for r in records if r["method"] == "acp")
    assert acp["status"] == "ok" and acp["map"] > 0
    training = acp["training"]
    assert training == next(v for k, v in acp["shared"]["steps"].items() if k.startswith("acp-"))
    assert training["config"]["d"] == 8 and training["settings"]["epoch_size"] == 48
    assert training["epochs_done"] == 2 and training["train_images"] == 480 and training["training_seconds"] > 0
    checkpoint = training["checkpoint"]
    assert checkpoint.startswith(str(results / "cache" / "acp" / "toy-")) and checkpoint.endswith("epoch-0002.pt")

    assert main([*argv, "--force", "--methods", "acp"]) == 0  # the checkpoint is loaded, not trained again
    again = [json.loads(line) for line in (results / "records.jsonl").read_text().splitlines()][-1]
    assert again["training"]["training_seconds"] == training["training_seconds"]
    assert again["map"] == acp["map"]
    capsys.readouterr()


def test_train_command_writes_the_checkpoint_run_uses(toy, tmp_path, capsys):
    path = _features_file(toy, tmp_path / "toy.npz")
    settings = [f"--set=acp.{key}={value}" for key, value in TINY.items() if key != "epochs"]
    assert main(["train", "--method", "acp", "--features", str(path), "--epochs", "2", "--results", str(tmp_path),
                 "--no-progress", *settings]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(tmp_path / "cache" / "acp" / "toy-")) and "epoch-0002.pt: 2 epochs" in out
    # the same recipe on the same train split finds that checkpoint: fewer epochs are refused, more resume
    with pytest.raises(ValueError, match="trained for 2 epochs, more than the 1 asked for"):
        _train_in(tmp_path, toy, epochs=1)
    resumed = _train_in(tmp_path, toy, epochs=3)
    assert len(resumed.losses) == 3 and resumed.checkpoint.name == "epoch-0003.pt"


def _train_in(results, fs, epochs):
    shared = SharedSteps(fs, cache_dir=results / "cache")
    return registry.method("acp", **{**TINY, "epochs": epochs}).trained(shared)


def test_features_file_train_keys_are_both_or_neither(toy, tmp_path):
    from rerankbench.features.feature_file import load_features_file
    from rerankbench.features.featureset import FeatureError
    path = tmp_path / "half.npz"
    np.savez(path, qf=toy.query.features, gf=toy.gallery.features, q_ids=toy.query.ids, g_ids=toy.gallery.ids,
             tf=toy.train.features)
    with pytest.raises(FeatureError, match="half.npz: a train split needs both tf and t_ids"):
        load_features_file(path)
    loaded = load_features_file(_features_file(toy, tmp_path / "whole.npz"))
    np.testing.assert_array_equal(loaded.train.ids, toy.train.ids)


def test_ablation_command_runs_the_experiments_and_report_tabulates_them(toy, tmp_path, capsys):
    path = _features_file(toy, tmp_path / "toy.npz")
    results = tmp_path / "results"
    settings = [f"--set=acp.{key}={value}" for key, value in TINY.items()]
    assert main(["ablation", "--features", str(path), "--results", str(results), "--no-progress", "--set=acp.k1=8",
                 *settings]) == 0
    records = ResultsStore(results).records()
    assert [r["method"] for r in records] == ["baseline", "aqe"] + ["acp"] * 7 and all(r["status"] == "ok" for r in records)
    assert records[1]["params"] == {"k": 8} and {r["params"]["k1"] for r in records[2:]} == {8}
    assert records[2]["overrides"]["memory"] is False
    assert main(["report", "--results", str(results)]) == 0
    table = (results / "tables" / "acp-ablation-toy.md").read_text()
    assert table.count("| Exp-") == 7 and "| AQE (uniform weights) |" in table and "python -m rerankbench ablation" in table
    capsys.readouterr()
