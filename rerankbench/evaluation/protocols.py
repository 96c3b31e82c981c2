"""Evaluation protocols (spec/evaluation.md): which rows are queries and gallery, and how
per-query scores become the reported metrics.

- "market": the canonical fast-reid / torchreid protocol, one trial: Q against G.
- "market-official": the same ranking, scored like Market-1501's official MATLAB code
  (trapezoid AP, averaged over all queries).
- "vehicleid": 10 seeded draws over the pool Q + G; in each, one random image per identity
  forms the gallery and every other image is a query; no camera filtering. Metrics are the
  mean over the draws, with their standard deviation as `<metric>_std`.
"""
from __future__ import annotations

import numpy as np

from .distances import Distances
from .evaluation import score_queries, summarise
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


def evaluate_all(distances: Distances, fs: FeatureSet) -> dict:
    """Metrics (percent) of a method's distances under the feature set's protocol."""
    ids = np.concatenate([fs.query.ids, fs.gallery.ids])
    cams = None if fs.query.cams is None or fs.protocol == "vehicleid" else np.concatenate([fs.query.cams, fs.gallery.cams])
    results = []
    for query_rows, gallery_rows in trials(fs):
        scores = score_queries(distances.blocks(query_rows, gallery_rows), ids[query_rows], ids[gallery_rows],
                               None if cams is None else cams[query_rows], None if cams is None else cams[gallery_rows])
        results.append(summarise(scores, official=fs.protocol == "market-official"))
    if len(results) == 1:
        return results[0]
    summary = {}
    for key in results[0]:
        values = np.array([r[key] for r in results], dtype=float)
        summary[key] = float(values.mean()) if key.startswith(("cmc", "map", "minp")) else results[0][key]
        if key.startswith(("cmc", "map", "minp")):
            summary[f"{key}_std"] = float(values.std())
    summary["trials"] = len(results)
    return summary
