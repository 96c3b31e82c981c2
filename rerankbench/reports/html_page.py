"""`report --html`: one static page per record set, `report.html`, self-contained so that it works
offline and can be mailed: Table V with the significance marks (comparison.mark_significance), the
contexts side by side where there are both, every figure of the set (its PNGs, embedded as data
URIs), and the provenance of the records -- machines, library versions, commits, dates and the
commands that wrote them (tables written by pandas' DataFrame.to_html). No script, no external file.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from ..harness.frame import records_frame
from .comparison import mark_significance
from .context_comparison import INTRODUCTION, context_rows, context_sets
from .paper_table import PaperTable, build_table

PAGE = "report.html"
STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 78em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
.best { font-weight: bold; color: #b00; } .second { font-style: italic; color: #00a; }
figure { margin: 1.2em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption, .notes, .caption { font-size: 0.85em; color: #555; } pre { background: #f6f6f6; padding: 0.6em; }
"""


def html_page(folder: str | Path, records: list[dict], figures: list[Path]) -> str:
    """The page of the record set in `folder` (its records, the PNG figures `report` wrote)."""
    folder = Path(folder)
    sections = [f"<h1>rerankbench: {html.escape(folder.name)}</h1>",
                f"<p>{len(records):,} records from <code>records.jsonl</code>; every table and figure is generated "
                "from them by <code>python -m rerankbench report --html</code>.</p>"]
    try:
        table = mark_significance(build_table(records), folder)
    except ValueError:  # a set of sweeps alone has no default-parameter records
        table = None
    if table is not None:
        sections.append('<h2 id="table5">Table V</h2>' + table_html(table))
    sets = context_sets(records)
    if sets:
        sections.append('<h2 id="contexts">Transductive against inductive</h2>' + f"<p>{html.escape(INTRODUCTION)}</p>")
        for test_set in sets:
            sections.append(f"<h3>{html.escape(test_set.label)}</h3>" +
                            pd.DataFrame(context_rows(test_set, folder)).to_html(index=False, border=0))
    if figures:
        sections.append('<h2 id="figures">Figures</h2>' + "".join(_figure(path) for path in figures))
    sections.append('<h2 id="provenance">Provenance</h2>' + provenance_html(records))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>rerankbench: {html.escape(folder.name)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(sections) + "\n</body>\n</html>\n")


def table_html(table: PaperTable) -> str:
    """Table V as HTML: best and second best marked as in LaTeX, † for not significantly different."""
    head = "".join(f"<th>{html.escape(text)}</th>" for text in ["dataset", "metric", *(table.titles[m] for m in
                                                                                       table.methods)])
    rows, previous = [], None
    for row in table.rows:
        cells = [html.escape(row.dataset if row.dataset != previous else ""), html.escape(row.metric)]
        previous = row.dataset
        for method in table.methods:
            entry = row.entries[method]
            text = html.escape(entry.text) + ("†" if entry.same_as_best else "")
            cells.append(f'<span class="{entry.mark}">{text}</span>' if entry.mark and entry.text else text)
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    notes = "".join(f"<li>[{n}] {html.escape(note)}</li>" for n, note in enumerate(table.notes, 1))
    return (f'<p class="caption">{html.escape(table.caption)}</p><table><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + f'</tbody></table><ul class="notes">{notes}</ul>')


def provenance_html(records: list[dict]) -> str:
    """What the records were measured with: machines, versions, commits, dates, commands."""
    frame = records_frame(records)
    columns = [c for c in ("host", "device", "threads") if c in frame]
    machines = frame[columns].drop_duplicates() if columns else pd.DataFrame()
    versions = frame[sorted(c for c in frame if c.startswith("versions."))].drop_duplicates()
    versions.columns = [c.removeprefix("versions.") for c in versions.columns]
    dates = sorted(d for d in frame.get("date", pd.Series(dtype=object)).dropna() if isinstance(d, str))
    commits = sorted({str(c) for c in frame.get("git_commit", pd.Series(dtype=object)).dropna()})
    commands = sorted({c for c in frame.get("command", pd.Series(dtype=object)).dropna() if isinstance(c, str)})
    parts = ["<h3>Machines</h3>" + machines.to_html(index=False, border=0, na_rep="-"),
             "<h3>Library versions</h3>" + versions.to_html(index=False, border=0, na_rep="-"),
             f"<h3>Commits</h3><p>{html.escape(', '.join(commits) or 'not recorded')}</p>",
             f"<h3>Dates</h3><p>{html.escape(dates[0] + ' to ' + dates[-1]) if dates else 'not recorded'}</p>",
             "<h3>Commands</h3><pre>" + html.escape("\n".join(commands) or "not recorded") + "</pre>"]
    return "".join(parts)


def _figure(path: Path) -> str:
    """A PNG as an <img> with its bytes inline (a data URI), and its name as the caption."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.stem)}">'
            f"<figcaption>{html.escape(path.stem)}</figcaption></figure>")
