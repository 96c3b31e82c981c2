"""Running the cells on a Ray cluster (`--executor ray`): each cell is one Ray task.

A task reserves the resources its cell is measured with -- one GPU on CUDA, else
`cpus_per_cell` CPU cores, which are also its torch threads -- so no two timed cells share a
device. Inside the task the cell runs with the same code as in a local run (cell.run_cell),
and with a time or memory limit in a worker process watched as locally (local_executor.run_cells),
so records, limits and failure reasons are the same. A task that is killed or lost (worker
or node death) becomes a failed record; tasks are not retried, and a re-run of the command
resumes with the cells that have no record.

The exact kNN graph (context all) is built first, as tasks over shards of the rows of X
(ray_graph.py), and written to the cache. The shared steps reach the tasks through the cache
folder, not the object store: one task
builds them (kNN graph for the largest k, query-gallery distances, derived steps) into
`<results>/cache/shared/` before any cell is submitted, and every cell task reads them from
there with the same code as a local worker, memory-mapped, so tasks on one node share one
copy in the page cache and a later run finds them too. On a multi-node cluster the results
folder must therefore be on a filesystem every node sees at the same path.
Ray is imported only here, and this module only for `--executor ray`.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..engine.contexts import ALL
from ..engine.shared import SharedSteps
from .cell import Cell, Conditions, failed_record, prepare, run_cell
from .loading import DataRequest
from .local_executor import run_cells
from .ray_graph import build_graph_on_ray, shards_for
from .store import MACHINE

INSTALL_HINT = "--executor ray needs Ray: pip install 'rerankbench[ray]' (or pip install 'ray>=2.9')"


def connect(address: str | None):
    """Ray, connected to the cluster at `address` ('auto': the one started on this machine with
    `ray start`), or to a new local instance when there is none; the install hint without Ray."""
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    return ray


def cell_threads(ray, device: torch.device, options) -> int:
    """The torch threads of each cell's task: --threads, else the cores it reserves (cell_resources)."""
    return options.threads or cell_resources(ray, device, options.cpus_per_cell)["num_cpus"]


def run_cells_on_ray(request: DataRequest, fs, cells: list[Cell], conditions: Conditions, options):
    """Yield one record per cell, in the order the tasks finish (connect() first; conditions.threads
    from cell_threads)."""
    if not cells:
        return
    import ray
    resources = cell_resources(ray, conditions.device, options.cpus_per_cell or conditions.threads)
    options = replace(options, show_progress=False)
    request = _absolute(replace(request, show_progress=False))
    build = ray.remote(build_shared_steps).options(**resources, max_retries=0)
    try:
        _graph_by_shards(ray, request, fs, cells, conditions, resources)
        summary = ray.get(build.remote(request, cells, conditions))
    except ray.exceptions.RayError as error:
        for cell in cells:
            yield failed_record(cell, fs, conditions, f"shared steps failed: {_reason(error)}", MACHINE)
        return
    task = ray.remote(run_one_cell).options(**resources, max_retries=0)
    running = {task.remote(request, cell, conditions, options): cell for cell in cells}
    try:
        while running:
            (done,), _ = ray.wait(list(running), num_returns=1)
            cell = running.pop(done)
            try:
                yield ray.get(done)
            except ray.exceptions.RayError as error:
                yield failed_record(cell, fs, conditions, f"ray task failed: {_reason(error)}", MACHINE, shared=summary)
    finally:
        for ref in running:  # interrupted: the cells left would run on unobserved
            ray.cancel(ref, force=True)


def _graph_by_shards(ray, request: DataRequest, fs, cells: list[Cell], conditions: Conditions, resources: dict) -> None:
    """The exact kNN graph of the cells' largest k as Ray tasks over row shards, into the cache (on
    CPU, in the context all, with the exact backend; otherwise the shared-steps task builds it)."""
    if conditions.context != ALL or conditions.knn.identity() is not None or conditions.device.type != "cpu":
        return
    k = max((cell.instance().neighbours_needed(fs) for cell in cells), default=0)
    shared = SharedSteps(fs, "cpu", request.cache_dir, knn=conditions.knn)
    k = min(k, shared.widest)
    if not k or shared.has_cached_graph(k):
        return
    graph, timing = build_graph_on_ray(ray, shared.features, k, shards_for(ray, resources["num_cpus"]),
                                       resources["num_cpus"])
    shared.store_graph(graph, timing)


def cell_resources(ray, device: torch.device, cpus_per_cell: int | None) -> dict:
    """What one cell's task reserves: a GPU and `cpus_per_cell` cores (1 unless stated) on
    CUDA; on CPU `cpus_per_cell` cores, by default all cores of the largest node."""
    if device.type == "cuda":
        return {"num_cpus": cpus_per_cell or 1, "num_gpus": 1}
    if cpus_per_cell is None:
        cpus_per_cell = int(max(node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]))
    return {"num_cpus": cpus_per_cell, "num_gpus": 0}


def build_shared_steps(request: DataRequest, cells: list[Cell], conditions: Conditions) -> dict:
    """A Ray task: the shared steps of these cells, written to the cache; returns their summary."""
    torch.set_num_threads(conditions.threads)
    summary, _ = prepare(SharedSteps(request.load(), str(conditions.device), request.cache_dir, knn=conditions.knn,
                                     whole_distances=conditions.top_l is None), cells, conditions.context)
    return summary


def run_one_cell(request: DataRequest, cell: Cell, conditions: Conditions, options) -> dict:
    """A Ray task: one cell; returns its record. With a time or memory limit it runs in a worker
    process watched as in a local run; without, here, saving the start of a process per cell."""
    if options.time_limit is not None or options.memory_limit_mb is not None:
        (record,) = run_cells(request, request.load(), [cell], conditions, options)
        return record
    torch.set_num_threads(conditions.threads)
    shared = SharedSteps(request.load(), str(conditions.device), request.cache_dir, knn=conditions.knn,
                         whole_distances=conditions.top_l is None)
    return run_cell(cell, shared, conditions, *prepare(shared, [cell], conditions.context))


def _absolute(request: DataRequest) -> DataRequest:
    """The request with absolute paths: a task's working directory is not the driver's."""
    def absolute(path):
        return None if path is None else str(Path(path).expanduser().resolve())
    extraction = request.extraction
    if extraction is not None:
        extraction = replace(extraction, checkpoint=absolute(extraction.checkpoint))
    return replace(request, cache_dir=absolute(request.cache_dir), features_file=absolute(request.features_file),
                   data_root=absolute(request.data_root), extraction=extraction)


def _reason(error: Exception) -> str:
    """The first line of what went wrong: the task's own exception, or Ray's (worker died, ...)."""
    cause = getattr(error, "cause", None)
    error = cause if isinstance(cause, Exception) else error
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__

