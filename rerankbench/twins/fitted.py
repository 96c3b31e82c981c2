"""The twins' fitted models (`data/twin_fits.json`), written by `calibrate --fit-table`.

One entry per test set and scale:

    {"vehicleid_small": {"0.1": {"model": {...TwinModel fields...}, "error": 61.4,
                                 "evaluations": 400, "search": "evolution", "cells": [...],
                                 "adopted": false, "command": "...", "date": "...", ...}}}

A fit is stored as soon as it ends, so that no fitting is lost, but a twin only changes when
its entry is adopted (`"adopted": true`), together with the record sets made on it. A twin at
a scale between two adopted fits takes each continuous term interpolated linearly in
log(scale) (fitted at 0.1 and 1.0, a twin at 0.3 is 52% of the way) and each integer term
(group size, ranks, views, cameras an identity) from the nearer fit in log(scale): a look-alike
group of 64 among 3,000 vehicles is one of 8 among 300 at 0.1. Outside them, the nearest fit's
(`adopted_model`).

A dataset's train split has fits of its own, under "<family>/train" (`train_fit_name`; written by
`calibrate --fit-train`), adopted and interpolated the same way: the train split's model fitted
to the paper's Table VI, shared by the family's test sets.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from ..runtime.files import locked, write_text_atomic
from .synthetic import TwinModel

FITS_FILE = Path(__file__).resolve().parent.parent / "data" / "twin_fits.json"


def train_fit_name(family: str) -> str:
    """The key of a dataset family's train-split fits ("vehicleid/train")."""
    return f"{family}/train"


def read_fits(path: str | Path | None = None) -> dict[str, dict[str, dict]]:
    """Every stored fit: {test set: {scale: entry}}; {} when there is no file yet."""
    path = Path(path or FITS_FILE)
    if not path.exists():
        return {}
    try:
        fits = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(fits, dict):
        raise ValueError(f"{path}: expected an object of test sets, got {type(fits).__name__}")
    return fits


def store_fit(dataset: str, scale: float, entry: dict, path: str | Path | None = None) -> Path:
    """Add or replace the entry of (dataset, scale), under a lock, atomically; not adopted."""
    path = Path(path or FITS_FILE)
    with locked(path.with_name(path.name + ".lock")):
        fits = read_fits(path)
        fits.setdefault(dataset, {})[_scale_key(scale)] = {**entry, "adopted": False}
        return write_text_atomic(path, json.dumps(fits, indent=1, sort_keys=True) + "\n")


def stored_model(dataset: str, scale: float, path: str | Path | None = None) -> TwinModel | None:
    """The model stored for (dataset, scale), adopted or not; None when there is none."""
    entry = read_fits(path).get(dataset, {}).get(_scale_key(scale))
    return None if entry is None else _model(entry, dataset, scale, path)


def adopted_scales(dataset: str, path: str | Path | None = None) -> list[float]:
    """The scales at which `dataset` has an adopted fit, ascending; [] while its twin is the registered model."""
    return sorted(float(key) for key, entry in read_fits(path).get(dataset, {}).items() if entry.get("adopted"))


def adopted_model(dataset: str, scale: float, path: str | Path | None = None) -> TwinModel | None:
    """The model of `dataset`'s twin at `scale` from its adopted fits (see the module docstring);
    None when none is adopted."""
    adopted = sorted((float(key), _model(entry, dataset, float(key), path))
                     for key, entry in read_fits(path).get(dataset, {}).items() if entry.get("adopted"))
    if not adopted:
        return None
    below = [fit for fit in adopted if fit[0] <= scale] or adopted[:1]
    above = [fit for fit in adopted if fit[0] >= scale] or adopted[-1:]
    (low, lower), (high, upper) = below[-1], above[0]
    if low == high:
        return lower
    share = (math.log(scale) - math.log(low)) / (math.log(high) - math.log(low))
    values = {}
    for field in dataclasses.fields(TwinModel):
        a, b = getattr(lower, field.name), getattr(upper, field.name)
        if field.type in ("int", int):
            values[field.name] = a if share <= 0.5 else b  # counts are not interpolated: the nearer fit's
        else:
            values[field.name] = round(a + share * (b - a), 6)
    return TwinModel(**values)


def _model(entry: dict, dataset: str, scale: float, path) -> TwinModel:
    try:
        return TwinModel(**entry["model"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{Path(path or FITS_FILE)}: {dataset} at scale {scale:g} is not a model of this generator "
                         f"({error})") from None


def _scale_key(scale: float) -> str:
    return f"{float(scale):g}"
