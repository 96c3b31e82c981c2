"""The run loop: every (dataset, method, parameters, trial) cell that has no record yet is run
and its record stored.

A cell whose newest record is ok, or failed in the method itself, is skipped unless forced; one
that failed for the machine or the cache is run again (unless `skip_failed`). Records are
appended as cells finish.
The cells of one feature set run through an executor: worker processes on this machine
(local_executor.py), or tasks on a Ray cluster with `executor="ray"` (ray_executor.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..engine.contexts import ALL, GALLERY, check_context, check_fits
from ..engine.knn_backends import KnnChoice
from ..engine.top_l import DEFAULT_L
from ..engine.registry import methods as methods_registry
from ..features.extraction import Extraction
from ..runtime.device import resolve_device
from .cell import Cell, Conditions, identity
from .loading import DataRequest, check_sources
from .local_executor import run_cells
from .store import ResultsStore, cell_key_of


@dataclass(frozen=True)
class RunOptions:
    results: str = "results"
    scale: float = 0.1
    seed: int = 0
    dim: int = 2048
    device: str = "cpu"
    threads: int | None = None
    time_limit: float | None = None
    memory_limit_mb: float | None = None
    force: bool = False
    features_file: str | None = None
    protocol: str | None = None
    show_progress: bool = True
    command: str | None = None  # the command line, stored in every record
    data_root: str | None = None  # the real datasets, their features extracted with `extraction`
    extraction: Extraction | None = None
    executor: str = "local"  # or "ray": the cells as tasks on a Ray cluster
    address: str | None = None  # the Ray cluster's; None starts a local instance
    cpus_per_cell: int | None = None  # cores a Ray task reserves (default: --threads, else a node's)
    skip_failed: bool = False  # a failed cell counts as finished, whatever made it fail
    context: str = ALL  # or "gallery": each query re-ranked against the gallery alone (engine/contexts.py)
    knn: KnnChoice = KnnChoice()  # the kNN graph's backend (engine/knn_backends.py)
    top_l: int | None = None  # re-rank each query's top L only (engine/top_l.py); None: when the matrix would not fit
    matrix_budget_mb: float | None = None  # the M x N float32 matrix's budget (default: a quarter of the RAM)
    distractors: int = 0  # extra distractor images in a twin's gallery (twins/distractors.py)

    def __post_init__(self) -> None:
        check_sources(self.features_file, self.data_root, self.extraction)
        check_context(self.context)
        if self.context == GALLERY:
            self.knn.check_gallery_context()
        if self.context == GALLERY and self.top_l is not None:
            raise ValueError("--top-l re-ranks shortlists of the whole gallery; the gallery context keeps whole rows")
        if self.top_l is not None and (isinstance(self.top_l, bool) or not isinstance(self.top_l, int) or self.top_l < 1):
            raise ValueError(f"--top-l must be a whole number of at least 1, got {self.top_l!r}")
        if self.distractors and (self.features_file or self.data_root):
            raise ValueError("--distractors adds generated distractors to a twin, not to real or given features")
        if isinstance(self.distractors, bool) or not isinstance(self.distractors, int) or self.distractors < 0:
            raise ValueError(f"--distractors must be a whole number >= 0, got {self.distractors!r}")
        for name in ("threads", "cpus_per_cell", "dim"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        for name in ("time_limit", "memory_limit_mb", "matrix_budget_mb"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")

    @property
    def cache_dir(self) -> str:
        return str(Path(self.results) / "cache")


def run_benchmark(dataset_names: list[str], methods: list[tuple[str, dict]], options: RunOptions,
                  trials: int = 1, log=print) -> list[dict]:
    """Run every cell that has no record yet, or whose last run failed for the machine or the
    cache; returns the newest record of every cell asked for (written now, or found in the store)."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a whole number of at least 1, got {trials!r}")
    store = ResultsStore(options.results)
    device = resolve_device(options.device)
    run_cells_with, threads = _executor(options, device)
    store.check_writable()
    conditions = Conditions(device, options.seed, threads, options.context, options.knn)
    with_train = any(methods_registry()[name].needs_train for name, _ in methods)
    keys = []
    for dataset in dataset_names:
        request = DataRequest(dataset, options.scale, options.seed, options.dim, options.features_file,
                              options.protocol, options.cache_dir, options.show_progress, options.data_root,
                              options.extraction, with_train, options.distractors)
        fs = request.load(log)
        usable = _usable(methods, fs, log, options.context)
        cells = [Cell(fs.name, name, params, trial) for name, params in usable for trial in range(trials)]
        done = set() if options.force else store.finished(options.skip_failed)
        conditions = replace(conditions, top_l=top_l_of(fs, options, log))
        cell_keys = [identity(c, fs, conditions)["cell"] for c in cells]
        keys += cell_keys
        pending = [c for c, key in zip(cells, cell_keys) if key not in done]
        if len(pending) < len(cells):
            log(f"{fs.name}: {len(cells) - len(pending)} cell(s) already in {store.path}, skipped (--force reruns them)")
        for record in run_cells_with(request, fs, pending, conditions, options):
            record["command"] = options.command
            store.append(record)
            log(_describe(record))
    newest = {cell_key_of(record): record for record in store.results()}
    return [newest[key] for key in keys if key in newest]


def matrix_budget_mb(options: RunOptions) -> float:
    """The most the M x N float32 distances may take: --matrix-budget, else a quarter of the RAM."""
    if options.matrix_budget_mb is not None:
        return options.matrix_budget_mb
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 4 / 2**20


def top_l_of(fs, options: RunOptions, log) -> int | None:
    """--top-l, or DEFAULT_L when the M x N float32 matrix would exceed the budget (said in one line)."""
    if options.top_l is not None or options.context == GALLERY:
        return options.top_l
    size = 4 * fs.num_query * fs.num_gallery / 2**20
    if size <= matrix_budget_mb(options):
        return None
    log(f"{fs.name}: the {fs.num_query:,} x {fs.num_gallery:,} distances ({size:,.0f} MB) exceed the "
        f"{matrix_budget_mb(options):,.0f} MB budget: re-ranking each query's top {DEFAULT_L:,} (--top-l)")
    return DEFAULT_L


def _usable(methods: list[tuple[str, dict]], fs, log, context: str = ALL) -> list[tuple[str, dict]]:
    """The methods that can run on `fs`: a learned one needs its train split; in the gallery
    context, a neighbourhood must fit the gallery (else the run stops here, before any cell)."""
    for name, params in methods:
        check_fits(methods_registry()[name](**params), fs, context)
    if fs.train is not None:
        return methods
    usable = [(name, params) for name, params in methods if not methods_registry()[name].needs_train]
    learned = sorted({name for name, _ in methods} - {name for name, _ in usable})
    if learned:
        why = f"{', '.join(learned)} learn(s) from a train split, and {fs.name} has none (a features file needs tf, t_ids)"
        if not usable:
            raise ValueError(why)
        log(f"{fs.name}: skipped {why}")
    return usable


def _executor(options: RunOptions, device: torch.device):
    """(run_cells or its Ray counterpart, once connected to the cluster; the torch threads of a cell)."""
    if options.executor == "ray":
        from .ray_executor import cell_threads, connect, run_cells_on_ray  # Ray is imported only for --executor ray
        ray = connect(options.address)
        return run_cells_on_ray, cell_threads(ray, device, options)
    if options.executor != "local":
        raise ValueError(f"unknown executor {options.executor!r}; use local or ray")
    if options.address is not None or options.cpus_per_cell is not None:
        raise ValueError("--address and --cpus-per-cell are for --executor ray")
    return run_cells, options.threads or torch.get_num_threads()


def _describe(record: dict) -> str:
    shown = methods_registry()[record["method"]].brief(record["params"], record.get("overrides") or {})
    context = "" if record.get("context", ALL) == ALL else f" (context {record['context']})"
    head = f"{record['dataset']:<18} {record['method']:<22} {shown}{context}"
    if record["status"] != "ok":
        return f"{head}  FAILED: {record['error'].splitlines()[0]}"
    return (f"{head}  CMC@1 {record['cmc1']:.2f}  mAP {record['map']:.2f}  "
            f"{record['wall_s']:.2f} s  {record['peak_rss_mb']:.0f} MB")
