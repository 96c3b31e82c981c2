"""Accuracy against cost, as ann-benchmarks plots it: for each test set, every ok record (every
method, every sweep point) is a point of its metric -- mAP, or CMC@1 on VehicleID -- against its
re-ranking time (`wall_s`, log scale) and against its peak RSS, and the Pareto front is drawn:
the points that no other point beats, i.e. none has at most their cost and more of the metric.

A point is a method with its parameters; with several trials its metric is the first trial's
and its time and memory the medians (as in Table V). The figures are `<test set>-pareto.{png,pdf}`
(`<test set>-gallery-pareto` in the gallery context), with `<stem>.md` listing each front.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.contexts import ALL, CONTEXTS
from ..engine.registry import DATASET_ORDER, METHOD_ORDER, rank_in
from ..harness.frame import newest, records_frame
from .figure_files import dress, pyplot, save
from .paper_table import METRIC_TITLES, dataset_label, duration, title_of
from .plots import LINES

COSTS = {"wall_s": "re-ranking time", "peak_rss_mb": "peak RSS (MB)"}


@dataclass
class Point:
    method: str
    params: dict
    metric: float
    wall_s: float
    peak_rss_mb: float

    @property
    def label(self) -> str:
        """"AQE (k=5)"; the method's title alone at its default parameters."""
        return title_of(self.method) + (f" ({', '.join(f'{k}={v}' for k, v in self.params.items())})"
                                        if self.params else "")


@dataclass
class ParetoFigure:
    dataset: str
    label: str  # "MSMT17 (twin)"
    context: str
    metric: str  # "map", or "cmc1" on VehicleID
    points: list[Point] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return f"{self.dataset}-pareto" if self.context == ALL else f"{self.dataset}-{self.context}-pareto"


def front(points: list[Point], cost: str) -> list[Point]:
    """The Pareto front for `cost`, cheapest first: each point with more of the metric than every
    cheaper one (at equal cost, the best alone)."""
    best, out = -float("inf"), []
    for point in sorted(points, key=lambda p: (getattr(p, cost), -p.metric)):
        if point.metric > best:
            out.append(point)
            best = point.metric
    return out


def pareto_figures(records: list[dict]) -> list[ParetoFigure]:
    """One figure per test set (and context) with at least one ok record."""
    frame = newest(records_frame(records))
    frame = frame[frame["status"] == "ok"]
    if frame.empty:
        return []
    frame = frame.assign(params_json=[json.dumps(r.get("overrides") or {}, sort_keys=True) for r in frame["record"]],
                         context_rank=[CONTEXTS.index(c) for c in frame["context"]],
                         dataset_rank=[rank_in(DATASET_ORDER, d)[0] for d in frame["dataset"]],
                         method_rank=[rank_in(METHOD_ORDER, m)[0] for m in frame["method"]])
    figures = []
    by_set = frame.groupby(["dataset_rank", "dataset", "fingerprint", "context_rank", "context"], sort=True)
    for (_, dataset, _, _, context), test_set in by_set:
        first = test_set["record"].iloc[0]
        metric = "cmc1" if first.get("dataset_info", {}).get("protocol") == "vehicleid" else "map"
        figure = ParetoFigure(dataset, dataset_label(first, several=False), context, metric)
        for (_, method, params), cell in test_set.groupby(["method_rank", "method", "params_json"], sort=True):
            figure.points.append(Point(method, json.loads(params), float(cell["record"].iloc[0][metric]),
                                       float(cell["wall_s"].median()), float(cell["peak_rss_mb"].median())))
        figures.append(figure)
    return figures


def draw_pareto(figure: ParetoFigure, folder: str | Path) -> list[Path]:
    """Write the figure's PNG and PDF into `folder`: the metric against time (log) and against peak RSS."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(COSTS), figsize=(5.6 * len(COSTS), 4.4), squeeze=False)
    names = list(dict.fromkeys(point.method for point in figure.points))
    colours = plt.get_cmap("tab10")
    for axis, (cost, title) in zip(axes[0], COSTS.items()):
        for number, name in enumerate(names):
            mine = [p for p in figure.points if p.method == name]
            axis.scatter([getattr(p, cost) for p in mine], [p.metric for p in mine], s=22, alpha=0.85,
                         marker=LINES[number % len(LINES)][0], color=colours(number % 10),
                         label=title_of(name))
        best = front(figure.points, cost)
        axis.step([getattr(p, cost) for p in best], [p.metric for p in best], where="post", color="black",
                  linewidth=1.1, linestyle="--", label="Pareto front")
        if cost == "wall_s":
            axis.set_xscale("log")
        metric = f"{METRIC_TITLES[figure.metric]} (%)"
        dress(axis, title + (" (s)" if cost == "wall_s" else ""), metric, f"{metric} against {title}", legend_size=7)
    return save(fig, folder, figure.stem, f"Accuracy against cost on {figure.label}")


def front_table(figure: ParetoFigure, cost: str) -> str:
    """The front for `cost` as Markdown, cheapest first."""
    lines = [f"| method | {METRIC_TITLES[figure.metric]} | {COSTS[cost]} |", "| --- | --- | --- |"]
    for point in front(figure.points, cost):
        value = duration(point.wall_s) if cost == "wall_s" else f"{point.peak_rss_mb:,.0f}"
        lines.append(f"| {point.label} | {point.metric:.2f} | {value} |")
    return "\n".join(lines)
