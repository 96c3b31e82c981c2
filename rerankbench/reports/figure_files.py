"""Figures as files: matplotlib without a display (Agg), and each figure written as PNG and PDF
without a creation date, so that the same records give the same files byte for byte."""
from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: no plotting at import time)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(fig, folder: str | Path, stem: str) -> list[Path]:
    """Write `fig` as `<stem>.png` and `<stem>.pdf` into `folder`, close it; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{suffix}" for suffix in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    pyplot().close(fig)
    return paths
