"""`knn-benchmark`: the kNN graph's builds side by side, in one run on the same rows of one twin.

Today's exact graph (neighbours.build_knn_graph), the screened exact graph (bf16 candidates,
fp32 re-check: screened_graph.py; checked equal here too), the bare fp32 and bf16 products, and
faiss's ivf and hnsw with their recall@K against the exact graph (knn_backends.py). `--rows`
takes the first rows of X (the whole twin by default), so that the slow builds fit a budget.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..engine.knn_backends import parse_knn
from ..engine.neighbours import build_knn_graph
from ..engine.registry import datasets
from ..engine.screened_graph import build_screened_graph
from ..features.featureset import unit_rows
from ..harness.provenance import describe
from .report_files import machine_line, write_report

FAISS_BACKENDS = ("ivf", "hnsw")  # the faiss backends built beside the exact graphs unless told otherwise


def _rate(x: torch.Tensor, dtype: torch.dtype, rows: int = 2048) -> float:
    """GFLOP/s of a (rows x D) by (D x rows) product in `dtype`."""
    a = x[:rows].to(dtype)
    a @ a.T
    start = time.perf_counter()
    a @ a.T
    return 2 * len(a) ** 2 * x.shape[1] / (time.perf_counter() - start) / 1e9


def run(dataset: str = "msmt17", scale: float = 1.0, k: int = 100, rows: int | None = None,
        backends: tuple = FAISS_BACKENDS, note: str = "", output: str | Path = "results/benchmarks", log=print) -> dict:
    fs = datasets()[dataset].load(scale=scale)
    x = unit_rows(torch.from_numpy(fs.stacked()[:rows]))
    figures = {"dataset": dataset, "scale": scale, "rows": len(x), "dim": x.shape[1], "k": k, "note": note,
               **describe(torch.device("cpu"), torch.get_num_threads())}
    figures["fp32_gflops"], figures["bf16_gflops"] = _rate(x, torch.float32), _rate(x, torch.bfloat16)
    log(f"products: fp32 {figures['fp32_gflops']:.1f} GFLOP/s, bf16 {figures['bf16_gflops']:.1f} GFLOP/s")
    start = time.perf_counter()
    exact = build_knn_graph(x, k)
    figures["exact_s"] = time.perf_counter() - start
    log(f"exact graph (today's): {figures['exact_s']:.1f} s")
    start = time.perf_counter()
    screened = build_screened_graph(x, k)
    figures["screened_s"] = time.perf_counter() - start
    figures["screened_identical"] = bool(np.array_equal(screened.indices, exact.indices)
                                         and np.array_equal(screened.distances, exact.distances))
    figures["screened_ratio"] = figures["screened_s"] / figures["exact_s"]
    log(f"screened graph: {figures['screened_s']:.1f} s ({figures['screened_ratio']:.2f}x), identical: "
        f"{figures['screened_identical']}")
    for backend in backends:
        start = time.perf_counter()
        graph, found = parse_knn(backend).build(x, k)
        figures[f"{backend}_s"] = time.perf_counter() - start
        figures[f"{backend}_recall"] = found["knn_recall"]
        log(f"{backend}: {figures[f'{backend}_s']:.1f} s, recall@{k} {found['knn_recall']:.4f}")
    lines = [f"# kNN graphs on the {dataset} twin (scale {scale}, first {len(x):,} rows of X, K = {k})", "",
             machine_line(figures) + (f"; {note}" if note else ""), "",
             "| build | seconds | ratio to exact | recall@K |", "| --- | --- | --- | --- |",
             f"| exact (fp32, today's) | {figures['exact_s']:.1f} | 1.00 | 1 |",
             f"| exact screened by bf16 (identical: {figures['screened_identical']}) | {figures['screened_s']:.1f} | "
             f"{figures['screened_ratio']:.2f} | 1 |"]
    lines += [f"| {b} (faiss, defaults) | {figures[f'{b}_s']:.1f} | {figures[f'{b}_s'] / figures['exact_s']:.2f} | "
              f"{figures[f'{b}_recall']:.4f} |" for b in backends]
    lines += ["", f"Products: fp32 {figures['fp32_gflops']:.1f} GFLOP/s, bf16 {figures['bf16_gflops']:.1f} GFLOP/s.",
              f"Command: python -m rerankbench knn-benchmark --dataset {dataset} --scale {scale} --k {k}"
              + (f" --rows {rows}" if rows else "") + ("" if backends == FAISS_BACKENDS else
                                                        f" --backends {','.join(backends) or 'none'}"), ""]
    page = write_report(output, f"knn_graphs_{dataset}", figures, lines)
    log(f"report: {page}")
    return figures
