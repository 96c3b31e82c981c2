"""`calibrate --check`'s whole-table part and the cosine statistics, on hand-worked records and features."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from rerankbench.calibration.cosines import cosine_statistics
from rerankbench.calibration.table_check import current, curve_check, same_twin, summary, table_check
from rerankbench.features.featureset import FeatureSet, Split
from rerankbench.twins.synthetic import TwinModel
from rerankbench.twins.twin import GENERATOR_VERSION

MODEL = TwinModel(noise=0.5, view_share=0.4)


def record(method, values, dataset="vehicleid_small", overrides=None, params=None, model=None, scale=1.0, **info):
    source_model = {k: v for k, v in dataclasses.asdict(model or MODEL).items() if k in ("noise", "view_share", "views")}
    return {"dataset": dataset, "method": method, "status": "ok", "overrides": overrides or {}, "params": params or {},
            **values, "dataset_info": {"synthetic": True, "source_generator": GENERATOR_VERSION, "source_seed": 0, "dim": 2048,
                                       "source_scale": scale, "source_model": source_model, **info}}


def test_a_record_counts_only_on_the_twin_generated_now():
    r = record("baseline", {"cmc1": 1.0})
    assert same_twin(r, MODEL, 1.0)  # terms the record does not list are at their defaults
    assert not same_twin(r, dataclasses.replace(MODEL, nuisance=0.3), 1.0)
    assert not same_twin(r, dataclasses.replace(MODEL, noise=0.6), 1.0)
    assert not same_twin(r, MODEL, 0.1)
    assert not same_twin(record("baseline", {}, source_generator=GENERATOR_VERSION + 1), MODEL, 1.0)
    assert not same_twin(record("baseline", {}, source_distractors_added=300), MODEL, 1.0)
    assert not same_twin(record("baseline", {}, dim=64), MODEL, 1.0)
    fresh, stale = current([r, record("aqe", {}, model=dataclasses.replace(MODEL, noise=0.7))],
                           {"vehicleid_small": MODEL}, 1.0)
    assert fresh == [r] and stale == 1


def test_table_cells_against_the_paper_hand_worked():
    # paper (Table V, VehicleID small): baseline 80.45 / 94.44, AQE 71.78 / 92.18,
    # alpha-QE 81.51 / 95.72, SCA 79.71 / 91.80
    records = [record("baseline", {"cmc1": 80.0, "cmc5": 95.0}), record("aqe", {"cmc1": 75.0, "cmc5": 93.0}, params={"k": 4}),
               record("alpha_qe", {"cmc1": 79.0, "cmc5": 96.0}, params={"k": 4, "alpha": 3.0}),
               record("sca", {"cmc1": 75.0, "cmc5": 70.0}, params={"k1": 4, "k2": 2}),
               record("aqe", {"cmc1": 1.0, "cmc5": 1.0}, overrides={"k": 9}, params={"k": 9}),  # not default: ignored
               record("k_reciprocal", {"cmc1": 1.0, "cmc5": 1.0}, params={"k1": 6, "k2": 6})]  # k1 no longer the default
    cells = {(c.method, c.metric): c for c in table_check(records, ["vehicleid_small"])}
    aqe = cells["aqe", "cmc1"]
    assert aqe.role == "fitted" and aqe.difference == pytest.approx(3.22) and aqe.near is False
    assert aqe.flipped is False  # paper -8.67, twin -5.0: the same sign
    alpha = cells["alpha_qe", "cmc1"]
    assert alpha.difference == pytest.approx(-2.51) and alpha.near is True
    assert alpha.flipped is True  # paper +1.06 (over 1 point), twin -1.0
    assert cells["alpha_qe", "cmc5"].flipped is False  # paper +1.28, twin +1.0
    sca = cells["sca", "cmc1"]
    assert sca.role == "held out" and sca.near is True and sca.flipped is None  # paper -0.74: no gain to keep
    assert cells["sca", "cmc5"].near is False  # -21.8
    assert cells["ecn", "cmc1"].twin is None and cells["baseline", "cmc1"].flipped is None
    s = summary(list(cells.values()))
    # fitted: 8 cells, 6 measured (k-reciprocal missing); within 3: baseline -0.45, +0.56, AQE CMC@5 +0.82,
    # alpha-QE -2.51, +0.28; paper gains over 1 point: AQE -8.67, -2.26, alpha-QE +1.06, +1.28
    assert s["fitted"] == {"cells": 8, "measured": 6, "near": 5, "within_5": 6, "gains": 4, "flips": 1}
    # held out: alpha-QE + k-reciprocal, SCA, GNN, ECN; SCA's two measured; gains: SCA CMC@5 -2.64
    assert s["held out"] == {"cells": 8, "measured": 2, "near": 1, "within_5": 1, "gains": 1, "flips": 0}


def test_k1_curve_points_are_read_from_the_sweeps():
    # paper, MSMT17 CMC@1 at k1 = 11: baseline 73.75, AQE 78.03, alpha-QE 78.89, k-reciprocal 75.64
    records = [record("baseline", {"cmc1": 74.0, "map": 50.0}, dataset="msmt17"),
               record("aqe", {"cmc1": 77.0, "map": 60.0}, dataset="msmt17", overrides={"k": 11}, params={"k": 11}),
               record("k_reciprocal", {"cmc1": 72.0, "map": 60.0}, dataset="msmt17", overrides={"k1": 11},
                      params={"k1": 11, "k2": 6}),
               record("alpha_qe", {"cmc1": 99.0, "map": 60.0}, dataset="msmt17", overrides={"k": 11, "alpha": 1},
                      params={"k": 11, "alpha": 1})]  # another override too: not the curve's point
    cells = {(c.method, c.metric, c.k1): c for c in curve_check(records, ["msmt17"])}
    aqe = cells["aqe", "cmc1", 11]
    assert aqe.paper == 78.03 and aqe.difference == pytest.approx(-1.03) and aqe.role == "fitted" and not aqe.flipped
    assert cells["k_reciprocal", "cmc1", 11].flipped is True  # paper +1.89, twin -2.0
    assert cells["alpha_qe", "cmc1", 11].twin is None


def test_cosine_statistics_hand_worked():
    q = np.array([[1, 0, 0, 0]], np.float32)
    g = np.array([[0.8, 0.6, 0, 0], [0, 0, 1, 0], [0.6, 0, 0.8, 0], [1, 0, 0, 0]], np.float32)
    fs = FeatureSet("toy", Split(q, np.array([1]), np.array([0])),
                    Split(g, np.array([1, 1, 2, -1]), np.array([1, 0, 1, 1])))
    stats = cosine_statistics(fs)
    # rows 0-3 (junk id -1 never counted). Row 0: true {1: .8} (row 2 is its camera: junk), false {3: .6};
    # row 1: true {0: .8, 2: 0}, false {3: .48}; row 2: true {1: 0}, false {3: .8}: a false match first;
    # row 3 (id 2): no true match, false {0: .6, 1: .48, 2: .8}
    assert stats["same_identity"] == pytest.approx((0.8 + 0.8 + 0 + 0) / 4)
    assert stats["nearest_true"] == pytest.approx((0.8 + 0.8 + 0) / 3)
    assert stats["nearest_false"] == pytest.approx((0.6 + 0.48 + 0.8 + 0.8) / 4)
    assert stats["false_first"] == 0.5 and stats["rows"] == 4


def test_check_report_reads_a_record_set_and_leaves_stale_records_out(tmp_path):
    from rerankbench.calibration.report import whole_table
    from rerankbench.engine.registry import datasets
    model = datasets()["vehicleid_small"].model_at(1.0)
    numbers = {"cmc1": 80.0, "cmc5": 95.0, "map": 60.0, "minp": 1.0, "wall_s": 1.0, "eval_s": 1.0, "peak_rss_mb": 1.0}
    fresh = record("baseline", numbers, model=model)
    fresh["dataset_info"]["source_model"] = dataclasses.asdict(model)
    stale = record("aqe", numbers, model=dataclasses.replace(model, noise=model.noise + 0.1))
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in (fresh, stale)) + "\n")
    text = whole_table(["vehicleid_small"], {1.0: str(tmp_path)}, str(tmp_path / "no_sweeps"))
    assert "1 records of the current twins, 1 stale ones" in text
    assert "| vehicleid_small | baseline | fitted | CMC@1 | 80.45 | 80.00 | -0.45 | yes |  |" in text
    assert "| vehicleid_small | aqe | fitted | CMC@1 | 71.78 | no record |  |  |  |" in text
    assert "- fitted methods: 2 of 2 measured cells within 3 points, 2 within 5; 0 sign flips among the 0 gains" in text
