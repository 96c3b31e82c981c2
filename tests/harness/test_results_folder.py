"""Nothing lost, nothing silently wrong in a results folder: concurrent runs, damaged caches, failed
cells run again, full disks, unusable folders and malformed records (issue 14, items 1-8 and 14)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.harness.store import ResultsStore, StoreError
from rerankbench.runtime.files import RebuiltCache

ROOT = Path(__file__).resolve().parents[2]
TWIN = ["--datasets", "market1501", "--scale", "0.02", "--dim", "32", "--no-progress"]  # one thread: conftest.py
TINY_ACP = {"layers": 1, "heads": 2, "slots": 2, "d_memory": 4, "d": 8, "epochs": 1, "epoch_size": 48}


def run(capfd, *args):
    code = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return code, out, err


def metrics(results: Path) -> dict:
    return {(r["method"], json.dumps(r["params"], sort_keys=True)): (r["status"], r["cmc1"], r["map"])
            for r in ResultsStore(results).results()}


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ------------------------------------------------------------------------ 1. concurrent runs
def test_two_runs_into_one_folder_at_once(tmp_path):
    """Two processes, different methods, one test set, one results folder, started together: both
    generate the twin and the shared steps at the same moment unless something stops them (at
    scale 0.3 the steps last long enough that without locks the runs collided 3 times in 3)."""
    commands = [[sys.executable, "-m", "rerankbench", "run", "--methods", methods, "--datasets", "market1501",
                 "--scale", "0.3", "--results", str(tmp_path), "--no-progress"]
                for methods in ("baseline,aqe", "k_reciprocal,sca")]
    processes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for command in commands]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    records = ResultsStore(tmp_path).results()
    assert sorted(r["method"] for r in records) == ["aqe", "baseline", "k_reciprocal", "sca"]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".tmp" in p.name]  # no temporary left behind
    # what the two made together is what one run makes alone
    alone = tmp_path / "alone"
    assert main(["run", "--methods", "baseline,aqe,k_reciprocal,sca", "--datasets", "market1501", "--scale", "0.3",
                 "--results", str(alone), "--no-progress"]) == 0
    assert metrics(tmp_path) == metrics(alone)


# ----------------------------------------------------------------- 2, 4, 5. damaged caches
def shared_folder(results: Path) -> Path:
    (folder,) = [path for path in (results / "cache" / "shared").iterdir() if path.is_dir()]  # beside it: its lock
    return folder


@pytest.mark.parametrize("damage", ["truncate", "empty", "garbage"])
def test_damaged_shared_steps_are_reported_and_rebuilt(capfd, tmp_path, damage):
    args = ["run", "--methods", "baseline,aqe,k_reciprocal", *TWIN, "--results", tmp_path]
    assert run(capfd, *args)[0] == 0
    first = metrics(tmp_path)
    folder = shared_folder(tmp_path)
    damaged = sorted(folder.glob("knn-*.npz")) + [folder / "distances.npy"]
    for path in damaged:
        data = path.read_bytes()
        path.write_bytes({"truncate": data[:len(data) // 2], "empty": b"", "garbage": os.urandom(len(data))}[damage])
    code, out, err = run(capfd, *args, "--force")
    assert code == 0, err
    for path in damaged:
        assert f"warning: {path}: " in err and "; rebuilding it" in err, err
    assert metrics(tmp_path) == first  # rebuilt, the same numbers


def test_a_damaged_acp_checkpoint_is_trained_afresh_and_the_baseline_runs(capfd, tmp_path):
    settings = [f"--set=acp.{key}={value}" for key, value in TINY_ACP.items()]
    args = ["run", "--methods", "baseline,acp", *TWIN, "--results", tmp_path, *settings]
    assert run(capfd, *args)[0] == 0
    first = metrics(tmp_path)
    (checkpoint,) = (tmp_path / "cache" / "acp").rglob("epoch-*.pt")
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    code, out, err = run(capfd, *args, "--force")
    assert code == 0, err
    assert f"warning: {checkpoint}: unreadable checkpoint" in err and "training afresh" in err
    assert metrics(tmp_path) == first  # the same seed trains the same model again


def twin_folder(cache: Path) -> Path:
    return next(p for p in (cache / "twins").iterdir() if p.is_dir())


@pytest.mark.parametrize("damage", ["ids file gone", "cameras gone", "manifest gone", "features truncated",
                                    "features empty", "manifest garbage"])
def test_a_twin_is_read_only_as_a_whole_set(tmp_path, damage):
    twin = registry.datasets()["market1501"]
    fresh = twin.load(scale=0.02, dim=32, cache_dir=None)
    twin.load(scale=0.02, dim=32, cache_dir=tmp_path)
    folder = twin_folder(tmp_path)
    if damage == "ids file gone":
        (folder / "query.ids.npy").unlink()
    elif damage == "cameras gone":
        (folder / "query.cams.npy").unlink()
        (folder / "gallery.cams.npy").unlink()
    elif damage == "manifest gone":  # a kill between the arrays and the manifest
        (folder / "gallery.manifest.json").unlink()
    elif damage == "features truncated":
        path = folder / "query.features.npy"
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "features empty":
        (folder / "gallery.features.npy").write_bytes(b"")
    else:
        (folder / "query.manifest.json").write_text("{not json")
    with pytest.warns(RebuiltCache) as caught:
        loaded = twin.load(scale=0.02, dim=32, cache_dir=tmp_path)
    assert all(str(folder) in str(w.message) for w in caught)
    assert loaded.query.cams is not None and loaded.fingerprint == fresh.fingerprint
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the third load finds it whole
        assert twin.load(scale=0.02, dim=32, cache_dir=tmp_path).fingerprint == fresh.fingerprint


# ------------------------------------------------------------------- 3. failed cells run again
def rewrite(results: Path, change) -> None:
    path = results / "records.jsonl"
    path.write_text("".join(json.dumps(change(json.loads(line))) + "\n" for line in path.read_text().splitlines()))


def failed(record: dict, **fields) -> dict:
    return {**record, "status": "failed", **dict.fromkeys(("cmc1", "cmc5", "cmc10", "map", "minp", "wall_s")), **fields}


def test_cells_failed_by_the_machine_run_again_and_the_exit_status_says_so(capfd, tmp_path):
    args = ["run", "--methods", "baseline,aqe", *TWIN, "--results", tmp_path]
    code, out, err = run(capfd, *args, "--memory-limit", 1)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("0 of 2 cells ok, 2 failed")
    assert {r["failure"] for r in ResultsStore(tmp_path).results()} == {"machine"}
    code, out, err = run(capfd, *args, "--skip-failed")  # today's behaviour on request
    assert code == 1 and len(ResultsStore(tmp_path).records()) == 2
    code, out, err = run(capfd, *args)  # the machine is fine now: both run again
    assert code == 0 and err.strip().splitlines()[-1] == "2 of 2 cells ok"
    assert [r["status"] for r in ResultsStore(tmp_path).records()] == ["failed", "failed", "ok", "ok"]


@pytest.mark.parametrize("failure, error, retried", [
    ("machine", "shared steps failed: BadZipFile", True),
    ("method", "RuntimeError: a bug", False),
    (None, "worker killed by SIGKILL (the kernel kills ...)", True),  # records from before the field
    (None, "out of time: over the 5 s limit", True),
    (None, "ValueError: a bug", False),
])
def test_which_failed_cells_run_again(capfd, tmp_path, failure, error, retried):
    args = ["run", "--methods", "baseline", *TWIN, "--results", tmp_path]
    assert run(capfd, *args)[0] == 0
    rewrite(tmp_path, lambda r: {key: value for key, value in failed(r, error=error, failure=failure).items()
                                 if value is not None or key != "failure"})
    code, out, err = run(capfd, *args)
    assert code == (0 if retried else 1)
    assert len(ResultsStore(tmp_path).records()) == (2 if retried else 1)


# ------------------------------------------------------------------------------- 6. full disk
def tmpfs(mount: Path, size: str):
    """A tmpfs of `size` mounted at `mount` while the fixture lasts (needs root, as CI has);
    the test is skipped where mounting is not allowed."""
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 kB disk."""
    yield from tmpfs(tmp_path / "disk", "64k")


def fill(mount: Path) -> None:
    """Fill the disk: no page is free (a file's last page still has room)."""
    with open(mount / "filler", "wb") as f:
        f.write(b"\0" * shutil.disk_usage(mount).free)


def test_a_full_disk_never_tears_a_record(tiny_disk):
    store = ResultsStore(tiny_disk / "results")
    store.append({"cell": "a", "pad": "x" * 100})
    fill(tiny_disk)
    size = store.path.stat().st_size
    with pytest.raises(StoreError, match=r"records.jsonl: the record could not be stored \(No space left on "
                                         r"device\); nothing of it was kept"):
        store.append({"cell": "b", "pad": "y" * 6000})  # the first ~3,900 bytes fill the file's page, then no room
    assert store.path.stat().st_size == size and store.records() == [{"cell": "a", "pad": "x" * 100}]
    (tiny_disk / "filler").unlink()
    store.append({"cell": "c"})  # room again: appends go on
    assert [r["cell"] for r in store.records()] == ["a", "c"]


def test_run_onto_a_full_disk_stops_with_one_line(capfd, tmp_path, tiny_disk):
    results = tiny_disk / "results"
    results.mkdir()
    (results / "cache").symlink_to(tmp_path)  # the caches elsewhere: only the records meet the full disk
    fill(tiny_disk)
    code, out, err = run(capfd, "run", "--methods", "baseline", *TWIN, "--results", results)
    assert code == 2
    assert "No space left on device" in one_error_line(err)
    assert ResultsStore(results).records() == []


# ------------------------------------------------------------------ 7. unusable results folders
def test_a_file_as_the_results_folder(capfd, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    for command in (["run", "--methods", "baseline", *TWIN], ["table"], ["report"]):
        code, out, err = run(capfd, *command, "--results", path)
        assert code == 2, (command, err)
        assert str(path) in one_error_line(err)


def test_records_jsonl_that_is_a_folder(capfd, tmp_path):
    (tmp_path / "records.jsonl").mkdir()
    for command in (["run", "--methods", "baseline", *TWIN], ["table"], ["table", "--records"], ["plot"], ["report"]):
        code, out, err = run(capfd, *command, "--results", tmp_path)
        assert code == 2, (command, err)
        assert "records.jsonl" in one_error_line(err)


@pytest.fixture
def read_only(tmp_path):
    """A disk for a results folder, which the test remounts read-only."""
    yield from tmpfs(tmp_path / "ro", "8m")


def test_a_read_only_results_folder(capfd, tmp_path, read_only):
    assert run(capfd, "run", "--methods", "baseline", *TWIN, "--results", read_only)[0] == 0
    subprocess.run(["mount", "-o", "remount,ro", str(read_only)], check=True)
    code, out, err = run(capfd, "run", "--methods", "aqe", *TWIN, "--results", read_only)
    assert code == 2 and "Read-only file system" in one_error_line(err)
    code, out, err = run(capfd, "report", "--results", read_only)
    assert code == 2 and "Read-only file system" in one_error_line(err)
    code, out, err = run(capfd, "table", "--results", read_only)  # reading is fine
    assert code == 0 and "Baseline" in out


# ------------------------------------------------------------------------ 8. malformed records
def test_readers_skip_malformed_records_naming_file_and_line(capfd, tmp_path):
    sweep = ["sweep", "--methods", "baseline,aqe", "--param", "k1", "--values", "2,4", *TWIN, "--results", tmp_path]
    assert run(capfd, *sweep)[0] == 0
    good = ResultsStore(tmp_path).records()[0]
    bad = [{key: value for key, value in good.items() if key != "method"}, {**good, "status": None},
           {**good, "dataset": None}, {**good, "params": "k=3"}, {**good, "map": None}, {**good, "cmc1": "high"},
           {**good, "map": float("nan")}, [good], "a string", 42, {**good, "dataset_info": []}]
    with open(tmp_path / "records.jsonl", "a") as f:
        f.writelines(json.dumps(record) + "\n" for record in bad)
    expected = {f"{tmp_path / 'records.jsonl'}:{line}: skipped a malformed record"
                for line in range(4, 4 + len(bad))}  # after the sweep's three records
    for command in (["table"], ["table", "--records"], ["table", "--paper", "--format", "latex"], ["report"],
                    ["plot", "--output", tmp_path / "figures"], ["export", "--output", tmp_path / "exported"], sweep):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code, out, err = run(capfd, *(command if command is sweep else [*command, "--results", tmp_path]))
        assert code == 0, (command, err)
        assert {str(w.message).partition(" (")[0] for w in caught} == expected, command
    # at the terminal: one line each
    done = subprocess.run([sys.executable, "-m", "rerankbench", "table", "--results", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert len(lines) == len(bad), done.stderr
    for line, number in zip(lines, range(4, 4 + len(bad))):
        assert line.startswith(f"warning: {tmp_path / 'records.jsonl'}:{number}: skipped a malformed record ("), line


# ------------------------------------------------------------------ 14. threads name the cell
def test_another_thread_count_is_another_cell(capfd, tmp_path):
    args = ["run", "--methods", "baseline", *TWIN, "--results", tmp_path]
    assert run(capfd, *args, "--threads", 2)[0] == 0
    code, out, err = run(capfd, *args, "--threads", 1)
    assert code == 0 and "skipped" not in out  # timings differ: not the same cell
    assert [r["threads"] for r in ResultsStore(tmp_path).records()] == [2, 1]
    assert "1 cell(s) already in" in run(capfd, *args, "--threads", 1)[1]
    # and the CPU kernels torch ran ("AVX512", "AVX2", ...), which float results can depend on
    assert {r["cpu_capability"] for r in ResultsStore(tmp_path).records()} == {torch.backends.cpu.get_cpu_capability()}


@pytest.mark.parametrize("option, value", [("--trials", 0), ("--threads", 0), ("--time-limit", -1),
                                           ("--memory-limit", 0), ("--dim", 0)])
def test_out_of_range_run_options(capfd, tmp_path, option, value):
    code, out, err = run(capfd, "run", "--methods", "baseline", *TWIN, "--results", tmp_path, option, value)
    assert code == 2
    assert option.strip("-").replace("-", "_").split("_")[0] in one_error_line(err)
    assert not (tmp_path / "records.jsonl").exists()
