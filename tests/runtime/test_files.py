"""Atomic writes, locks between processes, and damaged cache files named and refused."""
from __future__ import annotations

import multiprocessing
import os
import re
import time
import zipfile

import numpy as np
import pytest

from rerankbench.runtime.files import (DamagedFile, RebuiltCache, discard, folder_lock, load_npy, load_npz, locked,
                                       temporary_name, write_atomic)


def test_write_atomic_leaves_the_file_whole_or_as_it_was(tmp_path):
    path = tmp_path / "sub" / "a.npy"
    write_atomic(path, lambda tmp: np.save(tmp, np.arange(4)))
    assert np.array_equal(np.load(path), np.arange(4))

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        write_atomic(path, broken)
    assert np.array_equal(np.load(path), np.arange(4))  # the old file, untouched
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.npy"]  # no temporary left behind


def test_temporary_names_are_hidden_unique_and_keep_the_suffix(tmp_path):
    names = {temporary_name(tmp_path / "knn-20.npz") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.name.startswith(".knn-20.npz.") and name.suffix == ".npz" and str(os.getpid()) in name.name
    assert not list(tmp_path.glob("knn-*.npz"))


def _hold(path, seconds, log):
    with locked(path):
        log.put(("in", time.monotonic()))
        time.sleep(seconds)
        log.put(("out", time.monotonic()))


def test_the_lock_lets_one_process_in_at_a_time(tmp_path):
    context = multiprocessing.get_context("spawn")
    log = context.Queue()
    workers = [context.Process(target=_hold, args=(tmp_path / "x.lock", 0.5, log)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    events = sorted([log.get() for _ in range(6)], key=lambda event: event[1])
    assert [kind for kind, _ in events] == ["in", "out"] * 3  # never two inside at once


def test_folder_lock_sits_beside_the_folder(tmp_path):
    with folder_lock(tmp_path / "twins" / "market"):
        assert (tmp_path / "twins" / "market.lock").exists()
    assert not (tmp_path / "twins" / "market").exists()


@pytest.mark.parametrize("damage, problem", [
    (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p: p.write_bytes(p.read_bytes()[:200]), "unreadable"),
    (lambda p: p.write_bytes(b"not an array at all" * 20), "unreadable"),
])
def test_load_npy_names_the_damage(tmp_path, damage, problem):
    path = tmp_path / "a.npy"
    np.save(path, np.ones((10, 8), np.float32))
    damage(path)
    for mmap in (False, True):
        with pytest.raises(DamagedFile, match=f"^{re.escape(str(path))}: {re.escape(problem)}"):
            load_npy(path, (10, 8), np.float32, mmap=mmap)


def test_load_npy_checks_shape_and_dtype(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.ones((10, 8), np.float32))
    assert load_npy(path, (10, None), np.float32).shape == (10, 8)
    with pytest.raises(DamagedFile, match=r"shape \(10, 8\), expected 11x\?"):
        load_npy(path, (11, None))
    with pytest.raises(DamagedFile, match="is float32, expected float64"):
        load_npy(path, None, np.float64)


def test_load_npz_reads_every_member_whole(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, indices=np.arange(100).reshape(10, 10), farthest=np.ones(10))
    assert set(load_npz(path, {"indices": (10, 10), "farthest": (10,)})) == {"indices", "farthest"}
    with pytest.raises(DamagedFile, match="no distances in it"):
        load_npz(path, {"distances": None})
    with zipfile.ZipFile(path) as archive:
        member = archive.infolist()[0]
    data = bytearray(path.read_bytes())
    data[member.header_offset + 200] ^= 0xFF  # a flipped byte inside the first array: zip's CRC finds it
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFile, match="unreadable"):
        load_npz(path, {"indices": (10, 10), "farthest": (10,)})


def test_discard_reports_in_one_line_and_removes(tmp_path):
    path = tmp_path / "knn-5.npz"
    path.write_bytes(b"x")
    with pytest.warns(RebuiltCache, match=rf"^{re.escape(str(path))}: unreadable \(boom\); rebuilding it$"):
        discard(path, DamagedFile(f"{path}: unreadable (boom)"))
    assert not path.exists()
