"""Every table and plot of a results folder, regenerated from its records in one go.

A record set is a folder holding `records.jsonl` (`results/` itself for local runs, or a
committed set such as `results/default_run/`). For each set this writes:

- `tables/table5.{md,tex,csv}`: Table V at default parameters, and `table5-paper.*` with the
  paper's numbers and our difference from them beside ours;
- `figures/<dataset>-<param>.{png,pdf}` for every parameter sweep in the set, with
  `<dataset>-<param>.md` showing the figure and the table of peak values under it;
- `tables/acp-ablation-<dataset>.md` (Table VII) and `tables/acp-<param>-<dataset>.md` (Tables
  VIII-X) for every ACP ablation and architecture sweep in the set;
- `figures/<dataset>-pareto.{png,pdf,md}`: accuracy against re-ranking time and peak RSS, every
  method and sweep point, with the Pareto front (pareto.py);
- `tables/contexts.md` and `figures/contexts.{png,pdf}` where methods ran in both contexts
  (context_comparison.py);
- `time_memory.md`: each method's time and peak RSS on each test set, and the shared steps;
- with `--html`, `report.html`: one self-contained page of all of it (html_page.py).

Nothing here is edited by hand; `export` copies chosen records, with their per-query files, into a new set.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..harness.frame import per_query_table, records_frame
from ..harness.per_query_files import copy_files
from ..harness.store import RECORDS, ResultsStore
from .ablation_tables import ablation_tables
from .context_comparison import STEM as CONTEXTS_STEM
from .context_comparison import context_sets, context_table, draw_contexts
from .html_page import PAGE, html_page
from .paper_table import METRIC_TITLES, build_table
from .pareto import COSTS, draw_pareto, front_table, pareto_figures
from .plots import draw, peak_table, sweep_figures
from .table_formats import FORMATS, SUFFIXES
from .tables import latest
from .time_memory import time_memory_report


def record_sets(results: str | Path) -> list[Path]:
    """The folders under `results` (itself included) that hold records, the cache left out."""
    results = Path(results)
    return sorted(path.parent for path in results.rglob(RECORDS) if "cache" not in path.relative_to(results).parts)


def regenerate(results: str | Path, html: bool = False) -> list[Path]:
    """Regenerate every record set under `results` (with `html`, each one's report.html too);
    returns the files written."""
    written = []
    for folder in record_sets(results):
        written += regenerate_set(folder, html)
    return written


def regenerate_set(folder: str | Path, html: bool = False) -> list[Path]:
    folder = Path(folder)
    records = ResultsStore(folder).results()
    written = []
    commands = _commands(records)
    try:
        tables = {"table5": build_table(records), "table5-paper": build_table(records, with_paper=True)}
    except ValueError:  # a set of sweeps alone has no default-parameter records
        tables = {}
    for stem, table in tables.items():
        for format, render in FORMATS.items():
            text = render(table)
            suffix = SUFFIXES[format]
            if suffix == "md":
                text += commands
            written.append(_write(folder / "tables" / f"{stem}.{suffix}", text))
    for stem, text in ablation_tables(records).items():
        written.append(_write(folder / "tables" / f"{stem}.md", text + commands))
    for figure in sweep_figures(records):
        paths = draw(figure, folder / "figures")
        peaks = [f"({chr(97 + n)}) {METRIC_TITLES[m]} (%) wrt. {figure.param}\n\n{peak_table(figure, m)}"
                 for n, m in enumerate(figure.metrics)]
        text = "\n\n".join([f"# Performance versus {figure.param} on {figure.label}",
                            f"![{figure.stem}]({paths[0].name}) ([PDF]({paths[1].name}))", *peaks]) + "\n" + _commands(
            [record for curve in figure.curves for record in curve.points.values()] + [figure.baseline or {}])
        written += [*paths, _write(folder / "figures" / f"{figure.stem}.md", text)]
    for figure in pareto_figures(records):
        paths = draw_pareto(figure, folder / "figures")
        fronts = [f"Pareto front, {title}:\n\n{front_table(figure, cost)}" for cost, title in COSTS.items()]
        text = "\n\n".join([f"# Accuracy against cost on {figure.label}",
                             f"![{figure.stem}]({paths[0].name}) ([PDF]({paths[1].name}))", *fronts]) + "\n" + commands
        written += [*paths, _write(folder / "figures" / f"{figure.stem}.md", text)]
    sets = context_sets(records)
    if sets:
        written += draw_contexts(sets, folder / "figures")
        written.append(_write(folder / "tables" / f"{CONTEXTS_STEM}.md", context_table(sets, folder) + commands))
    if records:
        written.append(_write(folder / "time_memory.md", time_memory_report(records) + commands))
    if html and records:
        written.append(_write(folder / PAGE, html_page(folder, records, [p for p in written if p.suffix == ".png"])))
    return written


def export(records: list[dict], folder: str | Path, datasets: list[str] | None = None, methods: list[str] | None = None,
           scale: float | None = None, source: str | Path | None = None) -> Path:
    """Copy the newest record of each chosen cell into `folder/records.jsonl` (a new record set),
    with the per-query files they name from the results folder `source` (a record whose file is
    missing or damaged there, or that names one without a `source`, goes without it, with a warning)."""
    chosen = latest([record for record in records
                     if (datasets is None or record["dataset"] in datasets) and (methods is None or record["method"] in methods)
                     and (scale is None or record.get("dataset_info", {}).get("source_scale", 1.0) == scale)])
    if not chosen:
        raise ValueError("no records match the selection")
    chosen = [dict(record) for record in chosen]  # a record whose file cannot be copied loses its reference
    copy_files(chosen, folder if source is None else source, folder)
    path = Path(folder) / RECORDS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record, sort_keys=True) + "\n" for record in chosen))
    return path


def export_set(records: list[dict], folder: str | Path, datasets: list[str] | None = None,
               methods: list[str] | None = None, scale: float | None = None,
               source: str | Path | None = None, per_query_csv: bool = False) -> list[Path]:
    """`export`: the chosen records as a new record set in `folder` (their per-query files copied
    from `source`), with its tables and plots; with `per_query_csv` also `per_query.csv`, every
    query of every exported record that has per-query results, one row each."""
    written = [export(records, folder, datasets, methods, scale, source), *regenerate_set(folder)]
    if per_query_csv:
        table = per_query_table(records_frame(ResultsStore(folder).results(), folder))
        written.append(_write(Path(folder) / "per_query.csv", table.to_csv(index=False)))
    return written


def _commands(records: list[dict]) -> str:
    commands = sorted({r["command"] for r in records if r.get("command")})
    if not commands:
        return ""
    return "\nRecords written by:\n\n" + "".join(f"    {command}\n" for command in commands)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
