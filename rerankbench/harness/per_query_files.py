"""Per-query results beside records.jsonl: one compressed .npz per record (evaluation/per_query.py)
under `<results>/per_query/`, named by the SHA-1 of its bytes.

The record names its file by a path relative to the results folder, with the file's SHA-1 and
size (`reference`), so that a missing, cut or damaged file is detected when read (`read`:
PerQueryUnavailable, one line naming the file). The name is the content's hash: two runs writing
into one folder at once never write one name with different contents, a record set can be
copied with its files (`copy_files`, for export), and a file is written under a temporary name
and renamed into place (runtime.files.write_atomic) before the record that names it is appended.
Records written before per-query results were kept have no `per_query` field.
"""
from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

from ..evaluation.per_query import PerQuery
from ..runtime.files import DamagedFile, write_atomic

FOLDER = "per_query"
NAME = re.compile(rf"{FOLDER}/[0-9a-f]{{40}}\.npz")  # what a record's `per_query.file` may be


class PerQueryUnavailable(ValueError):
    """A record's per-query results cannot be read: none kept, or the file is missing or damaged."""


def write(results: str | Path, scores: PerQuery) -> dict:
    """Write `scores` into `results`/per_query/ and return the record's reference to them."""
    data = scores.to_bytes()
    digest = hashlib.sha1(data).hexdigest()
    relative = f"{FOLDER}/{digest}.npz"
    write_atomic(Path(results) / relative, lambda tmp: tmp.write_bytes(data))
    return {"file": relative, "sha1": digest, "bytes": len(data), "queries": len(scores)}


def malformed_reference(reference) -> str | None:
    """What makes a record's `per_query` field no reference to a per-query file, or None."""
    if not (isinstance(reference, dict) and isinstance(reference.get("file"), str) and NAME.fullmatch(reference["file"])
            and isinstance(reference.get("sha1"), str) and isinstance(reference.get("bytes"), int)):
        return f"per_query is {reference!r}"
    return None


def read(results: str | Path, record: dict) -> PerQuery:
    """The per-query results a record names, checked against its SHA-1 and size."""
    path, data = _checked_bytes(results, record)
    try:
        return PerQuery.from_bytes(data, str(path))
    except DamagedFile as error:
        raise PerQueryUnavailable(str(error)) from None


def copy_files(records: list[dict], source: str | Path, target: str | Path) -> list[Path]:
    """Copy the per-query files the records name from one results folder to another, checked on
    the way; a record whose file is missing or damaged is exported without it, with a warning."""
    copied = []
    for record in records:
        if record.get("per_query") is None:
            continue
        try:
            _, data = _checked_bytes(source, record)
        except PerQueryUnavailable as error:
            warnings.warn(f"{error}; exported without its per-query results", UserWarning, stacklevel=2)
            record.pop("per_query")
            continue
        copied.append(write_atomic(Path(target) / record["per_query"]["file"], lambda tmp: tmp.write_bytes(data)))
    return copied


def _checked_bytes(results: str | Path, record: dict) -> tuple[Path, bytes]:
    """The bytes of the file a record names, read whole and checked against its SHA-1 and size."""
    reference = record.get("per_query")
    if reference is None:
        raise PerQueryUnavailable(f"{record.get('method')} on {record.get('dataset')}: the record keeps no per-query "
                                  "results (written before they were kept, or failed)")
    path = Path(results) / reference["file"]
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PerQueryUnavailable(f"{path}: the per-query results of {record.get('method')} on "
                                  f"{record.get('dataset')} cannot be read ({error.strerror or error})") from None
    digest = hashlib.sha1(data).hexdigest()
    if len(data) != reference.get("bytes") or digest != reference.get("sha1"):
        raise PerQueryUnavailable(f"{path}: damaged ({len(data):,} bytes, SHA-1 {digest[:12]}; the record says "
                                  f"{reference.get('bytes'):,} bytes, {str(reference.get('sha1'))[:12]})")
    return path, data
