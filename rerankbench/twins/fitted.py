"""The twins' fitted models (`data/twin_fits.json`), written by `calibrate --fit-table`.

One entry per test set and scale:

    {"vehicleid_small": {"0.1": {"model": {...TwinModel fields...}, "error": 61.4,
                                 "evaluations": 400, "search": "evolution", "cells": [...],
                                 "adopted": false, "command": "...", "date": "...", ...}}}

A fit is stored as soon as it ends, so that no fitting is lost, but a twin only changes when
its entry is adopted (`"adopted": true`), together with the record sets made on it.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..runtime.files import locked, write_text_atomic
from .synthetic import TwinModel

FITS_FILE = Path(__file__).resolve().parent.parent / "data" / "twin_fits.json"


def read_fits(path: str | Path = FITS_FILE) -> dict[str, dict[str, dict]]:
    """Every stored fit: {test set: {scale: entry}}; {} when there is no file yet."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        fits = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(fits, dict):
        raise ValueError(f"{path}: expected an object of test sets, got {type(fits).__name__}")
    return fits


def store_fit(dataset: str, scale: float, entry: dict, path: str | Path = FITS_FILE) -> Path:
    """Add or replace the entry of (dataset, scale), under a lock, atomically; not adopted."""
    path = Path(path)
    with locked(path.with_name(path.name + ".lock")):
        fits = read_fits(path)
        fits.setdefault(dataset, {})[_scale_key(scale)] = {**entry, "adopted": False}
        return write_text_atomic(path, json.dumps(fits, indent=1, sort_keys=True) + "\n")


def stored_model(dataset: str, scale: float, path: str | Path = FITS_FILE) -> TwinModel | None:
    """The model stored for (dataset, scale), adopted or not; None when there is none."""
    entry = read_fits(path).get(dataset, {}).get(_scale_key(scale))
    if entry is None:
        return None
    try:
        return TwinModel(**entry["model"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{Path(path)}: {dataset} at scale {scale:g} is not a model of this generator ({error})") from None


def _scale_key(scale: float) -> str:
    return f"{float(scale):g}"
