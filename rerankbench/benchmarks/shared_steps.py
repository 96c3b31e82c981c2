"""Benchmark of the shared steps against the bare matrix products they need.

On one feature set (by default the full-scale MSMT17 twin) it times, in one run:
  - the bare product X X^T (T x T, in the same row blocks, result thrown away) and the exact
    kNN graph (K = 100) built from it;
  - the bare product Q G^T (M x N) and the baseline evaluation: the shared query-gallery
    distances plus the scoring of every query;
and the peak RSS of the process. Writes a Markdown report and a JSON file under
results/benchmarks/.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..engine.neighbours import block_rows, build_knn_graph
from ..engine.registry import datasets
from ..engine.shared import SharedSteps
from ..evaluation.protocols import evaluate_all
from ..harness.memory import peak_rss_mb
from ..harness.provenance import describe
from ..runtime.device import resolve_device
from .report_files import machine_line, write_report


def bare_product(rows: torch.Tensor, columns: torch.Tensor) -> float:
    """Seconds for rows @ columns.T in blocks of the size the shared steps use."""
    start = time.perf_counter()
    step = block_rows(len(rows), len(columns))
    for lo in range(0, len(rows), step):
        block = rows[lo:lo + step] @ columns.T
        del block
    if rows.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run(dataset: str = "msmt17", scale: float = 1.0, k: int = 100, device: str = "cpu",
        output: str | Path = "results/benchmarks", log=print) -> dict:
    device = resolve_device(device)
    start = time.perf_counter()
    fs = datasets()[dataset].load(scale=scale)
    figures = {"dataset": dataset, "scale": scale, "num_query": fs.num_query, "num_gallery": fs.num_gallery,
               "dim": fs.dim, "k": k, "twin_generation_s": time.perf_counter() - start}
    log(f"{dataset} twin at scale {scale}: {fs.num_query} x {fs.num_gallery}, generated in {figures['twin_generation_s']:.1f} s")
    shared = SharedSteps(fs, str(device), cache_dir=None, show_progress=True)
    x = shared.features
    figures["bare_xxt_s"] = bare_product(x, x)
    log(f"bare X X^T: {figures['bare_xxt_s']:.1f} s")
    start = time.perf_counter()
    build_knn_graph(x, k, show_progress=True)
    figures["knn_graph_s"] = time.perf_counter() - start
    log(f"kNN graph (K={k}): {figures['knn_graph_s']:.1f} s")
    m = fs.num_query
    figures["bare_qgt_s"] = bare_product(x[:m], x[m:])
    log(f"bare Q G^T: {figures['bare_qgt_s']:.1f} s")
    start = time.perf_counter()
    distances = shared.query_gallery_distances()
    figures["distances_s"] = time.perf_counter() - start
    start = time.perf_counter()
    metrics = evaluate_all(distances, fs)
    figures["scoring_s"] = time.perf_counter() - start
    figures["baseline_evaluation_s"] = figures["distances_s"] + figures["scoring_s"]
    figures["metrics"] = metrics
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["knn_over_bare"] = figures["knn_graph_s"] / figures["bare_xxt_s"]
    figures["evaluation_over_bare"] = figures["baseline_evaluation_s"] / figures["bare_qgt_s"]
    figures.update(describe(device))
    log(f"baseline evaluation: {figures['baseline_evaluation_s']:.1f} s; peak RSS {figures['peak_rss_mb']:.0f} MB")
    _write(figures, Path(output))
    return figures


def _write(figures: dict, folder: Path) -> None:
    name = f"shared_steps_{figures['dataset']}"
    f = figures
    command = f"python -m rerankbench benchmark --dataset {f['dataset']} --scale {f['scale']:g} --k {f['k']}"
    lines = [
        f"# Shared steps on the {f['dataset']} twin (scale {f['scale']:g}, synthetic)", "",
        f"Command: `{command}`  ", machine_line(f), "",
        f"T = {f['num_query']} + {f['num_gallery']} = {f['num_query'] + f['num_gallery']} rows, D = {f['dim']}.", "",
        "| step | seconds | bare product it needs | seconds | ratio |", "| --- | --- | --- | --- | --- |",
        f"| exact kNN graph, K = {f['k']} | {f['knn_graph_s']:.1f} | X X^T | {f['bare_xxt_s']:.1f} | {f['knn_over_bare']:.2f} |",
        f"| baseline evaluation (distances {f['distances_s']:.1f} s + scoring {f['scoring_s']:.1f} s) | "
        f"{f['baseline_evaluation_s']:.1f} | Q G^T | {f['bare_qgt_s']:.1f} | {f['evaluation_over_bare']:.2f} |", "",
        f"Peak RSS of the whole run: {f['peak_rss_mb']:.0f} MB. Twin generation: {f['twin_generation_s']:.1f} s.", "",
        f"Baseline on this twin: CMC@1 {f['metrics']['cmc1']:.2f}, mAP {f['metrics']['map']:.2f}, "
        f"mINP {f['metrics']['minp']:.2f}.", ""]
    write_report(folder, name, f, lines)
