"""Fitting a twin to the paper's whole table, not to its baseline alone.

Fitted cells (`fitted_cells`): Table V's baseline, AQE, alpha-QE and k-reciprocal at their
default parameters -- CMC@1 and mAP (CMC@1 and CMC@5 on VehicleID) -- and on MSMT17 and
VERI-Wild small the points of the k1 curves of Figs. 10-11 for AQE, alpha-QE and k-reciprocal.
Held out, never fitted: alpha-QE + k-reciprocal, SCA, ECN and GNN (`calibrate --check` sets
their numbers beside the paper's as the model's predictions).

    error(model) = sum over the fitted cells of (twin - paper)^2        (points squared)

where the twin is made afresh from `model` at the fit's scale and seed, as `run` makes it, and
every method runs through the suite's own code under the test set's protocol.

Search (derivative-free, no hand-tuning): scipy's differential evolution over the continuous
terms named (bounds in `SPACE`), seeded, then Nelder-Mead from its best; or Nelder-Mead alone
from the current model (to refine at full scale a model fitted at 0.1). Integer terms (views,
group size, identity rank, scenes) stay as the starting model has them.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from ..engine.contexts import ALL, in_context, prepare_in_context
from ..engine.registry import method
from ..engine.shared import SharedSteps
from ..evaluation.protocols import evaluate_all
from ..harness.memory import peak_rss_mb, reset_peak_rss
from ..reports.paper import paper_k1_curves, paper_table5
from ..twins.synthetic import TwinModel
from ..twins.twin import TwinDataset

FITTED = ("baseline", "aqe", "alpha_qe", "k_reciprocal")
HELD_OUT = ("alpha_qe_k_reciprocal", "sca", "ecn", "gnn")
CURVE_METHODS = ("aqe", "alpha_qe", "k_reciprocal")
SPACE = {  # the continuous terms of TwinModel a fit may move, and their bounds
    "noise": (0.02, 3.0), "view_share": (0.0, 0.9), "quality_spread": (0.0, 1.0),
    "group_similarity": (0.0, 0.97), "group_spread": (0.0, 2.0), "camera_shift": (0.0, 1.5),
    "shared_view": (0.0, 1.5), "view_blend": (0.0, 1.0), "common": (0.0, 2.0), "hard_share": (0.0, 0.6), "hard_signal": (0.05, 1.0),
    "nuisance": (0.0, 2.0), "count_spread": (0.0, 1.5),
}


@dataclass(frozen=True)
class Cell:
    """One fitted number: `metric` of `method` (with `params`) against the paper's `paper`."""

    method: str
    params: tuple  # sorted (name, value) pairs: hashable
    metric: str
    paper: float

    @property
    def label(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params)
        return f"{self.method}{f' ({params})' if params else ''} {self.metric}"


def fitted_cells(dataset: str) -> list[Cell]:
    """The cells a fit of `dataset` aims at: Table V's of the fitted methods, then the k1 curves'."""
    cells = table_cells(dataset, FITTED)
    for point in paper_k1_curves().get(dataset, []):
        cells += [Cell(name, (("k1", point["k1"]),), point["metric"], point[name]) for name in CURVE_METHODS]
    return cells


def table_cells(dataset: str, methods: tuple[str, ...]) -> list[Cell]:
    """Table V's cells of `methods` on `dataset` (HELD_OUT: the model's predictions to check)."""
    return [Cell(name, (), metric, values[name]) for (d, metric), values in paper_table5().items()
            if d == dataset and metric != "time_s" for name in methods if name in values]


def twin_metrics(dataset: TwinDataset, model: TwinModel, cells: list[Cell], scale: float, seed: int = 0) -> dict:
    """{(method, params): metrics} of the twin made from `model`, one run per distinct method
    and parameters (one shared kNN graph for all)."""
    fs = dataset.load(scale, seed, model=model)
    shared = SharedSteps(fs)
    results = {}
    for name, params in dict.fromkeys((c.method, c.params) for c in cells):
        reranker = method(name, **dict(params))
        prepare_in_context(reranker, shared, ALL)
        results[name, params] = evaluate_all(in_context(reranker, shared, ALL), fs)
    return results


def error(cells: list[Cell], metrics: dict) -> float:
    """Sum of squared differences, in points, between the twin's cells and the paper's."""
    return float(sum((metrics[c.method, c.params][c.metric] - c.paper) ** 2 for c in cells))


@dataclass
class FitResult:
    model: TwinModel
    error: float
    evaluations: int
    cells: list[tuple[Cell, float]]  # (cell, twin value) at the best model


def fit_table(dataset: TwinDataset, scale: float, names: list[str], search: str = "evolution",
              evaluations: int = 400, seed: int = 0, start: TwinModel | None = None,
              cells: list[Cell] | None = None, log=print, measure=None) -> FitResult:
    """The model whose twin comes nearest the cells (default: the paper's, `fitted_cells`).

    names: the terms of SPACE to move; start: the model to start from and keep the other
    terms of (default the dataset's). At most `evaluations` twins are made; evolution takes
    two thirds of them (a population of about 12, the starting model among it, as many
    generations as fit) and Nelder-Mead the rest. `measure(model)` gives the cells' metrics
    of a candidate (default: `twin_metrics` on the test split; train_fit.py measures the train split).
    Each twin is logged with its error, terms, time and peak RSS (a full-scale fit can reach
    many GB: plan fits side by side by it)."""
    unknown = [n for n in names if n not in SPACE]
    if unknown:
        raise ValueError(f"cannot fit {', '.join(unknown)}: the fitted terms are {', '.join(SPACE)}")
    cells = fitted_cells(dataset.name) if cells is None else cells
    if not cells:
        raise ValueError(f"{dataset.name}: the paper has no cells to fit it to")
    start = start or dataset.model
    bounds = [SPACE[n] for n in names]
    seen: dict[tuple, tuple[float, dict]] = {}

    def model_of(x) -> TwinModel:
        values = {n: round(float(np.clip(v, *SPACE[n])), 4) for n, v in zip(names, x)}
        return dataclasses.replace(start, **values)

    def objective(x) -> float:
        model = model_of(x)
        key = tuple(getattr(model, n) for n in names)
        if key not in seen:
            reset_peak_rss()
            began = time.perf_counter()
            metrics = measure(model) if measure else twin_metrics(dataset, model, cells, scale, seed)
            seen[key] = (error(cells, metrics), metrics)
            log(f"  {dataset.name} {len(seen):4d}: error {seen[key][0]:9.2f}  " +
                " ".join(f"{n}={v}" for n, v in zip(names, key)) +
                f"  ({time.perf_counter() - began:.0f} s, peak RSS {peak_rss_mb() / 1024:.1f} GB)")
        return seen[key][0]

    x0 = np.array([getattr(start, n) for n in names], dtype=float)
    if search not in ("evolution", "nelder-mead"):
        raise ValueError(f"search must be evolution or nelder-mead, got {search!r}")
    popsize = max(2, math.ceil(12 / len(names)))  # members = popsize x terms, about 12
    generations = evaluations * 2 // 3 // (popsize * len(names)) - 1  # the first population counts as one
    if search == "evolution" and generations < 1:
        raise ValueError(f"evolution needs at least {3 * popsize * len(names)} evaluations for {len(names)} terms")
    if search == "evolution":
        x0 = scipy.optimize.differential_evolution(objective, bounds, popsize=popsize, maxiter=generations,
                                                   seed=seed, polish=False, tol=0, x0=np.clip(x0, *zip(*bounds))).x
    remaining = max(1, evaluations - len(seen))
    scipy.optimize.minimize(objective, x0, method="Nelder-Mead", bounds=bounds,
                            options={"maxfev": remaining, "xatol": 1e-3, "fatol": 0.01,
                                     "initial_simplex": _simplex(x0, bounds)})
    key = min(seen, key=lambda k: seen[k][0])
    model = dataclasses.replace(start, **dict(zip(names, key)))
    best_error, metrics = seen[key]
    return FitResult(model, best_error, len(seen), [(c, metrics[c.method, c.params][c.metric]) for c in cells])


def _simplex(x0: np.ndarray, bounds: list[tuple[float, float]]) -> np.ndarray:
    """Nelder-Mead's first simplex: x0 and one step of a tenth of each term's range, inward."""
    simplex = [x0]
    for i, (low, high) in enumerate(bounds):
        step = (high - low) / 10
        point = x0.copy()
        point[i] = x0[i] + step if x0[i] + step <= high else x0[i] - step
        simplex.append(point)
    return np.array(simplex)
