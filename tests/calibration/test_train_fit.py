"""The train splits' fit to Table VI: the measurement against a plain one, a fit that finds a
planted model, fits stored under the family, and an adopted train fit changing the train split
alone, shared by the family's test sets."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from rerankbench.calibration.table_command import fit_trains
from rerankbench.calibration.table_fit import Cell, error
from rerankbench.calibration.train_fit import fit_train, train_baseline, train_cells
from rerankbench.engine.registry import datasets
from rerankbench.features.featureset import Split
from rerankbench.twins.fitted import read_fits, store_fit, train_fit_name

SCALE, DIM = 0.02, 32


def _plain_baseline(features: np.ndarray, ids: np.ndarray, queries: int, seed: int) -> tuple[float, float]:
    """CMC@1 and mAP (percent) by a plain loop: each query's other rows sorted by Euclidean distance."""
    rows = np.random.default_rng(seed).permutation(len(ids))
    q, g = np.sort(rows[:queries]), np.sort(rows[queries:])
    firsts, aps = [], []
    for row in q:
        order = g[np.argsort(((features[g] - features[row]) ** 2).sum(1), kind="stable")]
        hits = ids[order] == ids[row]
        if not hits.any():
            continue
        ranks = np.flatnonzero(hits) + 1
        firsts.append(ranks[0] == 1)
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return 100 * np.mean(firsts), 100 * np.mean(aps)


def test_train_baseline_equals_a_plain_ranking():
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(1, 41), 5)
    centres = rng.normal(size=(41, 16))
    features = centres[ids] + 1.2 * rng.normal(size=(len(ids), 16))
    features = (features / np.linalg.norm(features, axis=1, keepdims=True)).astype(np.float32)
    measured = train_baseline(Split(features, ids), seed=0, queries=60)
    cmc1, mean_ap = _plain_baseline(features.astype(np.float64), ids, 60, seed=0)
    assert 20 < cmc1 < 95  # neither trivial nor hopeless
    assert measured["cmc1"] == pytest.approx(cmc1, abs=1e-9) and measured["map"] == pytest.approx(mean_ap, abs=1e-4)
    assert measured["num_queries"] == 60
    assert train_baseline(Split(features, ids))["num_queries"] == 100  # a small split: half of it as queries


def test_train_cells_are_table_vi_of_the_family():
    cells = train_cells(datasets()["vehicleid_medium"])
    assert cells == [Cell("baseline", (), "cmc1", 93.62), Cell("baseline", (), "cmc5", 96.41),
                     Cell("baseline", (), "cmc10", 97.46), Cell("baseline", (), "map", 74.98)]
    assert [c.paper for c in train_cells(datasets()["veriwild_large"])] == [81.53, 90.60, 93.31, 59.64]


def test_fit_train_finds_a_planted_view_share():
    # targets measured on the train twin itself at view share 0.7; Nelder-Mead from 0.2 comes back
    dataset = datasets()["vehicleid_small"]
    start = dataclasses.replace(dataset.model_at(SCALE), view_share=0.2)
    planted = dataclasses.replace(start, view_share=0.7)
    measured = train_baseline(dataset.train_split(SCALE, 0, DIM, planted), queries=500)
    cells = [Cell("baseline", (), metric, measured[metric]) for metric in ("cmc1", "map")]

    def measure(model):
        return {("baseline", ()): train_baseline(dataset.train_split(SCALE, 0, DIM, model), queries=500)}
    assert error(cells, measure(start)) > 100
    result = fit_train(dataset, SCALE, ["view_share"], "nelder-mead", 25, start, dim=DIM, log=lambda _: None,
                       cells=cells, queries=500)
    assert result.error < 1.0 and result.model.view_share == pytest.approx(0.7, abs=0.05)
    assert result.model.noise == start.noise and result.evaluations <= 25  # the other terms kept


def test_train_fits_are_stored_under_the_family_not_adopted(tmp_path):
    path = tmp_path / "fits.json"
    command = "python -m rerankbench calibrate --fit-train --datasets vehicleid_small,vehicleid_large --scale 0.02"
    fit_trains(["vehicleid_small", "vehicleid_large"], SCALE, "nelder-mead", 2, "noise", "registered", [], str(path),
               command)
    fits = read_fits(path)
    assert list(fits) == ["vehicleid/train"]  # one fit per family, whichever of its test sets are named
    entry = fits["vehicleid/train"]["0.02"]
    assert entry["adopted"] is False and entry["terms"] == ["noise"] and entry["command"] == command
    assert [row["cell"] for row in entry["cells"]] == ["baseline cmc1", "baseline cmc5", "baseline cmc10", "baseline map"]
    assert [row["paper"] for row in entry["cells"]] == [93.62, 96.41, 97.46, 74.98]
    start = datasets()["vehicleid_large"].model_at(SCALE)  # the last named test set's model, moved in noise only
    assert {k: v for k, v in entry["model"].items() if k != "noise"} == \
        {k: v for k, v in dataclasses.asdict(start).items() if k != "noise"}


def test_an_adopted_train_fit_changes_the_family_train_split_only(tmp_path, monkeypatch):
    import rerankbench.twins.fitted as fitted
    path = tmp_path / "fits.json"
    monkeypatch.setattr(fitted, "FITS_FILE", path)
    small, large, duke = (datasets()[name] for name in ("vehicleid_small", "vehicleid_large", "dukemtmc"))
    cache = tmp_path / "cache"
    before = small.load(SCALE, dim=DIM, with_train=True, cache_dir=cache)
    duke_before = duke.load(SCALE, dim=DIM, with_train=True)
    trained = dataclasses.replace(small.model_at(SCALE), noise=0.05, view_share=0.1)
    store_fit(train_fit_name("vehicleid"), SCALE, {"model": dataclasses.asdict(trained)})
    assert small.load(SCALE, dim=DIM, with_train=True, cache_dir=cache).train.fingerprint == before.train.fingerprint
    fits = read_fits()
    fits["vehicleid/train"]["0.02"]["adopted"] = True
    path.write_text(json.dumps(fits))
    assert small.train_model_at(SCALE) == trained == large.train_model_at(SCALE)
    after = small.load(SCALE, dim=DIM, with_train=True, cache_dir=cache)  # the cached train split is not reused
    assert after.fingerprint == before.fingerprint  # the test splits are as they were
    assert after.train.fingerprint != before.train.fingerprint
    np.testing.assert_array_equal(after.train.features, small.train_split(SCALE, 0, DIM, trained).features)
    shared = large.load(SCALE, dim=DIM, with_train=True)  # the family's test sets share the train split
    np.testing.assert_array_equal(shared.train.features, after.train.features)
    assert duke.load(SCALE, dim=DIM, with_train=True).train.fingerprint == duke_before.train.fingerprint


def test_calibration_report_names_each_train_split_model(tmp_path, monkeypatch):
    import rerankbench.twins.fitted as fitted
    from rerankbench.calibration.report import _train_model_source
    monkeypatch.setattr(fitted, "FITS_FILE", tmp_path / "fits.json")
    assert [_train_model_source(name) for name in ("market1501", "vehicleid_small", "veriwild_large")] == \
        ["eased", "registered", "registered"]
    model = dataclasses.asdict(datasets()["vehicleid_small"].model)
    store_fit(train_fit_name("vehicleid"), 0.1, {"model": model})
    assert _train_model_source("vehicleid_medium") == "registered"  # stored, not adopted
    fits = read_fits()
    fits["vehicleid/train"]["0.1"]["adopted"] = True
    (tmp_path / "fits.json").write_text(json.dumps(fits))
    assert _train_model_source("vehicleid_medium") == "train fit (0.1)"


def test_a_learned_method_cell_names_the_adopted_train_fit(tmp_path, monkeypatch):
    import torch

    import rerankbench.twins.fitted as fitted
    from rerankbench.harness.cell import Cell as RunCell
    from rerankbench.harness.cell import Conditions, identity
    from rerankbench.harness.store import cell_key_of
    monkeypatch.setattr(fitted, "FITS_FILE", tmp_path / "fits.json")
    small = datasets()["vehicleid_small"]
    conditions = Conditions(torch.device("cpu"), 0, 2)

    def cells():
        fs = small.load(SCALE, dim=DIM, with_train=True)
        return [identity(RunCell("vehicleid_small", name), fs, conditions) for name in ("acp", "aqe")]
    (acp, aqe) = cells()
    assert "train_fit" not in acp and "train_fit" not in aqe  # no train fit: the keys cells always had
    store_fit(train_fit_name("vehicleid"), SCALE, {"model": dataclasses.asdict(small.model)})
    fits = read_fits()
    fits["vehicleid/train"]["0.02"]["adopted"] = True
    (tmp_path / "fits.json").write_text(json.dumps(fits))
    (acp_fitted, aqe_fitted) = cells()
    # ACP learns from the train split: its cell is another one (a resume does not keep its old record)
    assert acp_fitted["train_fit"] and acp_fitted["cell"] != acp["cell"] and aqe_fitted["cell"] == aqe["cell"]
    assert acp_fitted["dataset_info"]["source_train_fit"] == acp_fitted["train_fit"]
    record = {**acp_fitted, "device": "cpu:test", "threads": 2}
    assert cell_key_of(record) == acp_fitted["cell"]
