"""The paper's own numbers, as reference data: Table V (`data/paper_table5.csv`, results) and
Table VI (`data/paper_table6.csv`, the baseline on each training set)."""
from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def paper_table5() -> dict[tuple[str, str], dict[str, float]]:
    """{(dataset, metric): {method: value}}, empty cells left out; time in seconds."""
    text = resources.files("rerankbench").joinpath("data/paper_table5.csv").read_text()
    table = {}
    for row in csv.DictReader(text.splitlines()):
        dataset, metric = row.pop("dataset"), row.pop("metric")
        table[dataset, metric] = {method: float(value) for method, value in row.items() if value}
    return table


def paper_baseline(dataset: str) -> dict[str, float]:
    """The paper's baseline metrics for a dataset, e.g. {"cmc1": 73.75, "map": 50.31}."""
    return {metric: values["baseline"] for (name, metric), values in paper_table5().items()
            if name == dataset and "baseline" in values}


@lru_cache(maxsize=None)
def paper_train_baseline() -> dict[str, dict[str, float]]:
    """Table VI: {dataset family: {metric: value}} for the baseline on the training sets."""
    text = resources.files("rerankbench").joinpath("data/paper_table6.csv").read_text()
    return {row.pop("dataset"): {k: float(v) for k, v in row.items()} for row in csv.DictReader(text.splitlines())}


@lru_cache(maxsize=None)
def paper_k1_curves() -> dict[str, list[dict]]:
    """The points of the k1 curves of Figs. 10-11 (`data/paper_fig10_11.csv`): {dataset: [{"metric":
    "cmc1", "k1": 11, "baseline": 73.75, "aqe": 78.03, ...}, ...]} (MSMT17 and VERI-Wild small)."""
    text = resources.files("rerankbench").joinpath("data/paper_fig10_11.csv").read_text()
    curves: dict[str, list[dict]] = {}
    for row in csv.DictReader(text.splitlines()):
        dataset, metric, k1 = row.pop("dataset"), row.pop("metric"), int(row.pop("k1"))
        curves.setdefault(dataset, []).append({"metric": metric, "k1": k1, **{m: float(v) for m, v in row.items() if v}})
    return curves
