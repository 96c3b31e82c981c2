"""The exact k-nearest-neighbour graph over X = [Q; G], shared by every method.

kNN(i, k) (spec/methods.md) is the list of the k nearest rows of X to row i, nearest first,
row i itself first. Rows are L2-normalised, so nearest = largest inner product and the
Euclidean distance is sqrt(2 - 2 x_i . x_j). The graph is built block by block: each block
of rows is multiplied with all of X and only its top-K is kept, so memory is O(T K + B T),
never T x T. Ties are broken towards the smaller row index (stable order).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .progress import progress


@dataclass(frozen=True)
class KnnGraph:
    """indices[i, :k] = kNN(i, k); distances[i, j] = ||x_i - x_indices[i, j]|| (float32)."""

    indices: np.ndarray
    distances: np.ndarray

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def truncated(self, k: int) -> "KnnGraph":
        if k > self.k:
            raise ValueError(f"the graph holds {self.k} neighbours per row, {k} were asked for")
        return KnnGraph(self.indices[:, :k], self.distances[:, :k])


def euclidean_from_similarity(similarity: torch.Tensor) -> torch.Tensor:
    """||a - b|| = sqrt(max(2 - 2 a.b, 0)) for unit vectors a, b; computed in place."""
    return similarity.mul_(-2.0).add_(2.0).clamp_(min=0.0).sqrt_()


def block_rows(total: int, columns: int, budget_bytes: int = 512 << 20) -> int:
    """Rows per block so that one (rows x columns) float32 block stays within budget."""
    return int(max(1, min(total, budget_bytes // (4 * max(columns, 1)))))


def build_knn_graph(features: torch.Tensor, k: int, show_progress: bool = False) -> KnnGraph:
    """Exact kNN graph of the L2-normalised rows of `features` (T x D), self first.

    Candidates are taken with a margin beyond k and re-sorted by (similarity desc, index asc)
    so that ties at equal similarity come out in index order; a row whose tie runs past the
    margin is sorted whole.
    """
    total = features.shape[0]
    k = min(k, total)
    margin = min(total, k + 8)
    rows = block_rows(total, total)
    indices = np.empty((total, k), dtype=np.int64)
    distances = np.empty((total, k), dtype=np.float32)
    for start in progress(range(0, total, rows), "kNN graph", show_progress):
        stop = min(start + rows, total)
        similarity = features[start:stop] @ features.T
        own = torch.arange(start, stop, device=features.device)
        similarity[own - start, own] = float("inf")  # row i itself first
        values, candidates = torch.topk(similarity, margin, dim=1)
        values, candidates = _stable_order(values, candidates)
        crowded = torch.nonzero(values[:, k - 1] == values[:, -1]).flatten() if margin < total else []
        if len(crowded):  # a tie runs past the margin: take the whole row in stable order
            full = torch.sort(similarity[crowded], dim=1, descending=True, stable=True)
            values[crowded], candidates[crowded] = full.values[:, :margin], full.indices[:, :margin]
        values, candidates = values[:, :k], candidates[:, :k]
        values[:, 0] = 1.0
        indices[start:stop] = candidates.cpu().numpy()
        distances[start:stop] = euclidean_from_similarity(values).cpu().numpy()
    return KnnGraph(indices, distances)


def _stable_order(values: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by value descending, then by index ascending."""
    by_index = torch.argsort(candidates, dim=1, stable=True)
    values, candidates = values.gather(1, by_index), candidates.gather(1, by_index)
    by_value = torch.argsort(values, dim=1, descending=True, stable=True)
    return values.gather(1, by_value), candidates.gather(1, by_value)
