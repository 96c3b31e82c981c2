"""`ann-sweep`: an approximate kNN graph's recall@K against its time, over the values of its search setting.

One faiss index (knn_backends.faiss_index: hnsw or ivf, its other parameters as given) is built
once on the whole twin. For each value of its search setting (efSearch for hnsw, nprobe for ivf),
a seeded sample of rows (knn_backends.recall_rows, as every record's knn_recall) is searched as
the graph searches every row (its K + 1 nearest, and its farthest through -x), their lists are
put in the exact graph's conventions (ordered_neighbours) and compared with their exact top K:
recall@K, and where the misses fall: the share of each row's exact first 10 (itself included, as
in recall@K) found anywhere in its list, and how much farther its K-th found neighbour is than its
exact K-th (the median over rows; 0 when the lists differ only among ties at the tail). Searches
are per row, so the whole graph's search time is projected as the sample's x T / rows; build
plus that is set against the exact graph, timed on the same rows in the same run (plain fp32 and
bf16-screened). The recall-time curve of ANN-Benchmarks (Aumueller et al., Information Systems
2020), for one twin; a setting it picks is then run whole through `run --knn`.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..engine.knn_backends import faiss_index, ordered_neighbours, overlap, parse_knn, recall_rows
from ..engine.neighbours import build_knn_graph, euclidean_from_similarity, nearest_among
from ..engine.registry import datasets
from ..engine.screened_graph import build_screened_graph
from ..features.featureset import unit_rows
from ..harness.provenance import describe
from .report_files import machine_line, write_report

SWEPT = {"hnsw": "efSearch", "ivf": "nprobe"}  # the search setting of each approximate backend
HEAD = 10  # the exact list's first neighbours whose recall says whether misses are only at the tail


def run(dataset: str, backend: str, values: list[int], settings: list[str] | None = None, scale: float = 1.0,
        k: int = 100, sample: int = 2000, screened: bool = True, note: str = "",
        output: str | Path = "results/benchmarks", log=print) -> dict:
    if backend not in SWEPT:
        raise ValueError(f"ann-sweep takes --backend {' or '.join(SWEPT)}, got {backend!r}")
    swept = SWEPT[backend]
    choice = parse_knn(backend, [*(settings or []), *(f"{swept}={v}" for v in values)])  # checks every value
    fs = datasets()[dataset].load(scale=scale)
    x = unit_rows(torch.from_numpy(fs.stacked()))
    total, k = len(x), min(k, len(x))
    params = choice.resolved(total)
    figures = {"dataset": dataset, "scale": scale, "rows": total, "dim": x.shape[1], "k": k, "backend": backend,
               "params": {n: v for n, v in params.items() if n not in (swept, "recall_rows")}, "sample": sample, "note": note,
               **describe(torch.device("cpu"), torch.get_num_threads())}
    builds = [("exact", lambda: build_knn_graph(x, k))] + ([("screened", lambda: build_screened_graph(x, k))]
                                                            if screened else [])
    graphs = {}
    for name, build in builds:
        start = time.perf_counter()
        graphs[name] = build()
        figures[f"{name}_s"] = time.perf_counter() - start
        log(f"{name} graph: {figures[f'{name}_s']:.1f} s")
    if screened:
        figures["screened_identical"] = bool(np.array_equal(graphs["screened"].indices, graphs["exact"].indices)
                                             and np.array_equal(graphs["screened"].distances, graphs["exact"].distances))
    del graphs
    rows = recall_rows(total, sample)
    exact, exact_distances, _ = nearest_among(x, rows, np.arange(total), k)
    head = min(HEAD, k)
    import faiss
    faiss.omp_set_num_threads(torch.get_num_threads())
    points = np.ascontiguousarray(x.numpy(), dtype=np.float32)
    start = time.perf_counter()
    index = faiss_index(points, backend, params, torch.device("cpu"))
    figures["build_s"] = time.perf_counter() - start
    log(f"{backend} index: {figures['build_s']:.1f} s")
    block, curve = points[rows], []
    for value in values:
        if backend == "hnsw":
            index.hnsw.efSearch = value
        else:
            index.nprobe = value
        start = time.perf_counter()
        found = index.search(block, k + 1)[1]
        index.search(-block, 1)
        seconds = time.perf_counter() - start
        own = torch.as_tensor(rows)
        similarities, lists = ordered_neighbours(x, own, torch.as_tensor(found), k)
        kth = euclidean_from_similarity(similarities[:, -1]).numpy()
        point = {swept: value, "recall": overlap(lists.numpy(), exact),
                 "head_recall": overlap(lists.numpy(), exact[:, :head]),
                 "kth_gap": float(np.median(kth - exact_distances[:, -1])), "sample_search_s": seconds,
                 "search_s": seconds * total / len(rows)}
        point["total_s"] = figures["build_s"] + point["search_s"]
        point["speedup"] = figures["exact_s"] / point["total_s"]
        curve.append(point)
        log(f"{swept} {value}: recall@{k} {point['recall']:.4f} (first {head}: {point['head_recall']:.4f}), "
            f"search {point['search_s']:.1f} s (projected), {point['speedup']:.2f}x exact")
    figures["curve"] = curve
    setting_text = " ".join(f"--param {s}" for s in settings or [])
    lines = [f"# {backend} kNN graph on the {dataset} twin: recall@K against time (scale {scale}, "
             f"T = {total:,}, K = {k})", "", machine_line(figures) + (f"; {note}" if note else ""), "",
             f"Index: faiss {backend}, " + ", ".join(f"{n} {v}" for n, v in figures["params"].items())
             + f"; built once in {figures['build_s']:.1f} s. Exact graph on the same rows: "
             f"{figures['exact_s']:.1f} s" + (f" (bf16-screened: {figures['screened_s']:.1f} s, identical: "
                                              f"{figures['screened_identical']})" if screened else "") + ".",
             f"Recall@{k} on {len(rows):,} seeded rows against their exact lists; whole-graph search time "
             f"projected from theirs (x {total / len(rows):.1f}). Where the misses fall: the share of each row's "
             f"exact first {head} found in its list, and how much farther (Euclidean, unit rows; the median over "
             f"rows) its K-th found neighbour is than its exact K-th, whose own median is "
             f"{float(np.median(exact_distances[:, -1])):.4f}.", "",
             f"| {swept} | recall@K | recall of the first {head} | K-th distance, found - exact | "
             "search, projected (s) | build + search (s) | speed-up over exact |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {p[swept]} | {p['recall']:.4f} | {p['head_recall']:.4f} | {p['kth_gap']:.4f} | {p['search_s']:.1f} "
              f"| {p['total_s']:.1f} | {p['speedup']:.2f}x |" for p in curve]
    lines += ["", f"Command: python -m rerankbench ann-sweep --dataset {dataset} --scale {scale} --k {k} "
              f"--backend {backend} {setting_text + ' ' if setting_text else ''}--values "
              f"{','.join(map(str, values))}" + (f" --sample {sample}" if sample != 2000 else "")
              + ("" if screened else " --no-screened"), ""]
    page = write_report(output, f"ann_sweep_{backend}_{dataset}", figures, lines)
    log(f"report: {page}")
    return figures
