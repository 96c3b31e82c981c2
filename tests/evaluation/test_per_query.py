"""Per-query results: what every query scored in every trial, and the protocol's metrics as their weighted sums."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_featureset, plain_euclidean, plain_normalise
from rerankbench.engine.distances import PrecomputedDistances
from rerankbench.evaluation.per_query import DTYPES, PerQuery
from rerankbench.evaluation.protocols import evaluate_all, score_trials
from rerankbench.features.trials import trials
from rerankbench.runtime.files import DamagedFile


def scored_set(protocol: str, seed: int = 0):
    """A clustered toy set under `protocol`, its exact distances, and its per-query results."""
    fs = make_featureset(num_query=40, num_gallery=160, dim=8, num_ids=20, seed=seed, clustered=True, spread=0.9,
                         protocol=protocol)
    x = plain_normalise(fs.stacked())
    t = len(x)
    distances = PrecomputedDistances(plain_euclidean(x, x).astype(np.float32), np.arange(t), np.arange(t))
    return fs, distances, PerQuery.of_trials(score_trials(distances, fs))


@pytest.mark.parametrize("protocol", ["market", "market-official", "vehicleid"])
def test_the_metrics_are_the_weighted_sums_of_the_per_query_values(protocol):
    fs, distances, per_query = scored_set(protocol)
    metrics = evaluate_all(distances, fs)
    for metric in ("cmc1", "cmc5", "cmc10", "map", "minp"):
        counted, values = per_query.metric_terms(metric, official=protocol == "market-official")
        assert float((per_query.weights(counted) * values).sum()) == pytest.approx(metrics[metric], abs=1e-9), metric
    if protocol == "market-official":  # every query counts, with the trapezoid AP
        counted, values = per_query.metric_terms("map", official=True)
        assert counted.all() and (values == 100 * per_query.ap_trapezoid).all()


def test_each_vehicleid_draw_keeps_its_own_queries():
    fs, _, per_query = scored_set("vehicleid")
    draws = trials(fs)
    assert len(per_query) == sum(len(rows) for rows, _ in draws)
    for number, (query_rows, _) in enumerate(draws):
        np.testing.assert_array_equal(per_query.query_row[per_query.draw == number], query_rows)
    assert np.unique(per_query.draw).tolist() == list(range(10))


def test_hand_worked_terms():
    """Two trials; trial 0: AP 1 and 0.5 and a query without a match, trial 1: AP 0.25."""
    per_query = PerQuery(draw=np.array([0, 0, 0, 1], np.int16), query_row=np.array([3, 4, 5, 3], np.int32),
                         num_matches=np.array([1, 2, 0, 1], np.int32), first_rank=np.array([1, 2, 0, 4], np.int32),
                         ap=np.array([1.0, 0.5, 0.0, 0.25]), ap_trapezoid=np.array([1.0, 0.4, 0.0, 0.2]),
                         inp=np.array([1.0, 0.5, 0.0, 0.25]))
    counted, values = per_query.metric_terms("map")
    assert counted.tolist() == [True, True, False, True]
    assert per_query.weights(counted).tolist() == [0.25, 0.25, 0.0, 0.5]  # 1 / (2 trials x 2 queries), 1 / (2 x 1)
    assert float((per_query.weights(counted) * values).sum()) == (100 * 0.75 + 25.0) / 2
    counted, values = per_query.metric_terms("cmc1")
    assert values.tolist() == [100.0, 0.0, 0.0, 0.0]
    counted, values = per_query.metric_terms("cmc5", official=True)
    assert counted.all() and values.tolist() == [100.0, 100.0, 0.0, 100.0]
    with pytest.raises(ValueError, match="unknown metric 'ndcg'"):
        per_query.metric_terms("ndcg")


def test_bytes_round_trip_and_damage_is_named():
    _, _, per_query = scored_set("vehicleid")
    data = per_query.to_bytes()
    back = PerQuery.from_bytes(data, "somewhere.npz")
    for name, dtype in DTYPES.items():
        np.testing.assert_array_equal(getattr(back, name), getattr(per_query, name))
        assert getattr(back, name).dtype == dtype
    with pytest.raises(DamagedFile, match=r"^somewhere.npz: unreadable"):
        PerQuery.from_bytes(data[:len(data) // 2], "somewhere.npz")
    short = PerQuery(**{name: getattr(per_query, name)[:-1] if name == "ap" else getattr(per_query, name)
                        for name in DTYPES})
    with pytest.raises(DamagedFile, match=r"somewhere.npz: ap is float64 of shape"):
        PerQuery.from_bytes(short.to_bytes(), "somewhere.npz")
