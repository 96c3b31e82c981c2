"""The `list` command's text: the registered methods with their default parameters, and the test
sets with their twins' sizes, protocols and default k (N/C)."""
from __future__ import annotations

from ..engine.registry import datasets, methods


def listing(scale: float = 1.0) -> str:
    lines = ["methods:"]
    for name, cls in methods().items():
        defaults = ", ".join(f"{k}={v}" for k, v in cls.defaults.items()) or "no parameters"
        lines.append(f"  {name:<24} {defaults}")
    lines.append(f"datasets (twin sizes at scale {scale:g}; N/C = the default k):")
    for name, dataset in datasets().items():
        q, g = dataset.query.scaled(scale), dataset.gallery.scaled(scale)
        lines.append(f"  {name:<18} {dataset.title:<20} queries {q.images:>6}  gallery {g.images:>6}  "
                     f"protocol {dataset.protocol:<9} k default {dataset.default_k}")
    lines.append("families: veriwild, vehicleid (their small/medium/large test sets); 'all'")
    return "\n".join(lines)
