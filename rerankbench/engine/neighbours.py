"""The exact k-nearest-neighbour graph over X = [Q; G], shared by every method.

kNN(i, k) (spec/methods.md) is the list of the k nearest rows of X to row i, nearest first,
row i itself first. Rows are L2-normalised, so nearest = largest inner product and the
Euclidean distance is sqrt(2 - 2 x_i . x_j). The graph is built from square blocks of X X^T
on and above the diagonal, keeping only each row's running top-K, so memory is O(T K + B^2),
never T x T. Ties are broken towards the smaller row index (stable order).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..runtime.progress import progress


@dataclass(frozen=True)
class KnnGraph:
    """indices[i, :k] = kNN(i, k); distances[i, j] = ||x_i - x_indices[i, j]|| (float32);
    farthest[i] = max_j ||x_i - x_j|| over all rows of X (k-reciprocal and SCA divide each row of
    the distance matrix by it)."""

    indices: np.ndarray
    distances: np.ndarray
    farthest: np.ndarray

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def truncated(self, k: int) -> "KnnGraph":
        if k > self.k:
            raise ValueError(f"the graph holds {self.k} neighbours per row, {k} were asked for")
        return KnnGraph(self.indices[:, :k], self.distances[:, :k], self.farthest)

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(indices, distances, farthest) as torch tensors on `device`."""
        return tuple(torch.as_tensor(a, device=device) for a in (self.indices, self.distances, self.farthest))


CLOSE = 0.05  # below this distance, graph distances are computed from the difference of the rows


def euclidean_from_similarity(similarity: torch.Tensor) -> torch.Tensor:
    """||a - b|| = sqrt(max(2 - 2 a.b, 0)) for unit vectors a, b; computed in place."""
    return similarity.mul_(-2.0).add_(2.0).clamp_(min=0.0).sqrt_()


BLOCK_BYTES = 512 << 20  # one float32 block of products
GRAPH_BLOCK_BYTES = 64 << 20  # one square block of X X^T in the kNN graph (side 4096)


def pair_distances(features: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, piece: int = 1 << 16) -> torch.Tensor:
    """||x_rows[e] - x_cols[e]|| for each pair e, from the difference itself: exact to float
    rounding near 0 too, where sqrt(2 - 2 x.y) in float32 is off by up to ~5e-4 (duplicates)."""
    out = torch.empty(len(rows), dtype=features.dtype, device=features.device)
    for lo in range(0, len(rows), piece):
        out[lo:lo + piece] = torch.linalg.vector_norm(features[rows[lo:lo + piece]] - features[cols[lo:lo + piece]], dim=1)
    return out


def block_rows(total: int, columns: int, budget_bytes: int = BLOCK_BYTES) -> int:
    """Rows per block so that one (rows x columns) float32 block stays within budget."""
    return int(max(1, min(total, budget_bytes // (4 * max(columns, 1)))))


def build_knn_graph(features: torch.Tensor, k: int, show_progress: bool = False,
                    keep: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> KnnGraph:
    """Exact kNN graph of the L2-normalised rows of `features` (T x D), self first.

    X X^T is symmetric, so it is computed in square blocks on and above the diagonal only (half
    the products), each block feeding the running candidates of its rows and of its columns.
    Candidates are kept with a margin beyond k and finally sorted by (similarity desc, index
    asc), so that ties come out in index order; a row whose tie runs past the margin is sorted
    whole. Distances are sqrt(2 - 2 s), except below CLOSE, where a float32 s (good to ~1e-7)
    would leave them off by up to ~5e-4: there they are ||x_i - x_j||.

    keep = (rows, columns, out): also write ||x_r - x_c|| for those rows and columns of X into
    `out` (len(rows) x len(columns), e.g. a memory map) from the same products.
    """
    total, device = features.shape[0], features.device
    k = min(k, total)
    margin = min(total, k + 8)
    side = int(min(total, math.isqrt(GRAPH_BLOCK_BYTES // 4)))
    values = torch.full((total, margin), -math.inf, device=device)
    candidates = torch.full((total, margin), -1, dtype=torch.int64, device=device)
    lowest = torch.full((total,), math.inf, device=device)
    starts = range(0, total, side)
    pairs = [(a, b) for a in starts for b in starts if b >= a]
    for a, b in progress(pairs, "kNN graph", show_progress):
        rows, cols = slice(a, min(a + side, total)), slice(b, min(b + side, total))
        similarity = features[rows] @ features[cols].T
        lowest[rows] = torch.minimum(lowest[rows], similarity.amin(dim=1))
        lowest[cols] = torch.minimum(lowest[cols], similarity.amin(dim=0))
        if keep is not None:
            _keep(keep, similarity, rows, cols)
            if a != b:
                _keep(keep, similarity.T, cols, rows)
        if a == b:
            similarity.diagonal().fill_(math.inf)  # row i itself first
        _merge(values, candidates, rows, *torch.topk(similarity, min(margin, similarity.shape[1]), dim=1), b)
        if a != b:
            top = torch.topk(similarity, min(margin, similarity.shape[0]), dim=0)
            _merge(values, candidates, cols, top.values.T, top.indices.T, a)
    values, candidates = _stable_order(values, candidates)
    crowded = torch.nonzero(values[:, k - 1] == values[:, -1]).flatten() if margin < total else []
    for row in crowded.tolist() if len(crowded) else []:  # a tie runs past the margin: sort the whole row
        similarity = features[row] @ features.T
        similarity[row] = math.inf
        full = torch.sort(similarity, descending=True, stable=True)
        values[row], candidates[row] = full.values[:margin], full.indices[:margin]
    values, candidates = values[:, :k].contiguous(), candidates[:, :k].contiguous()
    values[:, 0] = 1.0
    close = values > 1.0 - CLOSE**2 / 2  # e < CLOSE: sqrt(2 - 2 s) is too coarse there
    close[:, 0] = False
    row, column = torch.nonzero(close, as_tuple=True)
    distance = euclidean_from_similarity(values)
    distance[row, column] = pair_distances(features, row, candidates[row, column])
    return KnnGraph(candidates.cpu().numpy(), distance.cpu().numpy(), euclidean_from_similarity(lowest).cpu().numpy())


def _merge(values: torch.Tensor, candidates: torch.Tensor, rows: slice, new_values: torch.Tensor,
           new_candidates: torch.Tensor, offset: int) -> None:
    """Keep the best `margin` of the running candidates of `rows` and the new ones."""
    both_values = torch.cat([values[rows], new_values], dim=1)
    both_candidates = torch.cat([candidates[rows], new_candidates + offset], dim=1)
    top = torch.topk(both_values, values.shape[1], dim=1)
    values[rows], candidates[rows] = top.values, both_candidates.gather(1, top.indices)


def _keep(keep: tuple[np.ndarray, np.ndarray, np.ndarray], similarity: torch.Tensor, rows: slice, cols: slice) -> None:
    """Write the distances of the kept rows and columns that fall in this block into keep's out."""
    row_ids, column_ids, out = keep
    r = np.nonzero((row_ids >= rows.start) & (row_ids < rows.stop))[0]
    c = np.nonzero((column_ids >= cols.start) & (column_ids < cols.stop))[0]
    if len(r) and len(c):
        local_r = torch.as_tensor(row_ids[r] - rows.start, device=similarity.device)
        local_c = torch.as_tensor(column_ids[c] - cols.start, device=similarity.device)
        block = euclidean_from_similarity(similarity[local_r][:, local_c]).cpu().numpy()
        if (np.diff(r) == 1).all() and (np.diff(c) == 1).all():
            out[r[0]:r[-1] + 1, c[0]:c[-1] + 1] = block
        else:
            out[np.ix_(r, c)] = block


def _stable_order(values: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by value descending, then by index ascending."""
    by_index = torch.argsort(candidates, dim=1, stable=True)
    values, candidates = values.gather(1, by_index), candidates.gather(1, by_index)
    by_value = torch.argsort(values, dim=1, descending=True, stable=True)
    return values.gather(1, by_value), candidates.gather(1, by_value)


def lookup_distances(features: torch.Tensor, knn: torch.Tensor, distances: torch.Tensor, rows: torch.Tensor,
                     cols: torch.Tensor) -> torch.Tensor:
    """||x_r - x_c|| for pairs (r, c): read from the kNN graph (knn, distances as tensors) where
    c is among r's neighbours, computed from the rows of `features` otherwise."""
    total = len(knn)
    by_index, order = torch.sort(knn, dim=1)  # row-major keys r * T + c are then sorted
    keys = (torch.arange(total, device=knn.device)[:, None] * total + by_index).flatten()
    wanted = rows * total + cols
    position = torch.searchsorted(keys, wanted).clamp(max=len(keys) - 1)
    found = keys[position] == wanted
    out = torch.empty(len(rows), dtype=distances.dtype, device=distances.device)
    out[found] = distances.gather(1, order).flatten()[position[found]]
    out[~found] = pair_distances(features, rows[~found], cols[~found])
    return out
