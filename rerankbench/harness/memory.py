"""Peak memory of the work: resident set size (RSS) and GPU memory.

Linux keeps the process's peak RSS (VmHWM in /proc/self/status); writing "5" to
/proc/self/clear_refs resets it, so each cell's peak is measured on its own. Where that is
not allowed, the peak since the process started (getrusage) is reported instead.
"""
from __future__ import annotations

import resource
from pathlib import Path

import torch


def reset_peak_rss() -> bool:
    """Reset the process's peak RSS to its current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB (since the last reset where that worked)."""
    value = _status_field("self", "VmHWM")
    if value is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return value


def rss_mb(pid: int | str = "self") -> float | None:
    """Current RSS of a process in MB, None if it is gone."""
    return _status_field(pid, "VmRSS")


def reset_peak_gpu(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gpu_mb(device: torch.device) -> float | None:
    """torch.cuda.max_memory_allocated in MB; None on CPU."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _status_field(pid, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None
