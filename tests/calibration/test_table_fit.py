"""The whole-table fit of the twins: its cells, its error, a fit that finds a planted model, and
the stored fits (never adopted by storing)."""
from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest

from rerankbench.calibration.table_command import _settings, fit_tables
from rerankbench.calibration.table_fit import Cell, error, fit_table, fitted_cells, twin_metrics
from rerankbench.engine.registry import datasets
from rerankbench.twins.fitted import read_fits, store_fit, stored_model
from rerankbench.twins.synthetic import TwinModel


def test_fitted_cells_are_table_v_then_the_k1_curves():
    cells = fitted_cells("msmt17")
    table, curves = cells[:8], cells[8:]
    assert {(c.method, c.metric) for c in table} == {(m, x) for m in ("baseline", "aqe", "alpha_qe", "k_reciprocal")
                                                      for x in ("cmc1", "map")}
    assert Cell("aqe", (), "map", 64.26) in table  # Table V
    assert len(curves) == 8 * 3 and Cell("aqe", (("k1", 12),), "map", 66.54) in curves  # Fig. 11, k1 = 12
    assert Cell("k_reciprocal", (("k1", 53),), "cmc1", 79.95) in curves
    vehicle = fitted_cells("vehicleid_small")
    assert len(vehicle) == 8 and {c.metric for c in vehicle} == {"cmc1", "cmc5"}  # no k1 curves, CMC@5
    assert Cell("aqe", (), "cmc1", 71.78) in vehicle
    assert not any(c.method in ("sca", "ecn", "gnn", "alpha_qe_k_reciprocal") for c in cells + vehicle)  # held out


def test_error_is_the_sum_of_squared_differences_in_points():
    cells = [Cell("baseline", (), "cmc1", 80.0), Cell("aqe", (("k1", 5),), "map", 60.0)]
    metrics = {("baseline", ()): {"cmc1": 83.0}, ("aqe", (("k1", 5),)): {"map": 56.0}}
    assert error(cells, metrics) == 9.0 + 16.0


def test_fit_finds_a_planted_noise():
    # targets made by the twin itself at noise 0.9; Nelder-Mead from 0.3 comes back to them
    dataset = datasets()["market1501"]
    planted = dataclasses.replace(dataset.model, noise=0.9)
    cells = [Cell("baseline", (), "map", 0.0), Cell("aqe", (), "map", 0.0)]
    measured = twin_metrics(dataset, planted, cells, 0.03)
    cells = [dataclasses.replace(c, paper=measured[c.method, c.params]["map"]) for c in cells]
    start = dataclasses.replace(dataset.model, noise=0.3)
    far = error(cells, twin_metrics(dataset, start, cells, 0.03))
    result = fit_table(dataset, 0.03, ["noise"], "nelder-mead", 30, start=start, cells=cells, log=lambda _: None)
    assert far > 100 and result.error < 1.0 and result.model.noise == pytest.approx(0.9, abs=0.1)
    assert result.evaluations <= 30 and result.model.view_share == dataset.model.view_share  # the rest kept


def test_evolution_starts_from_the_starting_model():
    dataset = datasets()["market1501"]
    start = dataclasses.replace(dataset.model, noise=0.777)
    cells = [Cell("baseline", (), "map", 80.0)]
    logged = []
    fit_table(dataset, 0.02, ["noise"], "evolution", 37, start=start, cells=cells, log=logged.append)
    assert "noise=0.777" in logged[0] and len(logged) <= 37  # the first member evaluated is the start
    assert re.search(r"noise=0\.777  \(\d+ s, peak RSS \d+\.\d GB\)$", logged[0])  # time and memory of each twin


def test_fit_refuses_unknown_terms_and_too_few_evaluations():
    dataset = datasets()["market1501"]
    with pytest.raises(ValueError, match="cannot fit views"):
        fit_table(dataset, 0.03, ["views"])
    with pytest.raises(ValueError, match="evolution needs at least 36 evaluations"):
        fit_table(dataset, 0.03, ["noise", "common"], "evolution", 20)


def test_fits_are_stored_with_their_command_and_not_adopted(tmp_path):
    path = tmp_path / "fits.json"
    command = "python -m rerankbench calibrate --fit-table --datasets market1501 --scale 0.02"
    fit_tables(["market1501"], 0.02, "nelder-mead", 3, "noise", "registered", ["identity_rank=4"], str(path), command)
    entry = read_fits(path)["market1501"]["0.02"]
    assert entry["adopted"] is False and entry["evaluations"] <= 3 and entry["terms"] == ["noise"]
    assert entry["model"]["identity_rank"] == 4 and entry["command"] == command
    assert len(entry["cells"]) == 8 and {"cell", "paper", "twin"} == set(entry["cells"][0])
    # the held-out methods' cells are the fitted model's predictions, stored beside the fit
    assert [row["cell"] for row in entry["held_out"]] == [f"{m} {x}" for x in ("cmc1", "map")
                                                          for m in ("alpha_qe_k_reciprocal", "sca", "ecn", "gnn")]
    model = stored_model("market1501", 0.02, path)
    assert model == TwinModel(**entry["model"]) and stored_model("market1501", 1.0, path) is None
    store_fit("dukemtmc", 1.0, {"model": dataclasses.asdict(model)}, path)  # a second test set beside it
    assert set(read_fits(path)) == {"market1501", "dukemtmc"}


def test_damaged_or_foreign_fits_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "fits.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="fits.json: not valid JSON"):
        read_fits(path)
    path.write_text(json.dumps({"market1501": {"0.1": {"model": {"noise": 1.0, "unknown_term": 2}}}}))
    with pytest.raises(ValueError, match="market1501 at scale 0.1 is not a model of this generator"):
        stored_model("market1501", 0.1, path)


def test_settings_are_typed_and_checked():
    assert _settings(["identity_rank=16", "common=0.5"]) == {"identity_rank": 16, "common": 0.5}
    with pytest.raises(ValueError, match="expected TERM=VALUE"):
        _settings(["rank=16"])


def test_only_adopted_fits_change_a_twin_and_scales_between_are_interpolated(tmp_path, monkeypatch):
    import rerankbench.twins.fitted as fitted
    path = tmp_path / "fits.json"
    monkeypatch.setattr(fitted, "FITS_FILE", path)
    market = datasets()["market1501"]
    plain = market.load(0.02, dim=32)
    low = dataclasses.replace(market.model, noise=0.2, common=0.4, identity_rank=8)
    high = dataclasses.replace(market.model, noise=1.2, common=0.0, identity_rank=8)
    store_fit("market1501", 0.1, {"model": dataclasses.asdict(low)})
    store_fit("market1501", 1.0, {"model": dataclasses.asdict(high)})
    assert market.model_at(0.3) == market.model  # stored, not adopted: nothing changes
    assert fitted.adopted_scales("market1501") == []
    assert market.load(0.02, dim=32).fingerprint == plain.fingerprint
    fits = read_fits()
    for entry in fits["market1501"].values():
        entry["adopted"] = True
    path.write_text(json.dumps(fits))
    assert fitted.adopted_scales("market1501") == [0.1, 1.0]
    assert market.model_at(0.1) == low and market.model_at(1.0) == high
    assert market.model_at(0.02) == low  # below the fitted scales: the nearest fit
    between = market.model_at(10 ** -0.5)  # half way in log(scale) from 0.1 to 1.0
    assert between.noise == pytest.approx(0.7) and between.common == pytest.approx(0.2) and between.identity_rank == 8
    adopted = market.load(0.02, dim=32)
    assert adopted.fingerprint != plain.fingerprint and adopted.source["model"]["noise"] == 0.2
    # a fit tries candidates whatever is adopted
    assert market.load(0.02, dim=32, model=market.model).fingerprint == plain.fingerprint
    fits["market1501"]["1"]["model"]["identity_rank"] = 4  # scales are keyed as %g writes them
    path.write_text(json.dumps(fits))
    # integer terms are not interpolated: the nearer fit's in log(scale)
    assert market.model_at(0.3).identity_rank == 8 and market.model_at(0.35).identity_rank == 4
    assert market.model_at(0.3).noise == pytest.approx(0.2 + 1.0 * math.log(3) / math.log(10))


def test_term_ablation_turns_each_term_off_in_turn():
    from rerankbench.calibration.term_ablation import TERMS_OFF, ablation_table
    market = datasets()["market1501"]
    model = dataclasses.replace(market.model, common=1.0)
    rows = ablation_table(market, model, 0.02).splitlines()
    labels = [row.split(" | ")[0].lstrip("| ") for row in rows[2:]]
    assert labels == ["as given", *TERMS_OFF] and rows[0].count("|") == 10  # a label and 8 cells
    values = {label: row.split(" | ")[1:] for label, row in zip(labels, rows[2:])}
    assert values["no hard images"] == values["as given"] and values["isotropic identities"] == values["as given"]  # off
    assert values["no common mean"] != values["as given"] and values["one view"] != values["as given"]


def test_table_only_fits_table_v_without_the_k1_curves(tmp_path):
    path = tmp_path / "fits.json"
    fit_tables(["msmt17"], 0.02, "nelder-mead", 2, "noise", "registered", [], str(path), "cmd", table_only=True)
    entry = read_fits(path)["msmt17"]["0.02"]
    assert [row["cell"] for row in entry["cells"]] == [f"{m} {x}" for x in ("cmc1", "map")
                                                       for m in ("baseline", "aqe", "alpha_qe", "k_reciprocal")]
    assert entry["k1_curves"] is False
