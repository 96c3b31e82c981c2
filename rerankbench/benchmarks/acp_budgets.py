"""ACP's budgets on one twin (by default the full MSMT17 twin): training from scratch, then
re-ranking every query and gallery image, each timed apart with its peak RSS.

The budgets of the brief on a 2-core machine: training ACP-Basic on the full MSMT17 twin's
train split within 30 minutes, and re-ranking its T = 93,820 sequences within 3 minutes, the
shared kNN graph excluded. Training and the kNN graph go to a fresh temporary cache, so that
nothing is read from an earlier run; the twin itself comes from RESULTS/cache. Writes
results/benchmarks/acp_<dataset>.{md,json}.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..acp.training import model_inputs
from ..engine.neighbours import build_knn_graph
from ..engine.registry import datasets, method
from ..engine.shared import SharedSteps
from ..evaluation.protocols import evaluate_all
from ..features.featureset import Split, unit_rows
from ..harness.cell import TimedDistances
from ..harness.memory import peak_rss_mb, reset_peak_rss
from ..harness.provenance import describe
from ..runtime.device import resolve_device
from .report_files import machine_line, write_report

BUDGETS = {"training_s": 30 * 60, "expansion_s": 3 * 60, "rerank_s": 3 * 60}


def run(dataset: str = "msmt17", scale: float = 1.0, params: dict | None = None, device: str = "cpu",
        results: str | Path = "results", output: str | Path = "results/benchmarks", log=print) -> dict:
    device = resolve_device(device)
    fs = datasets()[dataset].load(scale, with_train=True, cache_dir=Path(results) / "cache", show_progress=True)
    acp = method("acp", **(params or {}))
    resolved = acp.resolved(fs)
    figures = {"dataset": dataset, "scale": scale, "params": resolved, "train_images": len(fs.train),
               "num_query": fs.num_query, "num_gallery": fs.num_gallery, "sequences": fs.num_query + fs.num_gallery}
    log(f"ACP on the {dataset} twin (scale {scale:g}): {len(fs.train)} training images, "
        f"{figures['sequences']} sequences to re-rank; {resolved}")
    with tempfile.TemporaryDirectory(prefix="acp-benchmark-") as fresh:
        shared = SharedSteps(fs, str(device), fresh, show_progress=True)
        reset_peak_rss()
        start = time.perf_counter()
        trained = acp.trained(shared, log)
        figures["training_s"] = time.perf_counter() - start
        figures["training_peak_rss_mb"] = peak_rss_mb()
        figures["trained_sequences"] = resolved["epochs"] * (resolved["epoch_size"] // 16 * 16)
        figures["losses"] = trained.losses
        log(f"training: {figures['training_s']:.0f} s, final loss {trained.losses[-1]:.4f}")
        acp.prepare(shared)  # the kNN graph, excluded from the budget
        figures["knn_graph_s"] = shared.timings["knn_graph"]["seconds"]
        reset_peak_rss()
        start = time.perf_counter()
        distances = TimedDistances(acp.rerank(shared))
        figures["expansion_s"] = time.perf_counter() - start
        start = time.perf_counter()
        figures["metrics"] = evaluate_all(distances, fs)
        figures["distances_s"] = distances.seconds
        figures["scoring_s"] = time.perf_counter() - start - distances.seconds
        figures["rerank_peak_rss_mb"] = peak_rss_mb()
        baseline = method("baseline")
        baseline.prepare(shared)
        figures["baseline_metrics"] = evaluate_all(baseline.rerank(shared), fs)
        test = Split(fs.stacked(), np.concatenate([fs.query.ids, fs.gallery.ids]),
                     blocks={name: np.concatenate([fs.query.blocks[name], fs.gallery.blocks[name]])
                             for name in fs.query.blocks})
        train_features = unit_rows(torch.tensor(np.asarray(fs.train.features, np.float32)))
        figures["separation"] = {
            "train": separation(trained, fs.train, build_knn_graph(train_features.to(shared.device), resolved["k1"]).indices,
                                resolved["k2"], shared.device),
            "test": separation(trained, test, shared.knn_graph(resolved["k1"]).indices, resolved["k2"], shared.device)}
    # re-ranking = the expanded features (every sequence through the model) and their distances, as a record's wall_s
    figures["rerank_s"] = figures["expansion_s"] + figures["distances_s"]
    figures["sequences_per_s"] = figures["sequences"] / figures["expansion_s"]
    figures["training_sequences_per_s"] = figures["trained_sequences"] / figures["training_s"]
    figures.update(describe(device))
    log(f"re-ranking: {figures['rerank_s']:.0f} s ({figures['sequences_per_s']:.0f} sequences/s); "
        f"mAP {figures['metrics']['map']:.2f} (baseline {figures['baseline_metrics']['map']:.2f})")
    _write(figures, Path(output), params or {})
    return figures


def separation(trained, split: Split, graph: np.ndarray, k2: int, device, rows: int = 5000, seed: int = 0) -> dict:
    """A diagnostic, with the labels the method never sees: the mean correlation s the model gives
    the true and the false matches among the k1 nearest neighbours (`graph`, over the split) of
    up to `rows` images of `split`. A model that has learnt the relation, not the training
    identities, separates them on the test split as on the train split."""
    sample = np.sort(np.random.default_rng(seed).permutation(len(split))[:rows])
    neighbours = graph[sample]
    inputs = torch.as_tensor(model_inputs([split], trained.blocks), device=device)
    with torch.inference_mode():
        s = torch.cat([torch.sigmoid(trained.model(inputs[torch.as_tensor(part, device=device)], k2)).cpu()
                       for part in np.array_split(neighbours, max(1, len(neighbours) // 64))]).numpy()
    same = split.ids[neighbours] == split.ids[neighbours[:, :1]]
    return {"true": float(s[same].mean()), "false": float(s[~same].mean()) if (~same).any() else None,
            "true_fraction": float(same.mean())}


def _write(f: dict, folder: Path, params: dict) -> None:
    settings = "".join(f" --set acp.{key}={value}" for key, value in params.items())
    command = f"python -m rerankbench acp-benchmark --dataset {f['dataset']} --scale {f['scale']:g}{settings}"
    p = f["params"]

    def verdict(key):
        return "within" if f[key] <= BUDGETS[key] else "OVER"
    m, b = f["metrics"], f["baseline_metrics"]
    lines = [
        f"# ACP on the {f['dataset']} twin (scale {f['scale']:g}, synthetic): training and re-ranking budgets", "",
        f"Command: `{command}`  ", machine_line(f), "",
        f"ACP-{p['preset'].capitalize() if p['preset'] == 'basic' else p['preset'].upper()}, k1 = {p['k1']}, "
        f"k2 = {p['k2']}; {p['epochs']} epochs of {p['epoch_size']} probes on {f['train_images']} training images.", "",
        "| step | seconds | budget | | throughput | peak RSS MB |", "| --- | --- | --- | --- | --- | --- |",
        f"| training from scratch | {f['training_s']:.0f} | {BUDGETS['training_s']} | {verdict('training_s')} | "
        f"{f['training_sequences_per_s']:.0f} sequences/s | {f['training_peak_rss_mb']:.0f} |",
        f"| the {f['sequences']} sequences through ACP and the expansion (eq. 1) | {f['expansion_s']:.0f} | "
        f"{BUDGETS['expansion_s']} | {verdict('expansion_s')} | {f['sequences_per_s']:.0f} sequences/s | "
        f"{f['rerank_peak_rss_mb']:.0f} |",
        f"| then the query-gallery distances of the expanded features | {f['distances_s']:.0f} | | | | |",
        f"| re-ranking end to end (a record's wall_s) | {f['rerank_s']:.0f} | {BUDGETS['rerank_s']} | "
        f"{verdict('rerank_s')} | | |",
        f"| (scoring, the evaluation: excluded) | {f['scoring_s']:.0f} | | | | |",
        f"| (shared kNN graph: excluded) | {f['knn_graph_s']:.0f} | | | | |", "",
        "| | CMC@1 | CMC@5 | mAP | mINP |", "| --- | --- | --- | --- | --- |",
        *(f"| {name} | {r['cmc1']:.2f} | {r['cmc5']:.2f} | {r['map']:.2f} | {r['minp']:.2f} |"
          for name, r in (("baseline", b), ("ACP", m))), "",
        "Training loss by epoch: " + ", ".join(f"{loss:.3f}" for loss in f["losses"]) + ".", "",
        "Diagnostic (labels the method never sees): mean correlation s among each image's k1 nearest "
        "neighbours, true matches against false ones, on 5,000 images of each split.", "",
        "| split | true matches | s, true | s, false |", "| --- | --- | --- | --- |",
        *(f"| {name} | {100 * d['true_fraction']:.1f}% | {d['true']:.3f} | "
          f"{'-' if d['false'] is None else format(d['false'], '.3f')} |" for name, d in f["separation"].items()), ""]
    write_report(folder, f"acp_{f['dataset']}", f, lines)
