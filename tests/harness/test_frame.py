"""The records as a pandas DataFrame (load_records), the newest record of each cell on it, and
per-query results on demand (load_per_query, export --per-query)."""
from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

import rerankbench
from rerankbench.cli import main
from rerankbench.engine.registry import DATASET_ORDER, METHOD_ORDER, rank_in
from rerankbench.harness.frame import newest, records_frame
from rerankbench.harness.per_query_files import PerQueryUnavailable, read
from rerankbench.harness.store import ResultsStore, cell_key_of

TWIN = ["--scale", "0.02", "--dim", "32", "--no-progress"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("frame")
    assert main(["sweep", "--methods", "baseline,aqe", "--param", "k1", "--values", "2,4", "--datasets",
                 "market1501,vehicleid_small", *TWIN, "--results", str(folder)]) == 0
    return folder


def test_one_row_per_record_with_flat_parameters_and_metrics(results):
    frame = rerankbench.load_records(str(results))
    records = ResultsStore(results).results()
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(records) == 6
    assert frame["method"].tolist() == [r["method"] for r in records]
    aqe = frame[frame["method"] == "aqe"]
    assert sorted(aqe["params.k"].tolist()) == [2, 2, 4, 4]
    assert frame["map"].tolist() == [r["map"] for r in records]
    assert frame["dataset_info.fingerprint"].tolist() == [r["dataset_info"]["fingerprint"] for r in records]
    assert frame["cell"].tolist() == [cell_key_of(r) for r in records]
    assert set(frame["context"]) == {"all"} and set(frame["results"]) == {str(results)}
    assert "record" not in frame and frame["per_query.file"].notna().all()


def test_per_query_results_on_demand(results):
    frame = rerankbench.load_records(results)
    for position in range(len(frame)):
        queries = rerankbench.load_per_query(frame.iloc[position])
        stored = read(results, ResultsStore(results).results()[position])
        assert list(queries.columns) == ["draw", "query_row", "num_matches", "first_rank", "ap", "ap_trapezoid", "inp"]
        np.testing.assert_array_equal(queries["ap"].to_numpy(), stored.ap)
        np.testing.assert_array_equal(queries["draw"].to_numpy(), stored.draw)


def test_records_from_before_the_new_fields(results, tmp_path):
    old = {k: v for k, v in ResultsStore(results).results()[0].items() if k not in ("per_query", "trial")}
    ResultsStore(tmp_path).append(old)
    frame = rerankbench.load_records(tmp_path)
    assert (frame["trial"].tolist(), frame["context"].tolist()) == ([0], ["all"])
    with pytest.raises(PerQueryUnavailable, match="keeps no per-query results"):
        rerankbench.load_per_query(frame.iloc[0])


def test_load_records_checks_its_argument():
    with pytest.raises(TypeError, match=r"load_records: results must be a folder \(str or path\), got int 3"):
        rerankbench.load_records(3)


def hand_written_latest(records):
    """The grouping the tables used before the DataFrame: a dict by cell, then sorted."""
    chosen = {}
    for record in records:
        chosen[cell_key_of(record)] = record
    return sorted(chosen.values(), key=lambda r: (rank_in(DATASET_ORDER, r["dataset"]), rank_in(METHOD_ORDER, r["method"]),
                                                  str(r["params"]), r.get("trial", 0)))


def test_newest_keeps_what_the_hand_written_grouping_kept():
    rng = random.Random(0)
    records = []
    for number in range(300):  # repeated cells, cells that tie in the order (other thread counts), trials
        dataset, method = rng.choice(["msmt17", "market1501", "zzz_mine"]), rng.choice(["gnn", "aqe", "new_one"])
        records.append({"dataset": dataset, "method": method, "params": {"k": rng.choice([1, 2])}, "status": "ok",
                        "trial": rng.choice([0, 1]), "threads": rng.choice([1, 2]), "device": "cpu",
                        "dataset_info": {"fingerprint": "f"}, "number": number})
    got = newest(records_frame(records))["record"].tolist()
    assert [r["number"] for r in got] == [r["number"] for r in hand_written_latest(records)]
    assert len(got) < len(records)


def test_export_per_query_writes_every_query_as_csv(results, tmp_path):
    assert main(["export", "--results", str(results), "--output", str(tmp_path / "set"), "--per-query"]) == 0
    table = pd.read_csv(tmp_path / "set" / "per_query.csv")
    records = ResultsStore(tmp_path / "set").results()
    assert len(table) == sum(r["per_query"]["queries"] for r in records)
    assert list(table.columns) == ["dataset", "method", "params", "context", "trial", "draw", "query_row",
                                   "num_matches", "first_rank", "ap", "ap_trapezoid", "inp"]
    for record in records:
        rows = table[(table["method"] == record["method"]) & (table["dataset"] == record["dataset"])
                     & (table["params"] == json.dumps(record["params"], sort_keys=True))]
        np.testing.assert_array_equal(rows["ap"].to_numpy(), read(tmp_path / "set", record).ap)  # repr round-trips
    vehicle = table[table["dataset"] == "vehicleid_small"]
    assert sorted(vehicle["draw"].unique()) == list(range(10))
