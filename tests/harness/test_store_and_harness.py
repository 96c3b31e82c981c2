"""The results store and the harness (worker processes, skipping, failures)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

import rerankbench
from rerankbench.engine import registry
from rerankbench.harness.runner import RunOptions, run_benchmark
from rerankbench.harness.store import RECORDS, ResultsStore, cell_key

FIELDS = ["dataset", "method", "params", "status", "cmc1", "cmc5", "cmc10", "map", "minp", "wall_s", "eval_s",
          "peak_rss_mb", "peak_gpu_mb", "shared", "device", "threads", "seed", "versions", "git_commit", "date",
          "cell", "synthetic", "dataset_info"]


# ------------------------------------------------------------------------------------ store
def result(cell, status="ok", **fields):
    """A well-formed result record; without a fingerprint or device its identity is `cell`."""
    numbers = dict.fromkeys(("cmc1", "cmc5", "cmc10", "map", "minp", "wall_s", "eval_s", "peak_rss_mb"), 50.0)
    return {"cell": cell, "dataset": "toy", "method": "baseline", "params": {}, "status": status,
            **(numbers if status == "ok" else {"error": "boom"}), **fields}


def test_store_append_and_read(tmp_path):
    store = ResultsStore(tmp_path / "res")
    assert store.records() == [] and store.results() == [] and store.finished() == set()
    store.append(result("a", value=np.float32(1.5), array=np.arange(3)))
    store.append(result("b", value=2))
    store.append({"no_cell": True})
    assert store.records() == [json.loads(json.dumps(result("a", value=1.5, array=[0, 1, 2]))), result("b", value=2),
                               {"no_cell": True}]
    with pytest.warns(UserWarning, match=r"records.jsonl:3: skipped a malformed record \(no dataset\)"):
        assert [r["cell"] for r in store.results()] == ["a", "b"]
    with pytest.warns(UserWarning):
        assert store.finished() == {"a", "b"}
    lines = (tmp_path / "res" / RECORDS).read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[1]) == result("b", value=2)
    with pytest.raises(TypeError):
        store.append({"cell": "c", "bad": object()})


def test_store_skips_torn_last_line(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(result("a"))
    store.append(result("b"))
    with open(store.path, "a") as f:
        f.write('{"cell": "c", "cmc1": 1')  # cut off mid-write
    with pytest.warns(UserWarning, match="torn"):
        records = store.records()
    assert records == [result("a"), result("b")]
    with pytest.warns(UserWarning):
        assert store.finished() == {"a", "b"}


def test_store_append_after_torn_line_keeps_new_record(tmp_path):
    store = ResultsStore(tmp_path)
    store.append(result("a"))
    with open(store.path, "a") as f:
        f.write('{"cell": "b", "cmc1": 1')
    store.append(result("c"))
    with pytest.warns(UserWarning):
        assert store.finished() == {"a", "c"}


def test_cell_key_names_the_cell():
    key = cell_key("fp", "market1501", "aqe", {"k": 5}, 0, "cuda:0", 2)
    assert json.loads(key) == ["market1501", "fp", "aqe", {"k": 5}, 0, "cuda", 2]
    assert key != cell_key("fp", "market1501", "aqe", {"k": 6}, 0, "cuda:0", 2)
    assert key != cell_key("fp", "market1501", "aqe", {"k": 5}, 0, "cuda:0", 1)  # other threads, other timings
    assert key == cell_key("fp", "market1501", "aqe", {"k": 5}, 0, "cuda:1", 2)


# ---------------------------------------------------------------------------------- harness
OPTIONS = dict(scale=0.02, dim=32, show_progress=False)  # one thread: conftest.py
METHODS = [("baseline", {}), ("aqe", {})]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("harness")
    log = []
    written = run_benchmark(["market1501"], METHODS, RunOptions(results=str(results), **OPTIONS), trials=1,
                            log=log.append)
    return results, written, log


def test_harness_records(first_run):
    results, written, log = first_run
    fs = registry.datasets()["market1501"].load(scale=0.02, seed=0, dim=32)
    assert [r["method"] for r in written] == ["baseline", "aqe"]
    assert ResultsStore(results).records() == json.loads(json.dumps(written))
    for record in written:
        missing = [f for f in FIELDS if f not in record]
        assert not missing, missing
        assert record["status"] == "ok" and record["error"] is None
        assert record["dataset"] == "market1501"
        assert record["synthetic"] is True
        assert record["dataset_info"]["fingerprint"] == fs.fingerprint
        assert record["dataset_info"]["num_query"] == fs.num_query
        assert record["seed"] == 0 and record["trial"] == 0
        for metric in ("cmc1", "cmc5", "cmc10", "map", "minp"):
            assert 0 <= record[metric] <= 100
        assert record["cmc1"] <= record["cmc5"] <= record["cmc10"]
        assert record["wall_s"] >= 0 and record["eval_s"] >= 0
        assert record["peak_rss_mb"] > 0
        assert record["peak_gpu_mb"] is None  # CPU
        assert record["device"].startswith("cpu")
        assert record["threads"] >= 1
        assert "torch" in record["versions"] and "numpy" in record["versions"]
        assert record["date"][:2] == "20"
        assert json.loads(record["cell"])[:3] == ["market1501", fs.fingerprint, record["method"]]
        assert "steps" in record["shared"]
    baseline, aqe = written
    assert baseline["params"] == {}
    assert aqe["params"] == {"k": fs.default_k}
    assert aqe["shared"]["steps"]["knn_graph"]["k"] == fs.default_k
    assert len(log) == 2 and "baseline" in log[0]


def test_harness_metrics_equal_the_api(first_run):
    # the worker's numbers are those of the notebook API on the same twin
    _, written, _ = first_run
    fs = registry.datasets()["market1501"].load(scale=0.02, seed=0, dim=32)
    for record in written:
        want = rerankbench.evaluate(rerankbench.rerank(record["method"], fs), fs)
        for metric in ("cmc1", "cmc5", "cmc10", "map", "minp", "num_queries", "num_invalid_queries"):
            assert record[metric] == pytest.approx(want[metric], abs=1e-9), metric


def test_harness_rerun_skips_then_force_reruns(first_run):
    results, written, _ = first_run
    log = []
    again = run_benchmark(["market1501"], METHODS, RunOptions(results=str(results), **OPTIONS), log=log.append)
    assert again == json.loads(json.dumps(written))  # the stored records of the cells asked for
    assert any("skipped" in line for line in log)
    assert len(ResultsStore(results).records()) == 2  # nothing new written
    # a new parameter value is a new cell; force reruns the old ones too
    forced = run_benchmark(["market1501"], METHODS + [("aqe", {"k": 3})],
                           RunOptions(results=str(results), force=True, **OPTIONS), log=lambda _: None)
    default_k = written[1]["params"]["k"]
    assert [(r["method"], r["params"]) for r in forced] == [("baseline", {}), ("aqe", {"k": default_k}),
                                                            ("aqe", {"k": 3})]
    assert all(r["status"] == "ok" for r in forced)
    assert [r["cell"] for r in forced[:2]] == [r["cell"] for r in written]
    assert forced[0]["map"] == written[0]["map"] and forced[1]["map"] == written[1]["map"]
    assert len(ResultsStore(results).records()) == 5
    assert len(ResultsStore(results).finished()) == 3


def test_harness_time_limit_gives_failed_records(tmp_path):
    written = run_benchmark(["market1501"], METHODS, RunOptions(results=str(tmp_path), time_limit=1e-6, **OPTIONS),
                            log=lambda _: None)
    assert [r["method"] for r in written] == ["baseline", "aqe"]
    for record in written:
        assert record["status"] == "failed"
        assert "out of time" in record["error"]
        assert record["cmc1"] is None and record["map"] is None
        assert record["dataset"] == "market1501" and "cell" in record
    assert len(ResultsStore(tmp_path).records()) == 2


def test_harness_memory_limit_gives_failed_records(tmp_path):
    written = run_benchmark(["market1501"], METHODS, RunOptions(results=str(tmp_path), memory_limit_mb=1, **OPTIONS),
                            log=lambda _: None)
    assert [r["method"] for r in written] == ["baseline", "aqe"]
    for record in written:
        assert record["status"] == "failed"
        assert "memory" in record["error"]
        assert record["map"] is None


def test_wait_reports_a_worker_that_dies_without_answering():
    import multiprocessing
    import os
    import signal

    from rerankbench.harness.local_executor import _wait

    context = multiprocessing.get_context("spawn")
    for target, args, expected in [(os._exit, (3,), "worker exited with status 3"),
                                   (time.sleep, (30,), "worker killed by SIGKILL")]:
        ours, theirs = context.Pipe()
        worker = context.Process(target=target, args=args)
        worker.start()
        if target is time.sleep:
            os.kill(worker.pid, signal.SIGKILL)
        theirs.close()
        kind, message = _wait(worker, ours, time_limit=20, memory_limit_mb=None)
        worker.join()
        assert kind == "died"
        assert message.startswith(expected)
