"""Soak test of a results folder: small cells run over and over for a bounded time while runs and
their worker processes are killed at random, sometimes two runs at once into the same folder.

After every round it checks that records.jsonl parses line by line and that no ok record seen
before has gone; at the end one more run, left alone, must finish every cell. Run it as

    python tests/soak.py [--minutes 5] [--results DIR] [--seed 0]

(tox -e soak). It prints a line per round and exits 1 on the first broken promise. Not part of
the pytest suite: it takes minutes, and what it checks the suite checks case by case
(tests/harness/test_results_folder.py).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["baseline", "aqe", "alpha_qe", "k_reciprocal", "sca", "ecn", "gnn"]
CELLS = ["--datasets", "market1501,vehicleid_small", "--scale", "0.02", "--dim", "32", "--trials", "2",
         "--no-progress"]


def command(results: Path, methods: list[str], force: bool = False) -> list[str]:
    return [sys.executable, "-m", "rerankbench", "run", "--methods", ",".join(methods), *CELLS,
            "--results", str(results), *(["--force"] if force else [])]


def children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux: /proc/<pid>/task/*/children)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def records(results: Path) -> list[dict]:
    """Every line of records.jsonl, which must all parse as JSON objects."""
    path = results / "records.jsonl"
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise AssertionError(f"{path}:{number} does not parse ({error}): {line[:120]!r}") from None
        if not isinstance(record, dict):
            raise AssertionError(f"{path}:{number} is not a JSON object")
        out.append(record)
    return out


def identity(record: dict) -> str:
    return json.dumps([record["cell"], record.get("date"), record.get("wall_s")])


def round_(results: Path, rng: random.Random) -> str:
    """One round: one or two runs of a random choice of methods (half of them forced to run cells
    that have records again), each left alone, killed, or with its worker killed, after a random
    wait. Returns what was done."""
    runs = []
    for _ in range(rng.choice([1, 1, 2])):
        methods = rng.sample(METHODS, rng.randint(2, len(METHODS)))
        force = rng.random() < 0.5  # cells with records run again: work stays in flight to be killed
        runs.append((subprocess.Popen(command(results, methods, force), cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL), rng.choice(["leave", "kill run", "kill worker"])))
    time.sleep(rng.uniform(2.0, 9.0))
    for process, fate in runs:
        if fate == "kill run":
            kill(process.pid)  # the worker follows its parent (PR_SET_PDEATHSIG)
        elif fate == "kill worker":
            for child in children(process.pid):
                kill(child)
    for process, _ in runs:
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            kill(process.pid)
            process.wait()
    return ", ".join(f"{fate} (exit {process.returncode})" for process, fate in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--results", help="the results folder (default: a new temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    results = Path(args.results or tempfile.mkdtemp(prefix="rerankbench-soak-"))
    rng = random.Random(args.seed)
    seen: set[str] = set()
    deadline = time.monotonic() + 60 * args.minutes
    number = 0
    while time.monotonic() < deadline:
        number += 1
        done = round_(results, rng)
        now = records(results)
        ok = {identity(r) for r in now if r.get("status") == "ok"}
        lost = seen - ok
        if lost:
            print(f"round {number}: {len(lost)} finished record(s) lost: {sorted(lost)[:3]}")
            return 1
        seen |= ok
        failed = sum(r.get("status") == "failed" for r in now)
        print(f"round {number}: {done}; {len(now)} records, {len(ok)} ok, {failed} failed", flush=True)
    final = subprocess.run(command(results, METHODS), cwd=ROOT, capture_output=True, text=True, timeout=900)
    newest = {}
    for record in records(results):
        newest[record["cell"]] = record
    missing = len(METHODS) * 2 * 2 - sum(r["status"] == "ok" for r in newest.values())
    print(f"final run: exit {final.returncode}; {len(newest)} cells, {missing} without an ok record; "
          f"{len(seen)} ok records kept over {number} rounds in {results}")
    if final.returncode != 0 or missing:
        print(final.stdout[-2000:], final.stderr[-2000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
