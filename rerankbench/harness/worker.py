"""A worker process runs the cells of one feature set, so that a cell that runs out of time
or memory, or crashes the interpreter, costs that cell alone: the harness kills the worker,
writes a failed record and starts a new worker for the cells that remain.

Messages, over a multiprocessing pipe: harness -> worker ("cell", Cell) or ("stop",);
worker -> harness ("ready", shared summary), ("record", dict) or ("fatal", message).
"""
from __future__ import annotations

import ctypes
import signal
import sys
import traceback

import torch

from ..engine.shared import SharedSteps
from ..runtime.messages import one_line_warnings
from .cell import Cell, Conditions, prepare, run_cell
from .loading import DataRequest


def serve(connection, request: DataRequest, cells: list[Cell], conditions: Conditions, show_progress: bool) -> None:
    _exit_with_parent()
    one_line_warnings()
    torch.set_num_threads(conditions.threads)
    try:
        fs = request.load()
        shared = SharedSteps(fs, str(conditions.device), request.cache_dir, show_progress, knn=conditions.knn,
                             whole_distances=conditions.top_l is None)
        summary, failures = prepare(shared, cells, conditions.context)
    except Exception as error:
        connection.send(("fatal", f"{type(error).__name__}: {error}\n{traceback.format_exc()}"))
        return
    connection.send(("ready", summary))
    while True:
        message = connection.recv()
        if message[0] == "stop":
            return
        connection.send(("record", run_cell(message[1], shared, conditions, summary, failures)))


def _exit_with_parent() -> None:
    """Ask Linux to kill this worker when the harness dies (Ctrl-C, kill), so that no orphan
    keeps computing; elsewhere the worker ends at its next message instead."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
