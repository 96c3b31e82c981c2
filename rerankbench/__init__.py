"""rerankbench: re-ranking methods for person and vehicle re-ID behind one interface.

Notebook API:
    fs = rerankbench.load_dataset("market1501", scale=0.1)     # a twin, or FeatureSet(...)
    d = rerankbench.rerank("alpha_qe", fs, k=5)               # M x N distances
    rerankbench.evaluate(d, fs)                               # {"cmc1": ..., "map": ..., ...}
"""
from __future__ import annotations

import numpy as np

from .features.featureset import FeatureError, FeatureSet, Split

__version__ = "0.1.0"
__all__ = ["FeatureError", "FeatureSet", "Split", "evaluate", "load_dataset", "rerank"]


def load_dataset(name: str, scale: float = 0.1, seed: int = 0, dim: int = 2048, with_train: bool = False,
                 cache_dir: str | None = None) -> FeatureSet:
    """The synthetic twin of a registered test set."""
    from .engine.registry import datasets, select
    (chosen,) = select(name, datasets(), "dataset")[:1]
    return datasets()[chosen].load(scale, seed, dim, with_train, cache_dir)


def rerank(method_name: str, feature_set: FeatureSet, device: str = "cpu", **params) -> np.ndarray:
    """The M x N query-to-gallery distances of a method on a feature set."""
    from .engine.distances import materialise
    from .engine.registry import method
    from .engine.shared import SharedSteps
    reranker = method(method_name, **params)
    shared = SharedSteps(feature_set, device)
    m, n = feature_set.num_query, feature_set.num_gallery
    return materialise(reranker.rerank(shared), np.arange(m), np.arange(m, m + n))


def evaluate(distances: np.ndarray, feature_set: FeatureSet) -> dict:
    """Metrics (percent) of M x N distances for the feature set's query and gallery as given
    (a single trial; the harness does VehicleID's 10 draws)."""
    from .evaluation.metrics import score_queries, summarise
    distances = np.asarray(distances, dtype=np.float32)
    expected = (feature_set.num_query, feature_set.num_gallery)
    if distances.shape != expected:
        raise ValueError(f"distances have shape {distances.shape}, the feature set needs {expected}")
    q, g = feature_set.query, feature_set.gallery
    scores = score_queries([(0, distances)], q.ids, g.ids, q.cams, g.cams)
    return summarise(scores, official=feature_set.protocol == "market-official")
