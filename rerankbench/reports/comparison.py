"""`compare`: whether two methods really differ on one test set, from their per-query results
(evaluation/significance.py): a paired randomisation test and a paired bootstrap interval of the
difference of the metric, first method minus second. `table --significance` runs the same test
between each cell of a Table V row and the row's best, Holm-corrected across the row.

The records compared are the newest of each cell (harness/frame.py) at the methods' default
parameters (or the ones --set names), trial 0, ok, in one context (--context, default all); both on one feature set (name a scale when the test set was run at
several), their per-query results read and checked from the results folder. VehicleID's queries
are paired within each draw.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..engine.contexts import ALL, check_context
from ..engine.registry import method
from ..evaluation.significance import ROUNDS, bootstrap_interval, holm, permutation_test
from ..harness.frame import newest, records_frame
from ..harness.per_query_files import PerQueryUnavailable, read
from .paper_table import METRIC_TITLES, PaperTable, dataset_label

METRICS = ("map", "cmc1", "cmc5")
LEVEL = 0.05  # p >= LEVEL: not significantly different


@dataclass(frozen=True)
class Comparison:
    dataset: str
    methods: tuple[str, str]
    metric: str
    difference: float  # metric(first) - metric(second), percent
    means: tuple[float, float]
    p_value: float
    ci_low: float
    ci_high: float
    rounds: int
    seed: int
    queries: int
    context: str
    label: str  # the test set as the tables name it
    shown: tuple[str, str]  # the methods, with the parameters that were set

    def as_json(self) -> str:
        fields = asdict(self)
        fields.pop("label")
        fields.pop("shown")
        fields["methods"] = list(self.methods)
        fields["means"] = dict(zip(self.methods, self.means))
        return json.dumps(fields)

    def describe(self) -> str:
        first, second = self.shown
        title = METRIC_TITLES.get(self.metric, self.metric)
        return "\n".join([
            f"{self.label}: {first} against {second}, {title} over {self.queries:,} queries",
            f"difference {self.difference:+.2f} ({first} {self.means[0]:.2f}, {second} {self.means[1]:.2f})",
            f"paired randomisation test: p = {self.p_value:.4g} (two-sided, {self.rounds:,} rounds, seed {self.seed})",
            f"paired bootstrap 95% interval of the difference: [{self.ci_low:+.2f}, {self.ci_high:+.2f}] "
            f"({self.rounds:,} rounds)"])


def default_metric(record: dict) -> str:
    """Table V's first metric after CMC@1 where it is a ranking's: mAP, or CMC@1 on VehicleID."""
    return "cmc1" if _protocol(record) == "vehicleid" else "map"


def compare(records: list[dict], results: str | Path, dataset: str, methods: list[str], metric: str | None = None,
            scale: float | None = None, rounds: int = ROUNDS, seed: int = 0,
            settings: dict[str, dict] | None = None, context: str = ALL) -> Comparison:
    """The paired tests of `methods` (two) on `dataset` in `context`, from the records of
    `results`; each method's record is the one at its default parameters, or with exactly the
    parameters `settings` names for it ({method: {parameter: value}}, as --set gives them)."""
    if len(methods) != 2 or methods[0] == methods[1]:
        raise ValueError(f"--methods: name two different methods, got {','.join(methods)}")
    if metric is not None and metric not in METRICS:
        raise ValueError(f"--metric: choose one of {', '.join(METRICS)}, got {metric!r}")
    if rounds < ROUNDS:
        raise ValueError(f"--rounds must be at least {ROUNDS:,}, got {rounds:,}")
    chosen = _chosen(records, dataset, methods, scale, settings or {}, check_context(context))
    first, second = (chosen[name] for name in methods)
    metric = metric or default_metric(first)
    test = paired(first, second, results, metric, rounds, seed)
    return Comparison(dataset, (methods[0], methods[1]), metric, test.difference, test.means, test.p_value,
                      test.ci_low, test.ci_high, rounds, seed, test.queries, context,
                      dataset_label(first, several=scale is not None), tuple(_shown(r) for r in (first, second)))


@dataclass(frozen=True)
class Paired:
    difference: float  # metric(first) - metric(second), percent
    means: tuple[float, float]
    p_value: float
    ci_low: float | None
    ci_high: float | None
    queries: int


def paired(first: dict, second: dict, results: str | Path, metric: str, rounds: int = ROUNDS, seed: int = 0,
           interval: bool = True) -> Paired:
    """The paired randomisation test (and, with `interval`, the bootstrap interval) of two records
    of one feature set, from their per-query results in `results` (PerQueryUnavailable without)."""
    a, b = (read(results, record) for record in (first, second))
    if not (np.array_equal(a.draw, b.draw) and np.array_equal(a.query_row, b.query_row)):
        raise ValueError(f"{_shown(first)} and {_shown(second)} on {first['dataset']} did not score the same queries")
    official = _protocol(first) == "market-official"
    counted, values_a = a.metric_terms(metric, official)
    _, values_b = b.metric_terms(metric, official)
    weights = a.weights(counted)
    weighted = weights * (values_a - values_b)
    low, high = bootstrap_interval((values_a - values_b)[counted], a.draw[counted], rounds, seed) if interval else \
        (None, None)
    return Paired(float(weighted.sum()), (float((weights * values_a).sum()), float((weights * values_b).sum())),
                  permutation_test(weighted[counted], rounds, seed), low, high, int(counted.sum()))


def _chosen(records: list[dict], dataset: str, methods: list[str], scale: float | None,
            settings: dict[str, dict], context: str) -> dict[str, dict]:
    """{method: its newest ok record of trial 0 in `context` with the parameters set in `settings`
    (none: the defaults) on one feature set of `dataset`}."""
    wanted = {name: _overrides(name, settings.get(name, {})) for name in methods}
    frame = newest(records_frame(records))
    chosen = frame["record"].map(lambda r: r.get("overrides", {}) == wanted.get(r["method"]))
    at_scale = frame["record"].map(lambda record: scale is None or _scale(record) == scale)
    frame = frame[(frame["dataset"] == dataset) & frame["method"].isin(methods) & (frame["status"] == "ok")
                  & (frame["trial"] == 0) & (frame["context"] == context) & chosen & at_scale]
    missing = [name for name in methods if name not in set(frame["method"])]
    if missing:
        where = (f" at scale {scale:g}" if scale is not None else "") + (f" in the context {context}"
                                                                         if context != ALL else "")
        which = "; ".join(f"{name} at {', '.join(f'{k}={v}' for k, v in wanted[name].items()) or 'default parameters'}"
                          for name in missing)
        raise ValueError(f"no ok record of {which} on {dataset}{where}")
    shared = set.intersection(*(set(frame.loc[frame["method"] == name, "fingerprint"]) for name in methods))
    if len(shared) != 1:
        scales = sorted({_scale(record) for record in frame["record"]})
        raise ValueError(f"{', '.join(methods)} on {dataset}: " + (
            f"records of {len(shared)} feature sets (scales {', '.join(f'{s:g}' for s in scales)}); choose one "
            "with --scale" if shared else "no feature set has records of both"))
    (fingerprint,) = shared
    frame = frame[frame["fingerprint"] == fingerprint]
    return {name: frame.loc[frame["method"] == name, "record"].iloc[-1] for name in methods}


def _overrides(name: str, values: dict) -> dict:
    """What a record's `overrides` holds when `values` (--set's text) were set: the method's own
    names, numbers parsed as the method parses them."""
    instance = method(name, **values)
    return {key: instance.parsed(key, value) for key, value in instance.overrides.items()}


def row_significance(records: dict[str, dict], best: str, metric: str, results: str | Path,
                     rounds: int = ROUNDS, seed: int = 0) -> tuple[dict[str, float], list[str]]:
    """For one Table V row ({method: record}, all on one feature set): each other method's
    Holm-adjusted p-value against the row's best method, and why the methods that could not be
    tested could not (no per-query results: records from before they were kept, or a damaged file)."""
    p_values, untested = {}, []
    for method, record in records.items():
        if method != best:
            try:
                p_values[method] = paired(record, records[best], results, metric, rounds, seed, False).p_value
            except PerQueryUnavailable as error:
                untested.append(str(error))
    return dict(zip(p_values, holm(list(p_values.values())))), list(dict.fromkeys(untested))


def _shown(record: dict) -> str:
    """"aqe", or "aqe (k=1)" where parameters were set."""
    overrides = record.get("overrides") or {}
    return record["method"] + (f" ({', '.join(f'{k}={v}' for k, v in overrides.items())})" if overrides else "")


def _protocol(record: dict) -> str:
    return (record.get("dataset_info") or {}).get("protocol", "market")


def _scale(record: dict) -> float:
    return (record.get("dataset_info") or {}).get("source_scale", 1.0)



def mark_significance(table: PaperTable, results: str | Path, rounds: int = ROUNDS, seed: int = 0) -> PaperTable:
    """Mark the cells of each metric row of Table V that are not significantly different from the
    row's best (Holm-adjusted p >= 0.05), as ranx does; say in a note which could not be tested
    (and in the caption alone when no record of the table has per-query results)."""
    if not any(record.get("per_query") for row in table.rows for record in row.records.values()):
        table.caption += (" Significance is not marked: these records have no per-query results (they were "
                          "written before the results of each query were kept).")
        return table
    untested_notes = []
    for row in table.rows:
        best = next((name for name in table.methods if row.entries[name].mark == "best" and name in row.records), None)
        if not row.metric_key or best is None:
            continue
        adjusted, untested = row_significance(row.records, best, row.metric_key, results, rounds, seed)
        for method, p_value in adjusted.items():
            row.entries[method].same_as_best = p_value >= LEVEL
        untested_notes += [f"{row.dataset}, {row.metric}: not tested against {table.titles[best]}: {why}"
                           for why in untested]
    table.notes += list(dict.fromkeys(untested_notes))
    table.caption += (f" †: not significantly different from the row's best (paired randomisation test over "
                      f"queries, {rounds:,} rounds, Holm-corrected across the row, p >= {LEVEL}).")
    return table
