"""Writing a benchmark report: its figures as JSON and its page as Markdown, side by side in
results/benchmarks/, and the line every page gives about the machine it was measured on."""
from __future__ import annotations

import json
from pathlib import Path


def machine_line(figures: dict) -> str:
    kernels = f" ({figures['cpu_capability']} kernels)" if figures.get("cpu_capability") else ""
    return (f"Machine: {figures['device']}{kernels}, {figures['threads']} threads; {figures['date']}; "
            f"commit {figures['git_commit']}")


def write_report(folder: str | Path, name: str, figures: dict, lines: list[str]) -> Path:
    """<folder>/<name>.json (the figures) and <folder>/<name>.md (the page); returns the page."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(figures, indent=2, default=float))
    page = folder / f"{name}.md"
    page.write_text("\n".join(lines))
    return page
