"""`gpu-check`: everything that needs CUDA, in one command of at most about 8 minutes.

1. The CUDA-parametrised tests (`pytest -q -k cuda`: every method and step checked on CUDA
   against the CPU to float tolerance), unless --no-tests.
2. Every method on a full-size twin (Market-1501 by default) on the GPU, through the harness
   as `run --device cuda` does it, one cell each: metrics, re-ranking time, peak GPU memory.
   The same cells on the CPU are not re-run here (that would take the budget): the tests of
   step 1 are the agreement check.
3. Every kNN backend (engine/knn_backends.py) on the same twin's X on the GPU: build time and,
   for the approximate ones, recall@K (faiss's GPU index where faiss-gpu is installed, else
   its CPU index, which the report says).

The report goes to results/benchmarks/gpu_check.{md,json}; commit it whenever a GPU was lent.
Without a CUDA device it says so and exits 0 having run nothing (`--device cpu` runs steps 2
and 3 on the CPU instead: how the suite checks this command without a GPU).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..engine.knn_backends import BACKENDS, faiss_gpus, parse_knn
from ..engine.registry import datasets, methods
from ..engine.registry import method as method_named
from ..features.featureset import unit_rows
from ..harness.provenance import describe
from ..harness.runner import RunOptions, run_benchmark
from .report_files import machine_line, write_report

TEST_SECONDS = 240  # the tests' share of the 8 minutes
CELL_SECONDS = 60  # a method's cell at most


def run(dataset: str = "market1501", scale: float = 1.0, device: str = "cuda", with_tests: bool = True,
        output: str | Path = "results/benchmarks", log=print) -> int:
    """Run the check on `device`; 0 when every step passed (or there is no CUDA device), else 1."""
    if device == "cuda" and not torch.cuda.is_available():
        log("gpu-check: no CUDA device here, nothing to check")
        return 0
    target = torch.device(device)
    figures = {"dataset": dataset, "scale": scale, **describe(target, torch.get_num_threads())}
    figures["tests"] = _tests(log) if with_tests else {"status": "not run"}
    with tempfile.TemporaryDirectory() as scratch:  # a results folder: the run's records and caches
        figures["methods"] = _methods(dataset, scale, device, scratch, log)
        figures["knn"] = _backends(dataset, scale, target, RunOptions(results=scratch).cache_dir, log)
    page = write_report(output, "gpu_check", figures, _page(figures, device, with_tests))
    log(f"report: {page}")
    failed = figures["tests"]["status"] == "failed" or any(m["status"] != "ok" for m in figures["methods"])
    return 1 if failed else 0


def _tests(log) -> dict:
    """pytest's CUDA-parametrised tests, timed; their last line kept."""
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider"],
                              capture_output=True, text=True, timeout=TEST_SECONDS)
        summary = (done.stdout.strip().splitlines() or [""])[-1]
        status = "passed" if done.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        summary, status = f"stopped after {TEST_SECONDS} s", "failed"
    log(f"CUDA tests: {status}: {summary}")
    return {"status": status, "summary": summary, "seconds": time.perf_counter() - start}


def _methods(dataset: str, scale: float, device: str, results: str, log) -> list[dict]:
    """One cell of every method on the twin, on `device`, into the results folder `results`."""
    options = RunOptions(results=results, scale=scale, device=device, time_limit=CELL_SECONDS,
                         show_progress=False, command="python -m rerankbench gpu-check")
    records = run_benchmark([dataset], [(name, {}) for name in methods()], options, log=log)
    return [{"method": r["method"], "status": r["status"], "error": r.get("error"),
             "cmc1": r.get("cmc1"), "map": r.get("map"), "wall_s": r.get("wall_s"),
             "peak_gpu_mb": r.get("peak_gpu_mb"), "shared_s": (r.get("shared") or {}).get("seconds")}
            for r in records]


def _backends(dataset: str, scale: float, device: torch.device, cache_dir, log) -> list[dict]:
    """Every kNN backend's graph of the twin's X on `device`, for the largest k a method reads."""
    fs = datasets()[dataset].load(scale=scale, with_train=True, cache_dir=cache_dir)  # the twin the run made
    k = max(method_named(name).neighbours_needed(fs) for name in methods())
    x = unit_rows(torch.from_numpy(fs.stacked())).to(device)
    out = []
    for backend in BACKENDS:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        _, found = parse_knn(backend).build(x, k)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        out.append({"backend": backend, "seconds": seconds, "recall": found.get("knn_recall", 1.0), "k": k,
                    "faiss_gpu": backend != "exact" and faiss_gpus() > 0})
        log(f"kNN {backend}: {seconds:.2f} s, recall@{k} {out[-1]['recall']:.4f}")
    return out


def _page(figures: dict, device: str, with_tests: bool) -> list[str]:
    tests = figures["tests"]
    lines = [f"# GPU check: {figures['dataset']} twin at scale {figures['scale']} on {device}", "",
             machine_line(figures), "",
             f"CUDA-parametrised tests: {tests['status']}" + (f" ({tests['summary']}, {tests['seconds']:.0f} s)"
                                                              if "summary" in tests else ""), "",
             "| method | status | CMC@1 | mAP | re-ranking s | peak GPU MB |", "| --- | --- | --- | --- | --- | --- |"]
    for m in figures["methods"]:
        if m["status"] == "ok":
            lines.append(f"| {m['method']} | ok | {m['cmc1']:.2f} | {m['map']:.2f} | {m['wall_s']:.3f} | "
                         f"{m['peak_gpu_mb'] or 0:.0f} |")
        else:
            lines.append(f"| {m['method']} | {m['status']}: {m['error']} | | | | |")
    lines += ["", "| kNN backend | seconds | recall@K | faiss on GPU |", "| --- | --- | --- | --- |"]
    lines += [f"| {b['backend']} | {b['seconds']:.2f} | {b['recall']:.4f} | {'yes' if b['faiss_gpu'] else 'no'} |"
              for b in figures["knn"]]
    command = f"python -m rerankbench gpu-check --dataset {figures['dataset']} --scale {figures['scale']}"
    command += "" if device == "cuda" else f" --device {device}"
    command += "" if with_tests else " --no-tests"
    return lines + ["", f"Command: {command}", ""]
