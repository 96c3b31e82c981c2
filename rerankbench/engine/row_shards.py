"""The exact kNN graph by row shards: each shard's rows against all rows of X, then concatenated.

For rows lo..hi of X (unit rows), kNN(i, K) for i in the shard is computed from the products
X[lo:hi] X^T in column blocks, keeping each row's running top (K + 8), then ordered by
(similarity desc, index asc) with a tie at K that runs past the margin sorted whole, self first,
distances sqrt(2 - 2 s) except below CLOSE (||x_i - x_j||): the rules of
neighbours.build_knn_graph. Its fp32 products are the same sgemm's, whose value for a pair of
rows does not depend on the block it is computed in (tests/engine/test_exact_graph_variants.py checks the
graphs equal, indices and distances), so the concatenated shards are that graph exactly. Memory:
the shard's (hi - lo) x (K + 8) candidates and one (hi - lo) x 4096 block of products beside X.
The Ray executor builds a test set's graph from such shards, one task each (harness/ray_graph.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .neighbours import CLOSE, GRAPH_BLOCK_BYTES, TIE_MARGIN, KnnGraph, _exact_near, _merge, _top, _whole_row, euclidean_from_similarity


def shard_knn(features: torch.Tensor, lo: int, hi: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices, distances, lowest similarity) of rows lo..hi of X: their kNN(i, k) among all rows."""
    total, device = features.shape[0], features.device
    k = min(k, total)
    margin = min(total, k + TIE_MARGIN)
    rows = slice(lo, hi)
    count = hi - lo
    side = int(min(total, max(8, GRAPH_BLOCK_BYTES // (4 * max(count, 1)))))
    values = torch.full((count, margin), -math.inf, device=device)
    candidates = torch.full((count, margin), -1, dtype=torch.int64, device=device)
    lowest = torch.full((count,), math.inf, device=device)
    every = slice(0, count)
    wide = padded(lo, hi, total)  # sgemm of at least 16 rows: its values then do not depend on the block
    for b in range(0, total, side):
        cols = slice(b, min(b + side, total))
        similarity = (features[wide] @ features[cols].T)[lo - wide.start:hi - wide.start]
        lowest = torch.minimum(lowest, similarity.amin(dim=1))
        if max(lo, b) < min(hi, cols.stop):  # row i itself first
            own = torch.arange(max(lo, b), min(hi, cols.stop), device=device)
            similarity[own - lo, own - b] = math.inf
        _merge(values, candidates, every, *torch.topk(similarity, min(margin, similarity.shape[1]), dim=1), b)
    values, candidates = _top(values, candidates, k, margin < total, lambda r: _whole_row(features, lo + r))
    values[:, 0] = 1.0
    close = values > 1.0 - CLOSE**2 / 2
    close[:, 0] = False
    distance = _exact_near(values, close, features, torch.arange(lo, hi, device=device), candidates)
    return candidates.cpu().numpy(), distance.cpu().numpy(), lowest.cpu().numpy()


def padded(lo: int, hi: int, total: int, least: int = 16) -> slice:
    """Rows lo..hi widened to at least `least` rows of X (MKL computes a product of fewer than 8 rows
    another way, whose last bits differ); the extra rows are computed and dropped."""
    if hi - lo >= least or total <= hi - lo:
        return slice(lo, hi)
    start = max(0, min(lo, total - least))
    return slice(start, max(hi, min(total, start + least)))


def shard_bounds(total: int, shards: int) -> list[tuple[int, int]]:
    """`shards` contiguous row ranges of about equal size covering 0..total."""
    edges = np.linspace(0, total, max(1, min(shards, total)) + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def merge_shards(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> KnnGraph:
    """The graph of X from its shards' (indices, distances, lowest), in row order."""
    indices, distances, lowest = (np.concatenate([p[i] for p in parts]) for i in range(3))
    farthest = euclidean_from_similarity(torch.from_numpy(lowest)).numpy()
    return KnnGraph(indices, distances, farthest)


def build_by_shards(features: torch.Tensor, k: int, shards: int = 4) -> KnnGraph:
    """The exact graph of X from `shards` row shards computed here one after the other."""
    return merge_shards([shard_knn(features, a, b, k) for a, b in shard_bounds(len(features), shards)])
