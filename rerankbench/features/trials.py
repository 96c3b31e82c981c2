"""The trials of each evaluation protocol (spec/evaluation.md): which rows of X = [Q; G] are
queries and which gallery. evaluation/protocols.py scores them.

- "market", "market-official": one trial, Q against G.
- "vehicleid": 10 seeded draws over the pool Q + G; in each, one random image per identity
  forms the gallery and every other image is a query.
"""
from __future__ import annotations

import numpy as np

from .featureset import FeatureSet

PROTOCOLS = ("market", "market-official", "vehicleid")
VEHICLEID_DRAWS = 10


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    return name


def trials(fs: FeatureSet) -> list[tuple[np.ndarray, np.ndarray]]:
    """(query rows, gallery rows) of X = [Q; G] for each trial of the feature set's protocol."""
    m, t = fs.num_query, fs.num_query + fs.num_gallery
    if fs.protocol != "vehicleid":
        return [(np.arange(m), np.arange(m, t))]
    ids = np.concatenate([fs.query.ids, fs.gallery.ids])
    draws = []
    for seed in range(VEHICLEID_DRAWS):
        gallery = one_per_identity(ids, np.random.default_rng(seed))
        draws.append((np.setdiff1d(np.arange(t), gallery), gallery))
    return draws


def one_per_identity(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices (sorted) of one randomly chosen row per identity."""
    order = rng.permutation(len(ids))
    _, first = np.unique(ids[order], return_index=True)
    return np.sort(order[first])


def candidate_rows(fs: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """Every row that can be a query, and every row that can be in the gallery, over all trials."""
    m, t = fs.num_query, fs.num_query + fs.num_gallery
    if fs.protocol == "vehicleid":
        return np.arange(t), np.arange(t)
    return np.arange(m), np.arange(m, t)
