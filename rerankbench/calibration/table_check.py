"""`calibrate --check`'s whole-table part: the twins' record sets against the paper, cell by cell.

A cell is one test set's metric of one method at its default parameters (Table V: CMC@1 and mAP,
CMC@1 and CMC@5 on VehicleID), read from a record set at one scale (full scale:
`results/full_scale`; 0.1: `results/default_run`); the k1 curves' points (Figs. 10-11) are read
from the sweeps' records at each scale they were run at. A record counts only when its twin is
the one the suite generates now (`same_twin`: generator version, seed and every term of the
model); the others are stale and are counted as such, never compared.

    difference = twin - paper                       (points)
    near       = |difference| <= 3 for a fitted method (table_fit.FITTED), <= 5 held out
    sign flip  = the paper's gain over its baseline exceeds 1 point and the twin's gain has
                 the other sign (or is 0)
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..engine.registry import DATASET_ORDER, datasets, methods, rank_in
from ..engine.reranker import DATA_DEPENDENT
from ..reports.paper import paper_k1_curves
from ..twins.synthetic import TwinModel
from ..twins.twin import GENERATOR_VERSION
from .table_fit import CURVE_METHODS, FITTED, HELD_OUT, table_cells

NEAR = {"fitted": 3.0, "held out": 5.0}
GAIN = 1.0  # points: a paper's gain larger than this must keep its sign on the twin
DIM = 2048  # the twins' dimension (`run --dim` makes other, smaller twins)


@dataclass(frozen=True)
class CheckedCell:
    """One cell: the paper's value, the twin's (None: no current record), and both baselines."""

    dataset: str
    method: str
    metric: str
    paper: float
    twin: float | None
    paper_baseline: float | None = None
    twin_baseline: float | None = None
    k1: int | None = None  # a k1 curve's point; None for Table V's cells

    @property
    def role(self) -> str:
        return "fitted" if self.method in FITTED or self.k1 is not None else "held out"

    @property
    def difference(self) -> float | None:
        return None if self.twin is None else self.twin - self.paper

    @property
    def near(self) -> bool | None:
        return None if self.twin is None else abs(self.difference) <= NEAR[self.role]

    @property
    def flipped(self) -> bool | None:
        """Whether the paper's gain over its baseline, where it exceeds GAIN points, has no like gain
        on the twin; None where there is no such gain (or no twin value) to compare."""
        if self.twin is None or self.twin_baseline is None or self.paper_baseline is None or self.method == "baseline":
            return None
        paper_gain = self.paper - self.paper_baseline
        return None if abs(paper_gain) <= GAIN else (self.twin - self.twin_baseline) * paper_gain <= 0


def same_twin(record: dict, model: TwinModel, scale: float, seed: int = 0) -> bool:
    """Whether `record` was made on the twin that `model` gives now at `scale` and `seed` (2048-d,
    no distractors added): a term
    the record's model does not list must be at its default, which the generator leaves out
    (twins/synthetic.py: terms left off give the same twin to the bit)."""
    info = record.get("dataset_info") or {}
    if not info.get("synthetic") or info.get("source_generator") != GENERATOR_VERSION:
        return False
    if info.get("source_seed") != seed or not math.isclose(info.get("source_scale", -1.0), scale):
        return False
    if info.get("source_distractors_added") or info.get("dim") != DIM:
        return False
    recorded = info.get("source_model") or {}
    defaults = {f.name: f.default for f in dataclasses.fields(TwinModel)}
    return all(recorded.get(name, defaults[name]) == value for name, value in dataclasses.asdict(model).items())


def current(records: list[dict], models: dict[str, TwinModel], scale: float) -> tuple[list[dict], int]:
    """The ok records at `scale` of the twins as generated now (all contexts but the default
    one left out), and how many records at that scale are stale."""
    at_scale = [r for r in records if r.get("status") == "ok" and r.get("dataset") in models
                and r.get("context", "all") == "all"
                and math.isclose((r.get("dataset_info") or {}).get("source_scale", -1.0), scale)]
    fresh = [r for r in at_scale if same_twin(r, models[r["dataset"]], scale)]
    return fresh, len(at_scale) - len(fresh)


def table_check(records: list[dict], names: list[str]) -> list[CheckedCell]:
    """Table V's cells of `names` (fitted and held-out methods) against `records` (current ones,
    see `current`): the newest record at default parameters of each method."""
    newest = {}
    for record in records:
        if at_defaults(record, datasets()[record["dataset"]].default_k):
            newest[record["dataset"], record["method"]] = record
    checked = []
    for name in sorted(names, key=lambda n: rank_in(DATASET_ORDER, n)):
        cells = table_cells(name, FITTED + HELD_OUT)
        paper_base = {c.metric: c.paper for c in cells if c.method == "baseline"}
        twin_base = newest.get((name, "baseline"))
        for cell in cells:
            record = newest.get((name, cell.method))
            checked.append(CheckedCell(name, cell.method, cell.metric, cell.paper,
                                       None if record is None else record[cell.metric],
                                       paper_base.get(cell.metric), None if twin_base is None else twin_base[cell.metric]))
    return checked


def at_defaults(record: dict, k1: int) -> bool:
    """Whether `record` ran at its method's defaults as they are now: nothing overridden, and each
    N/C neighbourhood size at the test set's k1 (a record made before a test set's k1 changed is not)."""
    cls = methods().get(record["method"])
    return (cls is not None and record.get("overrides", {}) == {}
            and all(record["params"].get(key) == k1 for key, value in cls.defaults.items() if value == DATA_DEPENDENT))


def curve_check(records: list[dict], names: list[str]) -> list[CheckedCell]:
    """The k1 curves' points (Figs. 10-11) of AQE, alpha-QE and k-reciprocal against `records`:
    for each, the newest record whose only override is the method's k1 at the point's value."""
    checked = []
    for name in names:
        baseline = [r for r in records if r["dataset"] == name and r["method"] == "baseline" and r.get("overrides", {}) == {}]
        for point in paper_k1_curves().get(name, []):
            for method in CURVE_METHODS:
                own = methods()[method].aliases.get("k1", "k1")
                found = [r for r in records if r["dataset"] == name and r["method"] == method
                         and set(r.get("overrides", {})) <= {own} and r["params"].get(own) == point["k1"]]
                checked.append(CheckedCell(name, method, point["metric"], point[method],
                                           found[-1][point["metric"]] if found else None, point["baseline"],
                                           baseline[-1][point["metric"]] if baseline else None, point["k1"]))
    return checked


def summary(cells: list[CheckedCell]) -> dict[str, dict[str, int]]:
    """Per role: cells the paper has, cells measured, near ones, within 5, sign flips."""
    out = {}
    for role in NEAR:
        mine = [c for c in cells if c.role == role]
        measured = [c for c in mine if c.twin is not None]
        out[role] = {"cells": len(mine), "measured": len(measured), "near": sum(bool(c.near) for c in measured),
                     "within_5": sum(abs(c.difference) <= 5.0 for c in measured),
                     "gains": sum(c.flipped is not None for c in measured),
                     "flips": sum(bool(c.flipped) for c in measured)}
    return out


def summary_lines(cells: list[CheckedCell]) -> list[str]:
    """The summary as Markdown bullets."""
    lines = []
    for role, s in summary(cells).items():
        if not s["cells"]:
            continue
        within_5 = f", {s['within_5']} within 5" if NEAR[role] < 5 else ""
        lines.append(f"- {role} methods: {s['near']} of {s['measured']} measured cells within {NEAR[role]:g} points"
                     f"{within_5}; {s['flips']} sign flips among the {s['gains']} gains over "
                     f"{GAIN:g} point in the paper; {s['cells'] - s['measured']} of the paper's {s['cells']} cells "
                     "without a current record")
    return lines


def cell_table(cells: list[CheckedCell]) -> list[str]:
    """Markdown rows: test set, method (k1), role, metric, paper, twin, difference, near, sign."""
    lines = ["| test set | method | role | metric | paper | twin | difference | near | gain's sign |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in cells:
        method = c.method if c.k1 is None else f"{c.method} (k1 = {c.k1})"
        twin = "no record" if c.twin is None else f"{c.twin:.2f}"
        difference = "" if c.twin is None else f"{c.difference:+.2f}"
        near = "" if c.near is None else ("yes" if c.near else "NO")
        sign = "" if c.flipped is None else ("FLIPPED" if c.flipped else "kept")
        lines.append(f"| {c.dataset} | {method} | {c.role} | {_metric(c.metric)} | {c.paper:.2f} | {twin} | "
                     f"{difference} | {near} | {sign} |")
    return lines


def _metric(metric: str) -> str:
    return {"cmc1": "CMC@1", "cmc5": "CMC@5", "map": "mAP"}.get(metric, metric)
