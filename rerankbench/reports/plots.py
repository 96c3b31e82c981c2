"""Sensitivity plots from stored records: the paper's Figs. 10 and 11 (CMC@1 and mAP against
k1, one line per method, the baseline dashed) and Fig. 12 (mAP against k2), each with the
table of peak values the paper prints under it.

A curve is every ok record of one (test set, method) whose `overrides` differ in one
parameter only; the x axis is the paper's name for it (AQE's and alpha-QE's k is k1, through
`Reranker.aliases`). Records at default parameters give the baseline's reference line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..engine.contexts import ALL, CONTEXTS
from ..engine.registry import DATASET_ORDER, METHOD_ORDER, methods, rank_in
from ..harness.frame import newest, records_frame
from .figure_files import dress, pyplot, save
from .paper_table import METRIC_TITLES, Entry, dataset_label, mark_best, title_of
from .tables import dataset_key

SECOND_METRIC_ONLY = {"k2"}  # Fig. 12 shows mAP only; the other sweeps CMC@1 and mAP (CMC@5 on VehicleID)
LINES = [("o", "-"), ("s", "-."), ("^", ":"), ("D", "-"), ("v", "-."), ("x", ":"), ("P", "-"), ("*", "-.")]


@dataclass
class Curve:
    method: str
    fixed: tuple = ()  # the other parameters that were set, as (name, value) pairs
    points: dict = field(default_factory=dict)  # value -> record

    @property
    def label(self) -> str:
        """The method's title, with what was held fixed: "k-reciprocal (k1=32)"."""
        return title_of(self.method) + (f" ({', '.join(f'{k}={v}' for k, v in self.fixed)})" if self.fixed else "")


@dataclass
class SweepFigure:
    dataset: str  # registry name
    label: str  # "MSMT17 (twin)"
    param: str  # the paper's name, e.g. "k1"
    metrics: tuple[str, ...]
    curves: list[Curve]
    baseline: dict | None  # the baseline's record on the same test set
    context: str = ALL

    @property
    def stem(self) -> str:
        return f"{self.dataset}-{self.param}" if self.context == ALL else f"{self.dataset}-{self.context}-{self.param}"


def sweep_figures(records: list[dict]) -> list[SweepFigure]:
    """Every sweep in `records`, one figure per (test set, parameter)."""
    points = _sweep_points(records)
    if points.empty:
        return []
    ok = newest(records_frame(records))
    ok = ok[(ok["status"] == "ok") & (ok["trial"] == 0)]
    baselines = {dataset_key(r): r for r in ok["record"] if r["method"] == "baseline" and not r.get("overrides")}
    figures: dict[tuple, SweepFigure] = {}
    curves = points.groupby(["dataset_rank", "dataset", "fingerprint", "context_rank", "context", "param",
                             "method_rank", "method", "rest"], sort=True)
    for (_, dataset, fingerprint, _, context, param, _, method, rest), group in curves:
        if group["value"].nunique() < 2:
            continue
        key = (dataset, fingerprint, context, param)
        curve = Curve(method, rest, dict(zip(group["value"], group["record"])))
        if key not in figures:
            first = group["record"].iloc[0]
            metrics = ("cmc1", "cmc5") if first["dataset_info"].get("protocol") == "vehicleid" else ("cmc1", "map")
            figures[key] = SweepFigure(dataset, dataset_label(first, several=False), param,
                                       metrics[1:] if param in SECOND_METRIC_ONLY else metrics, [],
                                       baselines.get((dataset, fingerprint, context)), context)
        figures[key].curves.append(curve)
    return list(figures.values())


def _sweep_points(records: list[dict]) -> pd.DataFrame:
    """One row for each numeric parameter set in each newest ok record of trial 0 (a point of the
    sweep over it): test set, fingerprint, context, the parameter's paper name, method, the other
    parameters that were set (`rest`), the value and the record."""
    ok = newest(records_frame(records))
    ok = ok[(ok["status"] == "ok") & (ok["trial"] == 0)]
    rows = []
    for record in ok["record"]:
        overrides = record.get("overrides") or {}
        for param, value in overrides.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # a switch (ACP's ablation) or a choice: no axis to plot along
            rest = tuple(sorted((k, str(v)) for k, v in overrides.items() if k != param))
            dataset, fingerprint, context = dataset_key(record)
            rows.append({"dataset_rank": rank_in(DATASET_ORDER, dataset)[0], "dataset": dataset,
                         "fingerprint": fingerprint, "context_rank": CONTEXTS.index(context), "context": context,
                         "param": _paper_name(record["method"], param),
                         "method_rank": rank_in(METHOD_ORDER, record["method"])[0], "method": record["method"],
                         "rest": rest, "value": value, "record": record})
    frame = pd.DataFrame(rows)
    if rows:  # the values as they were recorded (5, not 5.0)
        frame["value"] = pd.Series([row["value"] for row in rows], dtype=object)
    return frame


def _paper_name(method: str, param: str) -> str:
    aliases = getattr(methods().get(method), "aliases", {})
    return next((alias for alias, own in aliases.items() if own == param), param)


def draw_sweeps(records: list[dict], folder: str | Path) -> list[Path]:
    """Every sweep of `records` drawn into `folder` (the `plot` command); an error when there is none."""
    figures = sweep_figures(records)
    if not figures:
        raise ValueError("no sweeps among the records (make one with 'sweep')")
    return [path for figure in figures for path in draw(figure, folder)]


def draw(figure: SweepFigure, folder: str | Path) -> list[Path]:
    """Write `<dataset>-<param>.png` and `.pdf` into `folder`; returns their paths."""
    fig, axes = pyplot().subplots(1, len(figure.metrics), figsize=(5.2 * len(figure.metrics), 4.0), squeeze=False)
    for axis, metric in zip(axes[0], figure.metrics):
        for number, curve in enumerate(figure.curves):
            marker, style = LINES[number % len(LINES)]
            values = sorted(curve.points)
            axis.plot(values, [curve.points[v][metric] for v in values], marker=marker, linestyle=style,
                      markersize=4, linewidth=1.4, markevery=max(1, len(values) // 12), label=curve.label)
        if figure.baseline is not None:
            axis.axhline(figure.baseline[metric], color="black", linestyle="--", linewidth=1.2, label="Baseline")
        dress(axis, figure.param, f"{METRIC_TITLES[metric]} (%)", f"{METRIC_TITLES[metric]} (%) wrt. {figure.param}")
    return save(fig, folder, figure.stem, f"Performance versus {figure.param} on {figure.label}")


def peak_table(figure: SweepFigure, metric: str) -> str:
    """The paper's table under each figure: a row at each method's best value of the parameter,
    every method's metric there, the best of the row in bold."""
    peaks = sorted({max(curve.points, key=lambda v: (curve.points[v][metric], -v)) for curve in figure.curves})
    titles = [curve.label for curve in figure.curves]
    baseline = [] if figure.baseline is None else ["Baseline"]
    lines = ["| " + " | ".join([figure.param, *baseline, *titles]) + " |", "|" + " --- |" * (1 + len(baseline) + len(titles))]
    for value in peaks:
        entries = {curve.method: Entry(round(curve.points[value][metric], 2)) if value in curve.points else Entry()
                   for curve in figure.curves}
        if figure.baseline is not None:
            entries["baseline"] = Entry(round(figure.baseline[metric], 2))
        mark_best(entries)
        cells = [_cell(entries["baseline"], bold=False)] if figure.baseline is not None else []
        cells += [_cell(entries[curve.method], bold=entries[curve.method].mark == "best") for curve in figure.curves]
        lines.append("| " + " | ".join([f"{value:g}", *cells]) + " |")
    return "\n".join(lines)


def _cell(entry: Entry, bold: bool) -> str:
    if entry.value is None:
        return ""
    return f"**{entry.value:.2f}**" if bold else f"{entry.value:.2f}"
