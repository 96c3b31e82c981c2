"""What a result was measured with: versions, git commit, device, threads, host, date."""
from __future__ import annotations

import datetime
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

from ..runtime.device import device_name

PACKAGES = ("rerankbench", "numpy", "torch", "scipy", "pillow", "h5py", "faiss-cpu", "faiss-gpu")


@lru_cache(maxsize=None)
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found


@lru_cache(maxsize=None)
def git_commit() -> str | None:
    """HEAD of the checkout the package runs from, with "-dirty" for uncommitted changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def describe(device: torch.device, threads: int | None = None) -> dict:
    """The device, thread count (default: this process's torch threads), the CPU kernels torch
    dispatches to ("AVX512", "AVX2", ...: float results, ACP's training above all, can differ
    between them), host, versions, commit and date."""
    return {"device": device_name(device), "threads": threads or torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "host": platform.node(),
            "versions": versions(), "git_commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
