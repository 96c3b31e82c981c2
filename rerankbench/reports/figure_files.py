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


def dress(axis, xlabel: str, ylabel: str, title: str, legend_size: int = 8, grid: str = "both") -> None:
    """An axis's labels, title, light grid and legend, as every figure of the reports has them."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(True, axis=grid, alpha=0.3)
    axis.legend(fontsize=legend_size)


def save(fig, folder: str | Path, stem: str, title: str | None = None) -> list[Path]:
    """Write `fig` (with its `title` over the axes, laid out tight) as `<stem>.png` and `<stem>.pdf`
    into `folder`, close it; returns the paths."""
    if title is not None:
        fig.suptitle(title, fontsize=11)
        fig.tight_layout()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.{suffix}" for suffix in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    pyplot().close(fig)
    return paths
