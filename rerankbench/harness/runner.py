"""The harness: runs every (dataset, method, parameters, trial) cell and stores its record.

Cells of one feature set run in one worker process (worker.py) after the shared steps.
The harness watches it: a cell over the time limit, a worker over the memory limit or a
worker that dies becomes a failed record, and a fresh worker takes the remaining cells.
Records are appended as cells finish; cells already in the store are skipped unless forced.
With `executor="ray"` the cells run as tasks on a Ray cluster instead (ray_executor.py).
"""
from __future__ import annotations

import multiprocessing
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .cell import Cell, failed_record, identity
from .environment import resolve_device
from .extraction import Extraction
from .loading import DataRequest
from .memory import rss_mb
from .registry import methods as methods_registry
from .store import ResultsStore
from .worker import serve


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

    @property
    def cache_dir(self) -> str:
        return str(Path(self.results) / "cache")


def run_benchmark(dataset_names: list[str], methods: list[tuple[str, dict]], options: RunOptions,
                  trials: int = 1, log=print) -> list[dict]:
    """Run every cell that has no record yet; returns the newest record of every cell asked for
    (written now, or found in the store)."""
    store = ResultsStore(options.results)
    device = resolve_device(options.device)
    run_cells_with = _executor(options)
    with_train = any(methods_registry()[name].needs_train for name, _ in methods)
    keys = []
    for dataset in dataset_names:
        request = DataRequest(dataset, options.scale, options.seed, options.dim, options.features_file,
                              options.protocol, options.cache_dir, options.show_progress, options.data_root,
                              options.extraction, with_train)
        fs = request.load(log)
        usable = _usable(methods, fs, log)
        cells = [Cell(fs.name, name, params, trial) for name, params in usable for trial in range(trials)]
        done = set() if options.force else store.finished()
        cell_keys = [identity(c, fs, str(device), options.seed)["cell"] for c in cells]
        keys += cell_keys
        pending = [c for c, key in zip(cells, cell_keys) if key not in done]
        if len(pending) < len(cells):
            log(f"{fs.name}: {len(cells) - len(pending)} cell(s) already in {store.path}, skipped (--force reruns them)")
        for record in run_cells_with(request, fs, pending, device, options):
            record["command"] = options.command
            store.append(record)
            log(_describe(record))
    newest = {record["cell"]: record for record in store.records() if "cell" in record}
    return [newest[key] for key in keys if key in newest]


def _usable(methods: list[tuple[str, dict]], fs, log) -> list[tuple[str, dict]]:
    """The methods that can run on `fs`: a learned one needs its train split."""
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


def _executor(options: RunOptions):
    """run_cells, or its Ray counterpart once connected to the cluster."""
    if options.executor == "ray":
        from .ray_executor import connect, run_cells_on_ray
        connect(options.address)
        return run_cells_on_ray
    if options.executor != "local":
        raise ValueError(f"unknown executor {options.executor!r}; use local or ray")
    if options.address is not None or options.cpus_per_cell is not None:
        raise ValueError("--address and --cpus-per-cell are for --executor ray")
    return run_cells


def run_cells(request, fs, cells, device, options):
    """Yield one record per cell, restarting the worker after a cell that killed it."""
    context = multiprocessing.get_context("spawn")
    pending = list(cells)
    while pending:
        ours, theirs = context.Pipe()
        worker = context.Process(target=serve, daemon=True, args=(
            theirs, request, pending, str(device), options.seed, options.threads, options.show_progress))
        worker.start()
        try:
            kind, payload = _wait(worker, ours, None, options.memory_limit_mb)  # start-up: no time limit
            if kind != "ready":
                for cell in pending:
                    yield failed_record(cell, fs, device, options.seed, f"shared steps failed: {payload}")
                return
            summary = payload
            while pending:
                ours.send(("cell", pending[0]))
                kind, payload = _wait(worker, ours, options.time_limit, options.memory_limit_mb)
                cell = pending.pop(0)
                if kind == "record":
                    yield payload
                    continue
                yield failed_record(cell, fs, device, options.seed, payload, shared=summary)
                if kind != "late":  # finished over the limit leaves a good worker; else it is gone
                    break
            else:
                ours.send(("stop",))
                worker.join(timeout=30)
        finally:
            if worker.is_alive():
                worker.kill()
            worker.join()


def _wait(worker, connection, time_limit, memory_limit_mb) -> tuple[str, object]:
    """The worker's next message, or why none came: out of time, out of memory, or death."""
    start = time.monotonic()
    while True:
        if connection.poll(0.2):
            try:
                message = connection.recv()
            except EOFError:  # the worker closed its end: it is gone
                worker.join(timeout=5)
                return "died", _death(worker.exitcode)
            if time_limit is not None and time.monotonic() - start > time_limit:
                return "late", f"out of time: over the {time_limit:g} s limit"
            return message
        if not worker.is_alive() and not connection.poll():
            return "died", _death(worker.exitcode)
        if time_limit is not None and time.monotonic() - start > time_limit:
            worker.kill()
            return "timeout", f"out of time: over the {time_limit:g} s limit"
        rss = rss_mb(worker.pid)
        if memory_limit_mb is not None and rss is not None and rss > memory_limit_mb:
            worker.kill()
            return "oom", f"out of memory: resident memory over the {memory_limit_mb:g} MB limit"


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the kernel kills a process that runs the machine out of memory this way)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with status {exitcode}"


def _describe(record: dict) -> str:
    shown = methods_registry()[record["method"]].brief(record["params"], record.get("overrides") or {})
    head = f"{record['dataset']:<18} {record['method']:<22} {shown}"
    if record["status"] != "ok":
        return f"{head}  FAILED: {record['error'].splitlines()[0]}"
    return (f"{head}  CMC@1 {record['cmc1']:.2f}  mAP {record['map']:.2f}  "
            f"{record['wall_s']:.2f} s  {record['peak_rss_mb']:.0f} MB")
