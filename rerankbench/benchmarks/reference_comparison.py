"""Our k-reciprocal re-ranking against the public reference implementation, on the same input.

The reference is zhunzhong07/person-re-ranking, python-version/re_ranking_ranklist.py (the
code torchreid ships); its file is read from the path the user gives, never copied here.
Both sides start from the same twin features, each in a fresh process so that its peak RSS
is its own:

- reference: the three Euclidean distance matrices it takes (Q G^T, Q Q^T, G G^T from torch
  float32 products, the canonical input: not squared), then re_ranking(q_g, q_q, g_g, k1, k2,
  lambda), then scoring of its M x N result;
- ours: the shared steps (exact kNN graph and query-gallery distances, one pass over X X^T),
  then k_reciprocal, then the same scoring.

"After distances" is the re-ranking alone (the reference's re_ranking call; our rerank and
the production of its distance blocks); "end to end" is features in, metrics out.
"""
from __future__ import annotations

import importlib.util
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch

from ..engine import registry
from ..engine.distances import PrecomputedDistances, euclidean_blocks
from ..engine.shared import SharedSteps
from ..evaluation.protocols import evaluate_all
from ..features.featureset import unit_rows
from ..harness.cell import TimedDistances
from ..harness.memory import peak_rss_mb, reset_peak_rss
from ..harness.provenance import describe
from .report_files import machine_line, write_report


def _load(dataset: str, scale: float, cache_dir: str):
    return registry.datasets()[dataset].load(scale=scale, cache_dir=cache_dir)


def _reference_side(reference: str, dataset: str, scale: float, cache_dir: str, params: dict) -> dict:
    spec = importlib.util.spec_from_file_location("reference_re_ranking", reference)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fs = _load(dataset, scale, cache_dir)
    reset_peak_rss()
    start = time.perf_counter()
    x = torch.from_numpy(fs.stacked())
    unit_rows(x)
    m, t = fs.num_query, len(x)
    query, gallery = np.arange(m), np.arange(m, t)

    def matrix(rows, columns):
        out = np.empty((len(rows), len(columns)), dtype=np.float32)
        for _ in euclidean_blocks(x, rows, columns, out=out):
            pass
        return out
    q_g, q_q, g_g = matrix(query, gallery), matrix(query, query), matrix(gallery, gallery)
    distances_s = time.perf_counter() - start
    start = time.perf_counter()
    final = module.re_ranking(q_g, q_q, g_g, k1=params["k1"], k2=params["k2"], lambda_value=params["lambda"])
    rerank_s = time.perf_counter() - start
    del q_g, q_q, g_g
    start = time.perf_counter()
    metrics = evaluate_all(PrecomputedDistances(np.asarray(final, dtype=np.float32), query, gallery), fs)
    evaluation_s = time.perf_counter() - start
    return {"distances_s": distances_s, "rerank_s": rerank_s, "evaluation_s": evaluation_s,
            "end_to_end_s": distances_s + rerank_s + evaluation_s, "peak_rss_mb": peak_rss_mb(), "metrics": metrics}


def _our_side(dataset: str, scale: float, cache_dir: str, params: dict) -> dict:
    fs = _load(dataset, scale, cache_dir)
    reset_peak_rss()
    start = time.perf_counter()
    shared = SharedSteps(fs)  # no cache: everything is computed here
    method = registry.method("k_reciprocal", **params)
    method.prepare(shared)
    distances_s = time.perf_counter() - start
    start = time.perf_counter()
    result = TimedDistances(method.rerank(shared))
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = evaluate_all(result, fs)
    scoring_s = time.perf_counter() - start - result.seconds
    rerank_s = build_s + result.seconds
    return {"distances_s": distances_s, "rerank_s": rerank_s, "evaluation_s": scoring_s,
            "end_to_end_s": distances_s + rerank_s + scoring_s, "peak_rss_mb": peak_rss_mb(), "metrics": metrics,
            "shared": shared.summary()}


def _in_fresh_process(function, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


def compare(reference: str, dataset: str = "market1501", scale: float = 1.0, cache_dir: str = "results/cache",
            output: str | Path = "results/benchmarks", log=print) -> dict:
    if not Path(reference).is_file():
        raise FileNotFoundError(f"{reference}: no such file (give the path of re_ranking_ranklist.py "
                                "from a checkout of zhunzhong07/person-re-ranking)")
    fs = _load(dataset, scale, cache_dir)  # generate (and cache) the twin before anything is timed
    params = registry.method("k_reciprocal").resolved(fs)
    figures = {"dataset": dataset, "scale": scale, "num_query": fs.num_query, "num_gallery": fs.num_gallery,
               "dim": fs.dim, "params": params, "reference": Path(reference).name}
    log(f"{dataset} twin {fs.num_query} x {fs.num_gallery}, {params}")
    figures["ours"] = _in_fresh_process(_our_side, dataset, scale, cache_dir, params)
    log(f"ours: {figures['ours']}")
    figures["reference_side"] = _in_fresh_process(_reference_side, reference, dataset, scale, cache_dir, params)
    log(f"reference: {figures['reference_side']}")
    ours, ref = figures["ours"], figures["reference_side"]
    figures["speedup_after_distances"] = ref["rerank_s"] / ours["rerank_s"]
    figures["speedup_end_to_end"] = ref["end_to_end_s"] / ours["end_to_end_s"]
    figures["memory_ratio"] = ours["peak_rss_mb"] / ref["peak_rss_mb"]
    keys = ("cmc1", "cmc5", "cmc10", "map", "minp")
    figures["metrics_equal"] = all(ours["metrics"][key] == ref["metrics"][key] for key in keys)
    figures["largest_metric_difference"] = max(abs(ours["metrics"][key] - ref["metrics"][key]) for key in keys)
    figures.update(describe(torch.device("cpu")))
    _write(figures, Path(output))
    return figures


def _write(f: dict, folder: Path) -> None:
    name = f"k_reciprocal_vs_reference_{f['dataset']}"
    ours, ref = f["ours"], f["reference_side"]

    def row(label, key, unit="s", digits=1):
        return f"| {label} | {ref[key]:.{digits}f} {unit} | {ours[key]:.{digits}f} {unit} | {ref[key] / ours[key]:.1f}x |"
    metrics = " / ".join(f"{key} {ours['metrics'][key]:.2f} vs {ref['metrics'][key]:.2f}" for key in ("cmc1", "cmc5", "map", "minp"))
    lines = [
        f"# k-reciprocal: rerankbench against the reference implementation ({f['dataset']} twin, scale {f['scale']:g})", "",
        f"Command: `python -m rerankbench compare-reference --reference PATH/re_ranking_ranklist.py --dataset {f['dataset']}`  ",
        f"Reference: zhunzhong07/person-re-ranking `python-version/{f['reference']}`, run as published.  ",
        machine_line(f), "",
        f"Input: the same {f['num_query']} x {f['num_gallery']} twin features, D = {f['dim']}; "
        f"k1 = {f['params']['k1']}, k2 = {f['params']['k2']}, lambda = {f['params']['lambda']}, "
        f"Euclidean input (squared inside, as the reference does). Each side ran in a fresh process.", "",
        "| step | reference | rerankbench | reference / ours |", "| --- | --- | --- | --- |",
        row("distances (reference: Q G^T, Q Q^T, G G^T; ours: kNN graph + Q G^T in one pass)", "distances_s"),
        row("re-ranking after the distances", "rerank_s"),
        row("scoring", "evaluation_s"),
        row("end to end (features in, metrics out)", "end_to_end_s"),
        row("peak RSS", "peak_rss_mb", "MB", 0), "",
        f"Metrics (ours vs reference): {metrics}. Identical: {'yes' if f['metrics_equal'] else 'no'} "
        f"(largest difference {f['largest_metric_difference']:.4f} points).", ""]
    write_report(folder, name, f, lines)
