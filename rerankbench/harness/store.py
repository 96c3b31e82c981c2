"""The results store: one JSON object per line in `<results>/records.jsonl`.

Appending: each record is one write under an exclusive lock on the file (fcntl.flock), then
fsynced, so that concurrent runs into one folder interleave whole records. A write that the
disk cuts short (full, read-only, gone) is cut back off the file and stops the run with a
one-line StoreError: a record is kept whole or not at all. A torn last line (power lost
mid-write) is ended before the next record is appended.

Reading: `records()` gives every JSON line that parses; `results()` only well-formed result
records, skipping a torn line, a line that is not an object, or a record missing a field the
readers use (or holding a metric that is not a number), each with a warning naming file:line.
Tables, reports, plots, export and run's resume read `results()`.

Per-query results: a record whose `per_query` is a PerQuery has it written to its own file
first (per_query_files.py), and then names that file.

Identity: a cell -- test set, fingerprint of its features, method, parameters, trial, device
kind, thread count, context, kNN backend and top L -- is named by `cell_key`, derived from the
record's own fields, so records written before the thread count, the context or the kNN backend
was part of it still name their cell (a record without `context` ran in the context "all", one
without `knn` on the exact graph, one without `top_l` on the whole gallery). A cell whose
newest record is ok is finished. One that failed for the machine or the cache (the shared
steps, a killed worker, out of time or memory, a lost Ray task: `failure` "machine") is run
again by the next run; one that failed in the method itself (`failure` "method": it would fail
again) is not. With `skip_failed`, every failed cell counts as finished.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import warnings
from pathlib import Path

from ..engine.contexts import ALL, CONTEXTS
from ..evaluation.per_query import PerQuery
from ..runtime.files import temporary_name
from . import per_query_files

RECORDS = "records.jsonl"
MACHINE, METHOD = "machine", "method"  # why a cell failed: retried on the next run, or not
# how records written before the `failure` field said a machine failure
MACHINE_ERRORS = ("shared steps failed", "worker killed", "worker exited", "out of time", "out of memory",
                  "ray task failed")
FIELDS = {"dataset": str, "method": str, "params": dict, "status": str}  # every result record has them
OPTIONAL = {"dataset_info": dict, "overrides": (dict, type(None)), "shared": dict, "trial": int, "context": str,
            "knn": dict}
NUMBERS = ("cmc1", "cmc5", "map", "minp", "wall_s", "eval_s", "peak_rss_mb")  # what the readers use of an ok record


class StoreError(ValueError):
    """The results folder cannot take a record; the message names the path and the reason."""


class MalformedRecord(UserWarning):
    """A line of records.jsonl that is no result record, skipped by the readers."""


class ResultsStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / RECORDS

    def check_writable(self) -> None:
        """Stop before any work, with one line, if records cannot be appended here (nothing is written)."""
        if self.folder.exists() and not self.folder.is_dir():
            raise StoreError(f"{self.folder}: the results folder is a file, not a folder")
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path}: is a folder, not a records file")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND))
            else:  # a file of our own, made and removed, tells whether the folder takes one
                probe = temporary_name(self.path)
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                probe.unlink()
        except OSError as error:
            raise StoreError(f"{self.path}: cannot write records ({error.strerror or error})") from None

    def append(self, record: dict) -> None:
        """Append one record (its per-query results, a PerQuery under `per_query`, written to their file first)."""
        if isinstance(record.get("per_query"), PerQuery):
            try:
                record = {**record, "per_query": per_query_files.write(self.folder, record["per_query"])}
            except OSError as error:
                raise StoreError(f"{self.folder / per_query_files.FOLDER}: cannot write the per-query results "
                                 f"({error.strerror or error}); the record was not stored") from None
        line = (json.dumps(record, sort_keys=True, default=_plain) + "\n").encode()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot write records ({error.strerror or error})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # concurrent runs append one whole record at a time
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line: end it first
                line = b"\n" + line
            try:
                written = 0
                while written < len(line):
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            except OSError as error:
                os.ftruncate(fd, size)  # no half record left behind
                raise StoreError(f"{self.path}: the record could not be stored ({error.strerror or error}); "
                                 "nothing of it was kept") from None
        finally:
            os.close(fd)

    def records(self) -> list[dict]:
        """Every line that parses as JSON (a torn line is skipped with a warning)."""
        return [record for _, record in self._lines()]

    def results(self) -> list[dict]:
        """The well-formed result records; every other line is skipped with a warning naming file:line."""
        out = []
        for number, record in self._lines():
            problem = malformed(record)
            if problem:
                warnings.warn(f"{self.path}:{number}: skipped a malformed record ({problem})", MalformedRecord,
                              stacklevel=2)
            else:
                out.append(record)
        return out

    def finished(self, skip_failed: bool = False) -> set[str]:
        """The cells a run skips: those whose newest record is ok, or failed in the method itself
        (or failed at all, with `skip_failed`)."""
        newest = {cell_key_of(record): record for record in self.results()}
        return {key for key, record in newest.items()
                if record["status"] == "ok" or skip_failed or failure_of(record) == METHOD}

    def _lines(self) -> list[tuple[int, object]]:
        if not self.path.exists():
            return []
        try:
            with open(self.path, encoding="utf-8") as lines:
                fcntl.flock(lines, fcntl.LOCK_SH)  # no half-appended record is read
                text = lines.readlines()
        except (OSError, UnicodeDecodeError) as error:
            raise StoreError(f"{self.path}: cannot read records ({getattr(error, 'strerror', None) or error})") from None
        out = []
        for number, line in enumerate(text, 1):
            if not line.strip():
                continue
            try:
                out.append((number, json.loads(line)))
            except json.JSONDecodeError:
                warnings.warn(f"{self.path}:{number}: skipped a torn record", MalformedRecord, stacklevel=3)
        return out


def malformed(record) -> str | None:
    """What makes `record` no result record, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    for field, kind in FIELDS.items():
        if not isinstance(record.get(field), kind):
            return f"{field} is {record.get(field)!r}" if field in record else f"no {field}"
    if record["status"] not in ("ok", "failed"):
        return f"status is {record['status']!r}"
    for field, kind in OPTIONAL.items():
        value = record.get(field)
        if field in record and (not isinstance(value, kind) or isinstance(value, bool)):
            return f"{field} is {value!r}"
    if "context" in record and record["context"] not in CONTEXTS:
        return f"context is {record['context']!r}"
    if record.get("per_query") is not None:
        problem = per_query_files.malformed_reference(record["per_query"])
        if problem:
            return problem
    if record["status"] == "ok":
        for field in NUMBERS:
            value = record.get(field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                return f"{field} is {value!r}, not a number" if field in record else f"no {field}"
    return None


def failure_of(record: dict) -> str | None:
    """MACHINE or METHOD for a failed record (read from its error where it predates the field)."""
    if record.get("status") != "failed":
        return None
    if record.get("failure") in (MACHINE, METHOD):
        return record["failure"]
    return MACHINE if str(record.get("error") or "").startswith(MACHINE_ERRORS) else METHOD


def cell_key(dataset_fingerprint: str, dataset: str, method: str, params: dict, trial: int, device: str,
             threads: int | None, context: str = ALL, knn: dict | None = None, top_l: int | None = None,
             train_fit: str | None = None) -> str:
    """The identity of one cell of the benchmark, as stored in its record; the context is named
    only when it is not "all", the kNN backend (its record's `knn`) only when it is not exact,
    top_l only when set and `train_fit` (a learned method's train split from an adopted train fit,
    twins/fitted.py) only when there is one, so that a cell run before these existed keeps its key."""
    fields = [dataset, dataset_fingerprint, method, params, trial, device.split(":")[0], threads]
    if train_fit is not None:
        fields.append({"train_fit": train_fit})
    if context != ALL:
        fields.append(context)
    if knn is not None and knn.get("backend", "exact") != "exact":
        fields.append({"knn": knn})
    if top_l is not None:
        fields.append({"top_l": top_l})
    return json.dumps(fields, sort_keys=True, default=_plain)


def cell_key_of(record: dict) -> str:
    """The cell a record belongs to, from its own fields (its stored `cell` where they are missing)."""
    fingerprint = (record.get("dataset_info") or {}).get("fingerprint")
    if fingerprint is None or "device" not in record:
        return str(record.get("cell", id(record)))
    return cell_key(fingerprint, record["dataset"], record["method"], record["params"], record.get("trial", 0),
                    record["device"], record.get("threads"), context_of(record), record.get("knn"), record.get("top_l"),
                    record.get("train_fit"))


def context_of(record: dict) -> str:
    """The context a record was run in: its `context`, or "all" for a record written before the field."""
    return record.get("context", ALL)


def _plain(value):
    """numpy scalars and arrays as plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a record")
