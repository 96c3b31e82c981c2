"""The Ray executor on a local Ray instance (2 CPUs): same records as a local run, a killed
task becomes a failed record, a re-run resumes; and the install hint without Ray."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from rerankbench.harness.runner import RunOptions, run_benchmark
from rerankbench.harness.store import ResultsStore
from rerankbench.harness.sweep import sweep_cells

OPTIONS = dict(scale=0.02, dim=32, show_progress=False, threads=1)  # one thread in both executors
CELLS = sweep_cells(["aqe", "k_reciprocal"], "k1", [3, 5], {})
MEASURED = {"wall_s", "eval_s", "peak_rss_mb", "peak_gpu_mb", "shared", "date"}  # times and memory


@pytest.fixture(scope="module")
def ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_records_equal_local_ones_and_a_rerun_resumes(ray, tmp_path):
    local = run_benchmark(["market1501"], CELLS, RunOptions(results=str(tmp_path / "local"), **OPTIONS),
                          log=lambda _: None)
    on_ray = RunOptions(results=str(tmp_path / "ray"), executor="ray", **OPTIONS)
    first = run_benchmark(["market1501"], CELLS[:2], on_ray, log=lambda _: None)  # a run that stopped early
    log = []
    records = run_benchmark(["market1501"], CELLS, on_ray, log=log.append)
    assert first == records[:2]
    assert len(log) == 3 and "2 cell(s) already in" in log[0]  # the rest ran, one line each
    assert len(ResultsStore(tmp_path / "ray").records()) == len(CELLS)
    assert [r["status"] for r in records] == ["ok"] * len(CELLS)
    assert [{k: v for k, v in r.items() if k not in MEASURED} for r in records] == \
           [{k: v for k, v in r.items() if k not in MEASURED} for r in local]
    assert {r["threads"] for r in records} == {1}
    steps = [step for r in records for name, step in r["shared"]["steps"].items() if name in ("knn_graph", "distances")]
    assert steps and all(step["cached"] for step in steps)  # built once by one task, read by every cell


def test_a_killed_task_becomes_a_failed_record_and_the_rest_complete(ray, tmp_path):
    killed = []
    stop = threading.Event()

    def kill_the_first_cell_task():
        while not stop.is_set() and not killed:
            pid = _process_titled("ray::run_one_cell")
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_cell_task)
    killer.start()
    # one task at a time; the limit makes each task start a watched worker: seconds, a wide target
    options = RunOptions(results=str(tmp_path), executor="ray", cpus_per_cell=2, time_limit=300, **OPTIONS)
    try:
        records = run_benchmark(["market1501"], CELLS[:3], options, log=lambda _: None)
    finally:
        stop.set()
        killer.join()
    assert killed
    assert sorted(r["status"] for r in records) == ["failed", "ok", "ok"]
    (failed,) = [r for r in records if r["status"] == "failed"]
    assert failed["error"].startswith("ray task failed: ") and failed["map"] is None
    assert "cell" in failed and failed["dataset"] == "market1501"
    assert len(ResultsStore(tmp_path).records()) == 3


def test_limits_on_ray_give_failed_records(ray, tmp_path):
    options = RunOptions(results=str(tmp_path), executor="ray", time_limit=0.001, **OPTIONS)
    (record,) = run_benchmark(["market1501"], CELLS[:1], options, log=lambda _: None)
    assert record["status"] == "failed" and "out of time" in record["error"] and record["map"] is None


def test_cell_resources(ray):
    import torch

    from rerankbench.harness.ray_executor import cell_resources
    assert cell_resources(ray, torch.device("cpu"), 1) == {"num_cpus": 1, "num_gpus": 0}
    assert cell_resources(ray, torch.device("cpu"), None) == {"num_cpus": 2, "num_gpus": 0}  # the node's cores
    assert cell_resources(ray, torch.device("cuda"), None) == {"num_cpus": 1, "num_gpus": 1}


def test_without_ray_the_executor_says_how_to_install_it(monkeypatch, tmp_path):
    import builtins

    from rerankbench.cli import main
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ValueError, match=r"pip install 'rerankbench\[ray\]'"):
        run_benchmark(["market1501"], CELLS, RunOptions(results=str(tmp_path), executor="ray", **OPTIONS))
    assert main(["run", "--methods", "baseline", "--datasets", "market1501", "--scale", "0.02", "--dim", "32",
                 "--results", str(tmp_path), "--executor", "ray"]) == 2
    assert not (tmp_path / "records.jsonl").exists()


def test_ray_options_need_the_ray_executor(tmp_path):
    for wrong in (dict(address="auto"), dict(cpus_per_cell=2)):
        with pytest.raises(ValueError, match="for --executor ray"):
            run_benchmark(["market1501"], CELLS, RunOptions(results=str(tmp_path), **wrong, **OPTIONS))


def _process_titled(title: str) -> int | None:
    """A process whose command line (Ray sets it to ray::FUNCTION while a task runs) is `title`."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.split(b"\0")[0].strip() == title.encode():
                return int(entry.name)
    return None


def test_the_sharded_graph_on_ray_is_the_local_graph(ray):
    import torch
    from rerankbench.engine.neighbours import build_knn_graph
    from rerankbench.harness.ray_graph import build_graph_on_ray
    x = torch.nn.functional.normalize(torch.randn(1500, 64, generator=torch.Generator().manual_seed(0)), dim=1)
    x[7] = x[3]  # a tie
    graph, timing = build_graph_on_ray(ray, x, 25, shards=3, num_cpus=1)
    local = build_knn_graph(x, 25)
    assert timing["ray_shards"] == 3
    for name in ("indices", "distances", "farthest"):
        assert (getattr(graph, name) == getattr(local, name)).all()
