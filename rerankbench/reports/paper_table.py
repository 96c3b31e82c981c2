"""The paper's Table V from stored records: test sets down, methods across.

Each test set gets two metric rows -- CMC@1 and mAP, or CMC@1 and CMC@5 on VehicleID, as the
paper reports them -- and a time row: the method's own re-ranking time (`wall_s`: after the
shared kNN graph and query-gallery distances, which are computed once per test set and given
in a note). Only records at the methods' default parameters are used (`overrides` empty, or
absent in records written before it was stored), selected and grouped on the records'
DataFrame (harness/frame.py); with several trials the metrics are the first trial's and the
time the median. The best and
second-best value of each metric row are marked (ties at the printed precision share a mark;
second-best is the next distinct value). A failed cell is "-" with its reason in a note; a
cell that was never run is empty. Records of the gallery context (--context gallery) get rows of
their own, labelled so. With `with_paper`, each metric and time row is followed by
the paper's number (`data/paper_table5.csv`) and, for metrics, our difference from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..engine.contexts import ALL, CONTEXTS, GALLERY
from ..engine.registry import DATASET_ORDER, METHOD_ORDER, datasets, methods, rank_in
from ..harness.store import context_of
from ..harness.frame import newest, records_frame
from .paper import paper_table5

METRIC_TITLES = {"cmc1": "CMC@1", "cmc5": "CMC@5", "map": "mAP"}
DIGITS = 2  # metrics are printed, compared and stored in the CSV with two decimals


@dataclass
class Entry:
    """One cell: its value (None when failed or not run), its text, and its mark."""
    value: float | None = None
    text: str = ""
    mark: str = ""  # "best", "second" or ""
    same_as_best: bool = False  # not significantly different from the row's best (comparison.mark_significance)


@dataclass
class Row:
    dataset: str  # the test set's label, e.g. "MSMT17 (twin)"
    metric: str  # "CMC@1", "mAP", "time", "CMC@1 paper", "CMC@1 diff", ...
    entries: dict[str, Entry]
    notes: list[str] = field(default_factory=list)  # the footnotes this row refers to
    metric_key: str = ""  # a metric row of ours: "cmc1", "map", "cmc5"
    records: dict[str, dict] = field(default_factory=dict)  # a metric row: each ok cell's record


@dataclass
class PaperTable:
    methods: list[str]  # column order (registry names)
    titles: dict[str, str]  # method name -> column title
    rows: list[Row]
    caption: str
    notes: list[str]  # numbered footnotes, "[n]" in the cells that cite them


def build_table(records: list[dict], with_paper: bool = False) -> PaperTable:
    """Table V of `records` (any mix of test sets, methods and runs)."""
    cells = _default_cells(records)
    if cells.empty:
        raise ValueError("no records at the methods' default parameters to make a table from")
    names = sorted(cells["method"].unique(), key=lambda name: rank_in(METHOD_ORDER, name))
    titles = {name: title_of(name) for name in names}
    test_sets = dict(list(cells.groupby(["dataset", "fingerprint", "context"], sort=False)))
    keys = sorted(test_sets, key=lambda k: (rank_in(DATASET_ORDER, k[0]), k[1], CONTEXTS.index(k[2])))
    notes: list[str] = []
    rows: list[Row] = []
    for key in keys:
        group = {method: trials for method, trials in test_sets[key].groupby("method", sort=False)}
        first = _first(next(iter(group.values())))
        twins = {k[1]: test_sets[k]["record"].iloc[0]["dataset_info"].get("source_scale", 1.0)
                 for k in keys if k[0] == key[0]}  # this test set's twins (fingerprints) and their scales
        label = dataset_label(first, several=len(twins) > 1,
                              named=len(twins) > len(set(twins.values())))
        shared = _shared_seconds(first)
        if shared is not None:
            notes.append(f"{label}: shared steps ({_graph_named(first)}, query-gallery distances) {shared:.1f} s, "
                         "done once for every method and not in the time row")
        for method, trials in group.items():
            training = _first(trials).get("training")
            if training:
                notes.append(f"{label}: {titles[method]} was trained for {training['training_seconds']:.0f} s "
                             f"({training['epochs_done']} epochs of {training['settings']['epoch_size']} probes on "
                             f"{training['train_images']} training images) before the timed re-ranking")
        for metric in _metrics(first):
            rows.append(_metric_row(label, metric, names, group, notes))
            if with_paper:
                rows += _paper_rows(label, key[0], metric, names, rows[-1])
        rows.append(_time_row(label, names, group))
        if with_paper:
            rows.append(_paper_time_row(label, key[0], names))
    by_cell = cells.groupby(["dataset", "fingerprint", "context", "method"], sort=False)
    chosen = [_first(trials) for _, trials in by_cell]
    return PaperTable(names, titles, rows, _caption(chosen, with_paper), notes)


def title_of(method: str) -> str:
    """A method's title as the paper's tables print it ("αQE"), or its name where it has none."""
    cls = methods().get(method)
    return (cls.title or method) if cls else method


def _default_cells(records: list[dict]) -> pd.DataFrame:
    """The newest record of each cell at default parameters (records.frame: trials in order within a cell)."""
    cells = newest(records_frame(records))
    return cells[[record.get("overrides", {}) == {} for record in cells["record"]]]


def _graph_named(record: dict) -> str:
    """"exact kNN graph", or the approximate one's backend, parameters and measured recall."""
    knn = record.get("knn") or {"backend": "exact"}
    if knn["backend"] == "exact":
        return "exact kNN graph"
    params = ", ".join(f"{name} {value}" for name, value in knn.get("params", {}).items() if name != "recall_rows")
    recall = record.get("knn_recall")
    return f"{knn['backend']} kNN graph ({params}" + ("" if recall is None else f"; recall@K {recall:.4f}") + ")"


def _first(trials: pd.DataFrame) -> dict:
    """The record of a cell's first trial."""
    return trials["record"].iloc[0]


def dataset_label(record: dict, several: bool, named: bool = False) -> str:
    """"MSMT17 (twin)", "VERI-Wild (small, twin)"; the scale is added when it is not 1 or when one
    test set comes at several; with `named`, the twin's fingerprint too (two twins of one test set at
    one scale: the same model generated on hosts whose BLAS rounds differently, or two models);
    "gallery context" where each query was re-ranked against the gallery alone."""
    registered = datasets().get(record["dataset"])
    label = registered.title if registered and record.get("synthetic") else record["dataset"]
    tags = []
    if record.get("synthetic"):
        scale = record.get("dataset_info", {}).get("source_scale", 1.0)
        tags.append(f"twin, scale {scale:g}" if scale != 1.0 or several else "twin")
        if named:
            tags.append(f"fingerprint {record['dataset_info']['fingerprint']}")
    if context_of(record) != ALL:
        tags.append(f"{context_of(record)} context")
    for tag in tags:
        label = label[:-1] + f", {tag})" if label.endswith(")") else label + f" ({tag})"
    return label


def _metrics(record: dict) -> tuple[str, str]:
    return ("cmc1", "cmc5") if record.get("dataset_info", {}).get("protocol") == "vehicleid" else ("cmc1", "map")


def _metric_row(label: str, metric: str, names: list[str], group: dict, notes: list[str]) -> Row:
    entries, cited = {}, []
    for name in names:
        record = _first(group[name]) if name in group else None
        if record is None:
            entries[name] = Entry()
        elif record["status"] != "ok":
            reason = f"{record['method']} on {label}: {str(record.get('error') or 'failed').splitlines()[0]}"
            if reason not in notes:
                notes.append(reason)
            number = notes.index(reason) + 1
            cited.append(number)
            entries[name] = Entry(None, f"-[{number}]")
        else:
            value = round(record[metric], DIGITS)
            entries[name] = Entry(value, f"{value:.{DIGITS}f}")
    mark_best(entries)
    ok = {name: _first(group[name]) for name in names if entries[name].value is not None}
    return Row(label, METRIC_TITLES[metric], entries, [notes[n - 1] for n in dict.fromkeys(cited)], metric, ok)


def mark_best(entries: dict[str, Entry]) -> None:
    """Mark the highest value "best" and the next distinct one "second" (ties share a mark)."""
    distinct = sorted({e.value for e in entries.values() if e.value is not None}, reverse=True)
    for entry in entries.values():
        if entry.value is not None and entry.value in distinct[:2]:
            entry.mark = "best" if entry.value == distinct[0] else "second"


def _time_row(label: str, names: list[str], group: dict) -> Row:
    entries = {}
    for name in names:
        trials = group[name][group[name]["status"] == "ok"] if name in group else pd.DataFrame()
        if trials.empty:
            entries[name] = Entry(None, "-" if name in group else "")
            continue
        seconds = float(trials["wall_s"].median())
        cuda = _first(trials).get("device", "").startswith("cuda")
        entries[name] = Entry(round(seconds, 4), duration(seconds) + ("*" if cuda else ""))
    return Row(label, "time", entries)


def duration(seconds: float) -> str:
    """As the paper prints times: "0.4ms", "7.5ms", "1.3s", "430.6s"."""
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else f"{seconds:.1f}s"


def _paper_rows(label: str, dataset: str, metric: str, names: list[str], ours: Row) -> list[Row]:
    paper = paper_table5().get((dataset, metric), {})
    theirs = {name: Entry(paper[name], f"{paper[name]:.{DIGITS}f}") if name in paper else Entry() for name in names}
    mark_best(theirs)
    diff = {}
    for name in names:
        mine, their = ours.entries[name].value, theirs[name].value
        delta = None if mine is None or their is None else round(mine - their, DIGITS)
        diff[name] = Entry(delta, "" if delta is None else f"{delta:+.{DIGITS}f}")
    return [Row(label, f"{ours.metric} paper", theirs), Row(label, f"{ours.metric} diff", diff)]


def _paper_time_row(label: str, dataset: str, names: list[str]) -> Row:
    paper = paper_table5().get((dataset, "time_s"), {})
    return Row(label, "time paper", {name: Entry(paper[name], duration(paper[name])) if name in paper else Entry()
                                     for name in names})


def _shared_seconds(record: dict) -> float | None:
    """The kNN graph's and the distances' seconds (in the gallery context, each gallery's graph too)."""
    steps = (record.get("shared") or {}).get("steps", {})
    galleries = [sub.get("knn_graph") for sub in steps.values() if isinstance(sub, dict) and "gallery" in sub]
    seconds = [step["seconds"] for name, step in steps.items() if name in ("knn_graph", "distances")
               and isinstance(step, dict) and "seconds" in step] + [step["seconds"] for step in galleries if step]
    return sum(seconds) if seconds else None


def _caption(records: list[dict], with_paper: bool) -> str:
    devices = sorted({r.get("device", "?") for r in records if r.get("device")})
    text = ("Performance (%) comparison. The best and second-best results of each row are marked (red and blue in "
            "LaTeX, bold and italics in Markdown). Time: the method's re-ranking after the shared steps, "
            f"on {', '.join(devices) or 'an unrecorded device'} (* marks CUDA). '-': the method failed (see the notes).")
    if any(r.get("synthetic") for r in records):
        text += (" Rows marked (twin) are synthetic twins of the datasets, not the released data: their numbers "
                 "show how the methods behave, not what they score on the real images.")
    if any(context_of(r) == GALLERY for r in records):
        text += (" Rows marked 'gallery context' re-rank each query against the gallery alone, as if it arrived "
                 "alone (inductive); the others re-rank the queries and the gallery together (transductive).")
    if with_paper:
        text += " 'paper': the paper's Table V; 'diff': ours minus the paper's."
    return text
