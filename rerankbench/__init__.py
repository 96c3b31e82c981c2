"""rerankbench: re-ranking methods for person and vehicle re-ID behind one interface.

Notebook API:
    fs = rerankbench.load_dataset("market1501", scale=0.1)     # a twin, or FeatureSet(...)
    d = rerankbench.rerank("alpha_qe", fs, k=5)               # M x N distances
    rerankbench.evaluate(d, fs)                               # {"cmc1": ..., "map": ..., ...}
    frame = rerankbench.load_records("results")               # the stored records, a pandas DataFrame
    rerankbench.load_per_query(frame.iloc[0])                 # one record's queries, one row each
"""
from __future__ import annotations

import os

import numpy as np

from .features.featureset import FeatureError, FeatureSet, Split

__version__ = "0.1.0"
__all__ = ["FeatureError", "FeatureSet", "Split", "evaluate", "load_dataset", "load_per_query", "load_records", "rerank"]


def load_dataset(name: str, scale: float = 0.1, seed: int = 0, dim: int = 2048, with_train: bool = False,
                 cache_dir: str | None = None) -> FeatureSet:
    """The synthetic twin of one registered test set (a family such as "veriwild" names several: pick one)."""
    from .engine.registry import datasets, select
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: name must be a test set's name (str), got {_described(name)}")
    chosen = select(name, datasets(), "dataset")  # refuses unknown names
    if len(chosen) != 1:
        raise ValueError(f"load_dataset takes one test set, and {name!r} names {', '.join(chosen) or 'none'}")
    return datasets()[chosen[0]].load(scale, seed, dim, with_train, cache_dir)


def rerank(method_name: str, feature_set: FeatureSet, device: str = "cpu", context: str = "all",
           knn: str = "exact", knn_params: dict | None = None, **params) -> np.ndarray:
    """The M x N query-to-gallery distances of a method on a feature set (device: cpu, cuda or auto;
    context: all, the queries and gallery together, or gallery, each query against the gallery alone;
    knn: the kNN graph's backend, exact, flat, ivf or hnsw, with knn_params such as {"nprobe": 64})."""
    from .engine.contexts import check_context, in_context
    from .engine.distances import materialise
    from .engine.knn_backends import parse_knn
    from .engine.registry import method
    from .engine.shared import SharedSteps
    if not isinstance(method_name, str):
        raise TypeError(f"rerank: method_name must be a method's name (str), e.g. 'aqe', got {_described(method_name)}")
    _check_feature_set(feature_set, "rerank")
    check_context(context)
    choice = parse_knn(knn, knn_params or {})
    if context != "all":
        choice.check_gallery_context()
    reranker = method(method_name, **params)
    shared = SharedSteps(feature_set, device, knn=choice)
    m, n = feature_set.num_query, feature_set.num_gallery
    return materialise(in_context(reranker, shared, context), np.arange(m), np.arange(m, m + n))


def evaluate(distances: np.ndarray, feature_set: FeatureSet) -> dict:
    """Metrics (percent) of M x N distances for the feature set's query and gallery as given
    (a single trial; the harness does VehicleID's 10 draws)."""
    from .evaluation.metrics import score_queries, summarise
    _check_feature_set(feature_set, "evaluate")
    try:
        distances = np.asarray(distances, dtype=np.float32)
    except (TypeError, ValueError) as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"evaluate: distances must be an M x N array of numbers (numpy, torch or nested lists), got "
                   f"{_described(distances)} ({error})") from None
    expected = (feature_set.num_query, feature_set.num_gallery)
    if distances.shape != expected:
        raise ValueError(f"distances have shape {distances.shape}, the feature set needs {expected}")
    nan = np.isnan(distances)
    if nan.any():
        first = tuple(int(i) for i in np.argwhere(nan)[0])
        raise ValueError(f"evaluate: distances hold {int(nan.sum())} NaN values (first at query {first[0]}, "
                         f"gallery item {first[1]})")
    q, g = feature_set.query, feature_set.gallery
    scores = score_queries([(0, distances)], q.ids, g.ids, q.cams, g.cams)
    return summarise(scores, official=feature_set.protocol == "market-official")


def load_records(results: str = "results"):
    """The records of a results folder as a pandas DataFrame, one row a record: parameters and
    metrics as flat columns (`params.k1`, `map`, `wall_s`, ...), `cell`, `context`, `results`;
    malformed lines are skipped with a warning naming them (rerankbench.harness.frame)."""
    from .harness.frame import load_records as load
    if not isinstance(results, (str, os.PathLike)):
        raise TypeError(f"load_records: results must be a folder (str or path), got {_described(results)}")
    return load(results)


def load_per_query(record):
    """One record's per-query results (a row of `load_records`) as a DataFrame, one row a query:
    draw (VehicleID's), query_row, num_matches, first_rank, ap, ap_trapezoid, inp. A ValueError
    naming the file when the record has none (written before they were kept) or it is damaged."""
    from .harness.frame import load_per_query as load
    return load(record)


def _check_feature_set(value, function: str) -> None:
    if not isinstance(value, FeatureSet):
        raise TypeError(f"{function}: feature_set must be a FeatureSet, e.g. rerankbench.load_dataset('market1501'), "
                        f"got {_described(value)}")


def _described(value) -> str:
    """A wrong argument in an error message: its type, and its value when short (e.g. "str 'aqe'")."""
    text = repr(value)
    return type(value).__name__ + (f" {text}" if len(text) <= 40 else "")
