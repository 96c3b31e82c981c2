"""One cell of the benchmark -- a method with its parameters on one feature set, one trial --
and how it is run and turned into a result record (with every query's scores under `per_query`,
which the store writes to their own file)."""
from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field

import torch

from ..engine.contexts import ALL, in_context, prepare_in_context
from ..engine.knn_backends import KnnChoice
from ..engine.top_l import TopLDistances
from ..engine.registry import method
from ..engine.shared import SharedSteps
from ..evaluation.per_query import PerQuery
from ..evaluation.protocols import score_trials, summarise_trials
from ..features.featureset import FeatureSet
from .memory import peak_gpu_mb, peak_rss_mb, reset_peak_gpu, reset_peak_rss
from .provenance import describe
from ..runtime.files import DamagedFile
from .store import MACHINE, METHOD, cell_key

METRICS = ("cmc1", "cmc5", "cmc10", "map", "minp")


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    params: dict = field(default_factory=dict)
    trial: int = 0

    def instance(self):
        return method(self.method, **self.params)


@dataclass(frozen=True)
class Conditions:
    """What every cell of a run is measured under: the device, the seed, the torch thread count
    (part of a cell's identity: timings depend on it), the context (engine/contexts.py: all,
    or gallery: each query re-ranked against the gallery alone), the kNN graph's backend
    (engine/knn_backends.py) and top_l (engine/top_l.py: each query's top L baseline candidates
    re-ranked, the rest in baseline order after them; None: the whole gallery)."""

    device: torch.device
    seed: int
    threads: int
    context: str = ALL
    knn: KnnChoice = KnnChoice()
    top_l: int | None = None


def identity(cell: Cell, fs: FeatureSet, conditions: Conditions) -> dict:
    """The fields that name a cell in its record, finished or failed."""
    instance = cell.instance()
    params = instance.resolved(fs)
    knn = conditions.knn.describe(fs.num_query + fs.num_gallery)
    train_fit = fs.source.get("train_fit") if instance.needs_train else None
    return {"cell": cell_key(fs.fingerprint, cell.dataset, cell.method, params, cell.trial, str(conditions.device),
                             conditions.threads, conditions.context, knn, conditions.top_l, train_fit),
            **({"train_fit": train_fit} if train_fit else {}),
            "dataset": cell.dataset, "dataset_info": fs.describe(), "synthetic": fs.synthetic,
            "method": cell.method, "params": params, "overrides": {key: params[key] for key in instance.overrides},
            "trial": cell.trial, "seed": conditions.seed, "context": conditions.context, "knn": knn,
            "top_l": conditions.top_l}


def failed_record(cell: Cell, fs: FeatureSet, conditions: Conditions, error: str, failure: str, **extra) -> dict:
    """The record of a cell that gave no metrics: why (`error`), and whether the machine or the cache
    caused it (`failure` MACHINE: the next run tries it again) or the method did (METHOD)."""
    return {**identity(cell, fs, conditions), "status": "failed", "error": error, "failure": failure,
            **{metric: None for metric in METRICS}, "wall_s": None, "peak_rss_mb": None, "peak_gpu_mb": None,
            **describe(conditions.device, conditions.threads), **extra}


def failure_of_error(error: BaseException) -> str:
    """MACHINE for what the machine or the cache caused (memory, the filesystem), METHOD otherwise."""
    return MACHINE if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError, OSError, DamagedFile)) else METHOD


def prepare(shared: SharedSteps, cells: list[Cell], context: str = ALL) -> tuple[dict, dict[str, tuple[str, str]]]:
    """Do the steps the cells need before any of them is timed: the shared ones (the kNN graph and
    distances) for all, then each method's own (a trained model, derived features), in `context`
    (the gallery context: each gallery's graph). Returns their summary, and {method and
    parameters: (error, failure)} for the methods whose own steps failed: their cells become
    failed records, the others run."""
    reset_peak_rss()
    fs = shared.fs
    instances = [cell.instance() for cell in cells]
    # the largest k and the distances first, so that one pass over X X^T makes both
    largest = max((m.neighbours_needed(fs) for m in instances), default=0) if context == ALL else 0
    shared.build(largest, any(m.uses_distances for m in instances))
    failures = {}
    for cell, instance in zip(cells, instances):
        key = _recipe(cell)
        if key not in failures:
            try:
                prepare_in_context(instance, shared, context)
            except Exception as error:  # one method's steps must not stop the others' cells
                failures[key] = (f"preparation failed: {type(error).__name__}: {error}", failure_of_error(error))
    return {"steps": shared.summary(), "peak_rss_mb": peak_rss_mb()}, failures


def run_cell(cell: Cell, shared: SharedSteps, conditions: Conditions, shared_summary: dict,
             failures: dict[str, tuple[str, str]] | None = None) -> dict:
    """Re-rank, evaluate and describe one cell; an exception becomes a failed record, as does a
    method whose preparation failed (`failures`, from prepare)."""
    fs, device = shared.fs, shared.device
    if _recipe(cell) in (failures or {}):
        error, failure = failures[_recipe(cell)]
        return failed_record(cell, fs, conditions, error, failure, shared=shared_summary)
    torch.manual_seed(conditions.seed + cell.trial)
    reset_peak_rss()
    reset_peak_gpu(device)
    try:
        instance = cell.instance()
        start = time.perf_counter()
        distances = in_context(instance, shared, conditions.context)
        if conditions.top_l is not None:
            distances = TopLDistances(distances, shared.features, conditions.top_l)
        distances = TimedDistances(distances)
        rerank_s = time.perf_counter() - start
        start = time.perf_counter()
        scored = score_trials(distances, fs)
        metrics, per_query = summarise_trials(scored, fs), PerQuery.of_trials(scored)
        total_s = time.perf_counter() - start
    except (MemoryError, torch.cuda.OutOfMemoryError) as error:
        return failed_record(cell, fs, conditions, f"out of memory: {error}", MACHINE, shared=shared_summary)
    except Exception as error:  # a broken method must not stop the benchmark
        return failed_record(cell, fs, conditions, f"{type(error).__name__}: {error}", failure_of_error(error),
                             traceback=traceback.format_exc(), shared=shared_summary)
    return {**identity(cell, fs, conditions), "status": "ok", "error": None, **metrics,
            "wall_s": rerank_s + distances.seconds, "eval_s": total_s - distances.seconds,
            "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(device), "shared": shared_summary,
            "per_query": per_query, "knn_recall": shared.knn_recall,
            **instance.details(shared), **describe(device, conditions.threads)}


def _recipe(cell: Cell) -> str:
    """A method with its parameters: what one preparation serves (every trial of it)."""
    return json.dumps([cell.method, cell.params], sort_keys=True, default=str)


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
