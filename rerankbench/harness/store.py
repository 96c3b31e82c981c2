"""The results store: one JSON object per line in `<results>/records.jsonl`.

Each record is written with a single O_APPEND write and fsynced, so a crash or Ctrl-C
keeps every finished record whole; a torn last line (a write cut off by power loss) is
skipped when reading. A cell -- (dataset identity, method, parameters, trial, device kind)
-- that has a record is finished, and a re-run skips it unless forced.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

RECORDS = "records.jsonl"


class ResultsStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / RECORDS

    def append(self, record: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, sort_keys=True, default=_plain) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn last line: end it first
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    warnings.warn(f"{self.path}:{number}: skipped a torn record")
        return out

    def finished(self) -> set[str]:
        return {record["cell"] for record in self.records() if "cell" in record}


def cell_key(dataset_fingerprint: str, dataset: str, method: str, params: dict, trial: int, device: str) -> str:
    """The identity of one cell of the benchmark, as stored in its record."""
    return json.dumps([dataset, dataset_fingerprint, method, params, trial, device.split(":")[0]], sort_keys=True,
                      default=_plain)


def _plain(value):
    """numpy scalars and arrays as plain JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a record")
