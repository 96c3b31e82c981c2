"""Metrics under each evaluation protocol (spec/evaluation.md): a method's distances scored over
the protocol's trials (features/trials.py) and summarised as the protocol says.

- "market": the canonical fast-reid / torchreid protocol, one trial: Q against G.
- "market-official": the same ranking, scored like Market-1501's official MATLAB code
  (trapezoid AP, averaged over all queries).
- "vehicleid": 10 seeded draws over the pool Q + G; no camera filtering. Metrics are the
  mean over the draws, with their standard deviation as `<metric>_std`.

`score_trials` keeps every query's scores (per_query.py stores them with the record);
`summarise_trials` turns them into the protocol's metrics; `evaluate_all` does both.
"""
from __future__ import annotations

import numpy as np

from ..engine.distances import Distances
from ..features.featureset import FeatureSet
from ..features.trials import trials
from .metrics import QueryScores, score_queries, summarise

Scored = list[tuple[np.ndarray, QueryScores]]  # (query rows of X, their scores) per trial


def score_trials(distances: Distances, fs: FeatureSet) -> Scored:
    """Every query's scores in each trial of the feature set's protocol, with the query rows."""
    ids = np.concatenate([fs.query.ids, fs.gallery.ids])
    cams = None if fs.query.cams is None or fs.protocol == "vehicleid" else np.concatenate([fs.query.cams, fs.gallery.cams])
    scored = []
    for query_rows, gallery_rows in trials(fs):
        scores = score_queries(distances.blocks(query_rows, gallery_rows), ids[query_rows], ids[gallery_rows],
                               None if cams is None else cams[query_rows], None if cams is None else cams[gallery_rows])
        scored.append((query_rows, scores))
    return scored


def summarise_trials(scored: Scored, fs: FeatureSet) -> dict:
    """Metrics (percent) of the trials' scores as the protocol averages them."""
    results = [summarise(scores, official=fs.protocol == "market-official") for _, scores in scored]
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


def evaluate_all(distances: Distances, fs: FeatureSet) -> dict:
    """Metrics (percent) of a method's distances under the feature set's protocol."""
    return summarise_trials(score_trials(distances, fs), fs)
