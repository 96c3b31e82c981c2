"""The exact kNN graph by row shards: each shard's rows against all rows of X, then concatenated.

For some rows of X (unit rows; a shard lo..hi, or any rows), kNN(i, K) of each is computed from
the products X[rows] X^T in column blocks, keeping each row's running top (K + 8), then ordered by
(similarity desc, index asc) with a tie at K that runs past the margin sorted whole, self first,
distances sqrt(2 - 2 s) except below CLOSE (||x_i - x_j||): the rules of
neighbours.build_knn_graph. Its fp32 products are the same sgemm's, whose value for a pair of
rows does not depend on the block it is computed in (tests/engine/test_exact_graph_variants.py checks the
graphs equal, indices and distances), so the concatenated shards are that graph exactly, and any
rows' lists are its rows. Memory: the rows' (K + 8) candidates, and per 4,096 rows a copy of them
and one 4,096 x 4,096 block of products beside X.
The Ray executor builds a test set's graph from such shards, one task each (harness/ray_graph.py);
ACP's training builds the lists of the probes it will draw alone (acp/sequences.py).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .neighbours import (CLOSE, GRAPH_BLOCK_BYTES, TIE_MARGIN, KnnGraph, _exact_near, _merge, _top, _whole_row,
                         euclidean_from_similarity, padded)


CHUNK_ROWS = 4096  # rows whose lists are computed together: one side of a GRAPH_BLOCK_BYTES block of products


def shard_knn(features: torch.Tensor, lo: int, hi: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices, distances, lowest similarity) of rows lo..hi of X: their kNN(i, k) among all rows."""
    return rows_knn(features, np.arange(lo, hi), k)


def rows_knn(features: torch.Tensor, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indices, distances, lowest similarity) of the given rows of X (any order): each one's
    kNN(i, k) among all rows, the lists of the whole graph; computed CHUNK_ROWS rows at a time."""
    rows = np.asarray(rows, dtype=np.int64)
    k = min(k, features.shape[0])
    parts = [_chunk_knn(features, rows[i:i + CHUNK_ROWS], k) for i in range(0, len(rows), CHUNK_ROWS)]
    if not parts:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32), np.empty(0, np.float32)
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))


def _chunk_knn(features: torch.Tensor, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    total, device = features.shape[0], features.device
    margin = min(total, k + TIE_MARGIN)
    count = len(rows)
    own = torch.as_tensor(rows, device=device)
    block = features[torch.as_tensor(widened(rows, total), device=device)]  # these rows first
    side = int(min(total, max(8, GRAPH_BLOCK_BYTES // (4 * len(block)))))
    values = torch.full((count, margin), -math.inf, device=device)
    candidates = torch.full((count, margin), -1, dtype=torch.int64, device=device)
    lowest = torch.full((count,), math.inf, device=device)
    every = slice(0, count)
    for b in range(0, total, side):
        cols = slice(b, min(b + side, total))
        similarity = (block @ features[cols].T)[:count]
        lowest = torch.minimum(lowest, similarity.amin(dim=1))
        inside = torch.nonzero((own >= cols.start) & (own < cols.stop)).flatten()
        similarity[inside, own[inside] - b] = math.inf  # row i itself first
        _merge(values, candidates, every, *torch.topk(similarity, min(margin, similarity.shape[1]), dim=1), b)
    values, candidates = _top(values, candidates, k, margin < total, lambda r: _whole_row(features, int(rows[r])))
    values[:, 0] = 1.0
    close = values > 1.0 - CLOSE**2 / 2
    close[:, 0] = False
    distance = _exact_near(values, close, features, own, candidates)
    return candidates.cpu().numpy(), distance.cpu().numpy(), lowest.cpu().numpy()


def widened(rows: np.ndarray, total: int, least: int = 16) -> np.ndarray:
    """`rows`, then other rows of X up to `least` rows in all (MKL computes a product of fewer than 8
    rows another way, whose last bits differ); the extra rows are computed and dropped."""
    if len(rows) >= least or total <= len(rows):
        return rows
    others = np.setdiff1d(np.arange(min(total, least + len(rows))), rows)
    return np.concatenate([rows, others[:least - len(rows)]])


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
