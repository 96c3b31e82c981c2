"""Per-query results beside the records: written with each record, named and checked by it, copied
by export, safe under concurrent runs and full disks; records from before them still read."""
from __future__ import annotations

import json
import multiprocessing
import warnings

import numpy as np
import pytest

from rerankbench.cli import main
from rerankbench.evaluation.per_query import PerQuery
from rerankbench.features.trials import trials
from rerankbench.harness.per_query_files import PerQueryUnavailable, read
from rerankbench.harness.store import ResultsStore, StoreError
from test_results_folder import fill, tmpfs

TWIN = ["--scale", "0.02", "--dim", "32", "--no-progress"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("per_query")
    assert main(["run", "--methods", "baseline,aqe", "--datasets", "market1501,vehicleid_small", *TWIN,
                 "--results", str(folder)]) == 0
    return folder


def test_every_record_names_its_file_and_the_metrics_come_from_it(results, market_twin):
    records = ResultsStore(results).results()
    assert len(records) == 4
    for record in records:
        reference = record["per_query"]
        assert reference["file"] == f"per_query/{reference['sha1']}.npz"
        assert (results / reference["file"]).stat().st_size == reference["bytes"]
        per_query = read(results, record)
        assert len(per_query) == reference["queries"]
        for metric in ("cmc1", "cmc5", "map", "minp"):
            counted, values = per_query.metric_terms(metric)
            assert float((per_query.weights(counted) * values).sum()) == pytest.approx(record[metric], abs=1e-9)
    market = next(r for r in records if r["dataset"] == "market1501" and r["method"] == "baseline")
    per_query = read(results, market)
    valid = per_query.num_matches > 0
    assert 100.0 * float(per_query.ap[valid].sum()) / int(valid.sum()) == market["map"]  # the very same sum
    np.testing.assert_array_equal(per_query.query_row, np.arange(market["dataset_info"]["num_query"]))
    vehicle = next(r for r in records if r["dataset"] == "vehicleid_small" and r["method"] == "aqe")
    per_query = read(results, vehicle)
    assert np.unique(per_query.draw).tolist() == list(range(10))  # each of the 10 draws


@pytest.mark.parametrize("damage", ["missing", "cut", "one byte changed"])
def test_a_missing_or_damaged_file_is_named_in_one_line(results, tmp_path, damage):
    record = dict(ResultsStore(results).results()[0])
    source = results / record["per_query"]["file"]
    copy = tmp_path / record["per_query"]["file"]
    copy.parent.mkdir()
    data = bytearray(source.read_bytes())
    if damage == "cut":
        copy.write_bytes(data[:len(data) // 2])
    elif damage == "one byte changed":
        data[len(data) // 2] ^= 0xFF
        copy.write_bytes(bytes(data))
    with pytest.raises(PerQueryUnavailable) as caught:
        read(tmp_path, record)
    message = str(caught.value)
    assert message.startswith(f"{copy}: ") and "\n" not in message
    assert ("cannot be read" if damage == "missing" else "damaged") in message


def test_records_from_before_per_query_results_still_read(results, tmp_path):
    old = {key: value for key, value in ResultsStore(results).results()[0].items() if key != "per_query"}
    ResultsStore(tmp_path).append(old)
    (record,) = ResultsStore(tmp_path).results()
    with pytest.raises(PerQueryUnavailable, match="keeps no per-query results"):
        read(tmp_path, record)


@pytest.mark.parametrize("reference", [{"file": "../elsewhere.npz", "sha1": "0" * 40, "bytes": 1}, "a string",
                                       {"file": "per_query/" + "a" * 40 + ".npz", "sha1": None, "bytes": 1}])
def test_a_malformed_reference_is_a_malformed_record(results, tmp_path, reference):
    ResultsStore(tmp_path).append({**ResultsStore(results).results()[0], "per_query": reference})
    with pytest.warns(UserWarning, match=r"records.jsonl:1: skipped a malformed record \(per_query is"):
        assert ResultsStore(tmp_path).results() == []


def test_export_copies_the_files_and_leaves_out_a_damaged_one(results, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "records.jsonl").write_text((results / "records.jsonl").read_text())
    records = ResultsStore(results).results()
    for record in records[1:]:
        (source / record["per_query"]["file"]).parent.mkdir(exist_ok=True)
        (source / record["per_query"]["file"]).write_bytes((results / record["per_query"]["file"]).read_bytes())
    (source / records[1]["per_query"]["file"]).write_bytes(b"damaged")  # and records[0]'s is missing
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["export", "--results", str(source), "--output", str(tmp_path / "set")]) == 0
    lost = sorted(str(w.message) for w in caught if "exported without its per-query results" in str(w.message))
    assert len(lost) == 2 and all(str(source / "per_query") in message for message in lost)
    exported = {(r["dataset"], r["method"]): r for r in ResultsStore(tmp_path / "set").results()}
    assert len(exported) == 4
    for record in records:
        mine = exported[record["dataset"], record["method"]]
        if record in records[:2]:
            assert "per_query" not in mine
        else:
            assert mine["per_query"] == record["per_query"]
            np.testing.assert_array_equal(read(tmp_path / "set", mine).ap, read(results, record).ap)


def _append_many(folder: str, seed: int, count: int) -> None:
    """Append `count` records with per-query results: half of them the same for every process."""
    from rerankbench.harness.store import ResultsStore
    rng = np.random.default_rng(seed)
    for number in range(count):
        values = rng.random(500) if number % 2 else np.full(500, number / count)
        per_query = PerQuery(np.zeros(500, np.int16), np.arange(500, dtype=np.int32), np.ones(500, np.int32),
                             np.ones(500, np.int32), values, values, values)
        ResultsStore(folder).append({"cell": f"{seed}-{number}", "dataset": "toy", "method": "baseline", "params": {},
                                     "status": "failed", "number": number, "per_query": per_query})


def test_concurrent_runs_into_one_folder_keep_every_file_whole(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), seed, 40)) for seed in (1, 2, 3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    records = ResultsStore(tmp_path).results()
    assert len(records) == 120
    for record in records:
        values = read(tmp_path, record).ap
        if record["number"] % 2 == 0:
            assert (values == record["number"] / 40).all()
    assert len(list((tmp_path / "per_query").iterdir())) == 3 * 20 + 20  # the shared halves are one file each
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


@pytest.fixture
def tiny_disk(tmp_path):
    yield from tmpfs(tmp_path / "disk", "64k")


def test_a_full_disk_stores_neither_the_file_nor_the_record(tiny_disk):
    store = ResultsStore(tiny_disk / "results")
    store.append({"cell": "a"})
    fill(tiny_disk)
    values = np.random.default_rng(0).random(20_000)  # incompressible: far beyond the room left
    per_query = PerQuery(np.zeros(20_000, np.int16), np.arange(20_000, dtype=np.int32), np.ones(20_000, np.int32),
                         np.ones(20_000, np.int32), values, values, values)
    with pytest.raises(StoreError) as caught:
        store.append({"cell": "b", "per_query": per_query})
    assert str(caught.value) == (f"{tiny_disk / 'results' / 'per_query'}: cannot write the per-query results (No space "
                                 "left on device); the record was not stored")
    assert store.records() == [{"cell": "a"}]
    assert not [p for p in tiny_disk.rglob("*") if ".tmp" in p.name]
    assert json.loads(store.path.read_text()) == {"cell": "a"}
