"""The device the work runs on: "cpu", "cuda" or "auto", and how a record names it."""
from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

import torch


def resolve_device(name: str) -> torch.device:
    """"cpu", "cuda" or "auto" (cuda when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    if not name.startswith(("cpu", "cuda")):
        raise ValueError(f"unknown device {name!r}; use cpu, cuda or auto")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_model()}"


@lru_cache(maxsize=None)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
