"""One cell of the benchmark -- a method with its parameters on one feature set, one trial --
and how it is run and turned into a result record."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

import torch

from ..engine.registry import method
from ..engine.shared import SharedSteps
from ..evaluation.protocols import evaluate_all
from ..features.featureset import FeatureSet
from .memory import peak_gpu_mb, peak_rss_mb, reset_peak_gpu, reset_peak_rss
from .provenance import describe
from .store import cell_key

METRICS = ("cmc1", "cmc5", "cmc10", "map", "minp")


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    params: dict = field(default_factory=dict)
    trial: int = 0

    def instance(self):
        return method(self.method, **self.params)


def identity(cell: Cell, fs: FeatureSet, device: str, seed: int) -> dict:
    """The fields that name a cell in its record, finished or failed."""
    instance = cell.instance()
    params = instance.resolved(fs)
    return {"cell": cell_key(fs.fingerprint, cell.dataset, cell.method, params, cell.trial, device),
            "dataset": cell.dataset, "dataset_info": fs.describe(), "synthetic": fs.synthetic,
            "method": cell.method, "params": params, "overrides": {key: params[key] for key in instance.overrides},
            "trial": cell.trial, "seed": seed}


def failed_record(cell: Cell, fs: FeatureSet, device: torch.device, seed: int, error: str, **extra) -> dict:
    return {**identity(cell, fs, str(device), seed), "status": "failed", "error": error,
            **{metric: None for metric in METRICS}, "wall_s": None, "peak_rss_mb": None, "peak_gpu_mb": None,
            **describe(device), **extra}


def prepare(shared: SharedSteps, cells: list[Cell]) -> dict:
    """Do the shared steps the cells need before any of them is timed; returns their summary."""
    reset_peak_rss()
    fs = shared.fs
    instances = [cell.instance() for cell in cells]
    # the largest k and the distances first, so that one pass over X X^T makes both
    shared.build(max((m.neighbours_needed(fs) for m in instances), default=0), any(m.uses_distances for m in instances))
    for instance in instances:
        instance.prepare(shared)
    return {"steps": shared.summary(), "peak_rss_mb": peak_rss_mb()}


def run_cell(cell: Cell, shared: SharedSteps, seed: int, shared_summary: dict) -> dict:
    """Re-rank, evaluate and describe one cell; an exception becomes a failed record."""
    fs, device = shared.fs, shared.device
    torch.manual_seed(seed + cell.trial)
    reset_peak_rss()
    reset_peak_gpu(device)
    try:
        instance = cell.instance()
        start = time.perf_counter()
        distances = TimedDistances(instance.rerank(shared))
        rerank_s = time.perf_counter() - start
        start = time.perf_counter()
        metrics = evaluate_all(distances, fs)
        total_s = time.perf_counter() - start
    except (MemoryError, torch.cuda.OutOfMemoryError) as error:
        return failed_record(cell, fs, device, seed, f"out of memory: {error}", shared=shared_summary)
    except Exception as error:  # a broken method must not stop the benchmark
        return failed_record(cell, fs, device, seed, f"{type(error).__name__}: {error}",
                             traceback=traceback.format_exc(), shared=shared_summary)
    return {**identity(cell, fs, str(device), seed), "status": "ok", "error": None, **metrics,
            "wall_s": rerank_s + distances.seconds, "eval_s": total_s - distances.seconds,
            "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(device), "shared": shared_summary,
            **instance.details(shared), **describe(device)}


class TimedDistances:
    """Counts the time spent producing distance blocks as the method's, not the evaluation's."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def blocks(self, query_rows, gallery_rows):
        blocks = iter(self.inner.blocks(query_rows, gallery_rows))
        while True:
            start = time.perf_counter()
            item = next(blocks, None)
            self.seconds += time.perf_counter() - start
            if item is None:
                return
            yield item
