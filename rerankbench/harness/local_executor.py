"""The local executor: the cells of one feature set run in a worker process (worker.py) after the
shared steps, watched by this process. A cell over the time limit, a worker over the memory
limit or a worker that dies becomes a failed record, and a fresh worker takes the cells that
remain. The Ray executor (ray_executor.py) runs a cell's task through it when limits are set.
"""
from __future__ import annotations

import multiprocessing
import signal
import time

from .cell import failed_record
from .memory import rss_mb
from .store import MACHINE
from .worker import serve


def run_cells(request, fs, cells, conditions, options):
    """Yield one record per cell, restarting the worker after a cell that killed it."""
    context = multiprocessing.get_context("spawn")
    pending = list(cells)
    while pending:
        ours, theirs = context.Pipe()
        worker = context.Process(target=serve, daemon=True, args=(
            theirs, request, pending, conditions, options.show_progress))
        worker.start()
        try:
            kind, payload = _wait(worker, ours, None, options.memory_limit_mb)  # start-up: no time limit
            if kind != "ready":
                for cell in pending:
                    yield failed_record(cell, fs, conditions, f"shared steps failed: {payload}", MACHINE)
                return
            summary = payload
            while pending:
                ours.send(("cell", pending[0]))
                kind, payload = _wait(worker, ours, options.time_limit, options.memory_limit_mb)
                cell = pending.pop(0)
                if kind == "record":
                    yield payload
                    continue
                yield failed_record(cell, fs, conditions, payload, MACHINE, shared=summary)
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
