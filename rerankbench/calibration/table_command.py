"""`python -m rerankbench calibrate --fit-table`: fit each named twin to the paper's whole table
(table_fit.py), `calibrate --fit-train`: its family's train split to Table VI (train_fit.py), and
store every fit with how it was made (twins/fitted.py), not adopted; and `calibrate --ablate`: a
model's terms off one at a time (term_ablation.py)."""
from __future__ import annotations

import dataclasses
import time

from ..engine.registry import datasets
from ..harness.provenance import git_commit, versions
from ..twins.fitted import FITS_FILE, store_fit, stored_model, train_fit_name
from ..twins.synthetic import TwinModel
from .table_fit import FITTED, HELD_OUT, SPACE, FitResult, fit_table, table_cells, twin_metrics
from .train_fit import TRAIN_TERMS, fit_train
from .term_ablation import ablation_table


def fit_tables(names: list[str], scale: float, search: str, evaluations: int, terms: str | None, start: str,
               settings: list[str], fits: str | None, command: str, table_only: bool = False) -> None:
    """Fit each named twin to its fitted cells (`fitted_cells`; with `table_only`, Table V's alone,
    without the k1 curves: 4 runs a twin instead of up to 28) and store the fit, not adopted."""
    chosen = terms.split(",") if terms else list(SPACE)
    path = fits or FITS_FILE
    for name in names:
        dataset = datasets()[name]
        model = _starting_model(dataset.model, name, start, path)
        model = dataclasses.replace(model, **_settings(settings))
        began = time.perf_counter()
        cells = table_cells(name, FITTED) if table_only else None
        result = fit_table(dataset, scale, chosen, search, evaluations, start=model, cells=cells)
        entry = {**_entry(result, search, chosen, began, command), "k1_curves": not table_only}
        held_out = table_cells(name, HELD_OUT)
        predicted = twin_metrics(dataset, result.model, held_out, scale)
        entry["held_out"] = [{"cell": c.label, "paper": c.paper, "twin": round(predicted[c.method, c.params][c.metric], 2)}
                             for c in held_out]
        _store(name, scale, entry, path)


def fit_trains(names: list[str], scale: float, search: str, evaluations: int, terms: str | None, start: str,
               settings: list[str], fits: str | None, command: str) -> None:
    """Fit the train split of each named test set's family to Table VI (train_fit.py), from the test
    set's own model at `scale` (`start` "registered") or a stored train fit (`start` a scale)."""
    chosen = terms.split(",") if terms else list(TRAIN_TERMS)
    path = fits or FITS_FILE
    for family, name in {datasets()[name].family: name for name in names}.items():
        dataset = datasets()[name]
        key = train_fit_name(family)
        model = dataset.model_at(scale) if start == "registered" else _starting_model(dataset.model, key, start, path)
        began = time.perf_counter()
        result = fit_train(dataset, scale, chosen, search, evaluations, dataclasses.replace(model, **_settings(settings)))
        _store(key, scale, {**_entry(result, search, chosen, began, command), "test_set": name}, path)


def _entry(result: FitResult, search: str, terms: list[str], began: float, command: str) -> dict:
    """A fit as stored: its model, error, cells and how it was made."""
    return {"model": dataclasses.asdict(result.model), "error": round(result.error, 3),
            "evaluations": result.evaluations, "search": search, "terms": terms, "seed": 0,
            "cells": [{"cell": cell.label, "paper": cell.paper, "twin": round(value, 2)} for cell, value in result.cells],
            "wall_s": round(time.perf_counter() - began, 1), "command": command,
            "git_commit": git_commit(), "versions": versions(), "date": time.strftime("%Y-%m-%d")}


def _store(name: str, scale: float, entry: dict, path) -> None:
    written = store_fit(name, scale, entry, path)
    print(f"{name} at scale {scale:g}: error {entry['error']:.1f} after {entry['evaluations']} twins; stored in {written}")
    for title, rows in (("fitted", entry["cells"]), ("held out", entry.get("held_out", []))):
        if rows:
            print(f"  {title}:")
        for row in rows:
            print(f"    {row['cell']:32s} paper {row['paper']:6.2f}  twin {row['twin']:6.2f}  {row['twin'] - row['paper']:+6.2f}")


def ablate(names: list[str], scale: float, start: str, settings: list[str], fits: str | None) -> None:
    """Print each twin's term ablation (term_ablation.py) at `scale`, for the model `start` names."""
    for name in names:
        dataset = datasets()[name]
        model = dataclasses.replace(_starting_model(dataset.model, name, start, fits or FITS_FILE), **_settings(settings))
        print(ablation_table(dataset, model, scale), flush=True)


def _starting_model(registered: TwinModel, name: str, start: str, path) -> TwinModel:
    if start == "registered":
        return registered
    try:
        scale = float(start)
    except ValueError:
        raise ValueError(f"--start takes 'registered' or a scale, got {start!r}") from None
    stored = stored_model(name, scale, path)
    if stored is None:
        raise ValueError(f"--start {start}: {path} holds no fit of {name} at scale {scale:g}")
    return stored


def _settings(settings: list[str]) -> dict:
    """--set TERM=VALUE -> {term: value}, typed as TwinModel declares the term."""
    types = {f.name: f.type for f in dataclasses.fields(TwinModel)}
    values = {}
    for text in settings:
        term, equals, value = text.partition("=")
        if not equals or term not in types:
            raise ValueError(f"--set {text!r}: expected TERM=VALUE with a term of the twin model ({', '.join(types)})")
        values[term] = int(value) if types[term] in ("int", int) else float(value)
    return values
