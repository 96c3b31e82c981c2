"""Every method in both contexts, side by side: transductive (--context all: the queries and the
gallery together) against inductive (--context gallery: each query against the gallery alone).

For each test set with records at default parameters in both contexts: each method's Table V
metrics in both, the difference (gallery minus all) with the paired randomisation test over the
same queries (comparison.paired; "-" where per-query results are missing) and the re-ranking
times (`tables/contexts.md`); and a figure with a panel per test set, the main metric (mAP,
CMC@1 on VehicleID) of each method in both contexts (`figures/contexts.{png,pdf}`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.contexts import ALL, GALLERY
from ..engine.registry import DATASET_ORDER, METHOD_ORDER, rank_in
from ..harness.frame import newest, records_frame
from ..harness.per_query_files import PerQueryUnavailable
from .comparison import paired
from .figure_files import dress, pyplot, save
from .paper_table import METRIC_TITLES, dataset_label, duration, title_of

STEM = "contexts"


@dataclass
class ContextSet:
    """One test set's records at default parameters in both contexts: {method: (all, gallery)}."""
    dataset: str
    label: str
    metrics: tuple[str, str]
    pairs: dict[str, tuple[dict, dict]]


def context_sets(records: list[dict]) -> list[ContextSet]:
    """The test sets whose methods have ok records of trial 0 at default parameters in both contexts."""
    frame = newest(records_frame(records))
    frame = frame[(frame["status"] == "ok") & (frame["trial"] == 0)
                  & frame["record"].map(lambda record: not record.get("overrides"))]
    sets = []
    for (dataset, _), test_set in sorted(frame.groupby(["dataset", "fingerprint"]),
                                         key=lambda item: (rank_in(DATASET_ORDER, item[0][0]), item[0][1])):
        by_context = {context: dict(zip(part["method"], part["record"])) for context, part in test_set.groupby("context")}
        both = sorted(set(by_context.get(ALL, {})) & set(by_context.get(GALLERY, {})),
                      key=lambda name: rank_in(METHOD_ORDER, name))
        if both:
            first = by_context[ALL][both[0]]
            vehicle = first.get("dataset_info", {}).get("protocol") == "vehicleid"
            sets.append(ContextSet(dataset, dataset_label(first, several=False),
                                   ("cmc1", "cmc5") if vehicle else ("cmc1", "map"),
                                   {name: (by_context[ALL][name], by_context[GALLERY][name]) for name in both}))
    return sets


def context_rows(test_set: ContextSet, results: str | Path) -> list[dict]:
    """Each method of one test set in both contexts: its metrics, the difference (gallery minus
    all) of the main one with its paired test ("-" without per-query results), the times."""
    main, other = _main_metric(test_set), next(m for m in test_set.metrics if m != _main_metric(test_set))
    first, second = METRIC_TITLES[main], METRIC_TITLES[other]
    rows = []
    for name, (everything, alone) in test_set.pairs.items():
        try:
            p_value = f"{paired(alone, everything, results, main, interval=False).p_value:.4g}"
        except PerQueryUnavailable:
            p_value = "-"
        rows.append({"method": title_of(name), f"{first} all": f"{everything[main]:.2f}",
                     f"{first} gallery": f"{alone[main]:.2f}", "diff": f"{alone[main] - everything[main]:+.2f}",
                     "p": p_value, f"{second} all": f"{everything[other]:.2f}", f"{second} gallery": f"{alone[other]:.2f}",
                     "time all": duration(everything["wall_s"]), "time gallery": duration(alone["wall_s"])})
    return rows


INTRODUCTION = ("all: the queries and the gallery form X together; gallery: each query re-ranked against the gallery "
                "alone, as if it arrived alone. Diff: gallery minus all, with the p-value of a paired randomisation "
                "test over the same queries (10,000 rounds; '-' without per-query results). Time: the re-ranking.")


def context_table(sets: list[ContextSet], results: str | Path) -> str:
    """The Markdown page of every test set's methods in both contexts."""
    lines = ["# Transductive (context all) against inductive (context gallery)", "", INTRODUCTION]
    for test_set in sets:
        rows = context_rows(test_set, results)
        lines += ["", f"## {test_set.label}", "", "| " + " | ".join(rows[0]) + " |", "|" + " --- |" * len(rows[0])]
        lines += ["| " + " | ".join(row.values()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _main_metric(test_set: ContextSet) -> str:
    """mAP, or CMC@1 on VehicleID (whose Table V rows are CMC@1 and CMC@5)."""
    return "cmc1" if "cmc5" in test_set.metrics else "map"


def draw_contexts(sets: list[ContextSet], folder: str | Path) -> list[Path]:
    """A panel per test set: each method's main metric (mAP; CMC@1 on VehicleID) in both contexts."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sets), figsize=(max(4.8, 0.55 * max(len(s.pairs) for s in sets) + 1.5) * len(sets),
                                                     4.2), squeeze=False)
    for axis, test_set in zip(axes[0], sets):
        metric = _main_metric(test_set)
        names = list(test_set.pairs)
        where = np.arange(len(names))
        for offset, (context, position, colour) in zip((-0.2, 0.2), ((ALL, 0, "tab:blue"), (GALLERY, 1, "tab:orange"))):
            axis.bar(where + offset, [test_set.pairs[name][position][metric] for name in names], width=0.4,
                     color=colour, label=f"context {context}")
        axis.set_xticks(where, [title_of(name) for name in names], rotation=45, ha="right", fontsize=8)
        axis.set_ylim(0, 115)  # room for the legend above the bars (percent: at most 100)
        dress(axis, "", f"{METRIC_TITLES[metric]} (%)", test_set.label, grid="y")
        axis.legend(fontsize=8, loc="upper center", ncol=2)
    return save(fig, folder, STEM, "Transductive (all) against inductive (gallery) re-ranking")
