"""The exact k-nearest-neighbour graph over X = [Q; G], shared by every method.

kNN(i, k) (spec/methods.md) is the list of the k nearest rows of X to row i, nearest first,
row i itself first. Rows are L2-normalised, so nearest = largest inner product and the
Euclidean distance is sqrt(2 - 2 x_i . x_j). The graph is built from square blocks of X X^T
on and above the diagonal, keeping only each row's running top-K, so memory is O(T K + B^2),
never T x T. Ties are broken towards the smaller row index (stable order).

In the gallery context (--context gallery, engine/contexts.py) the graph is the gallery's own
(`build_gallery_graph`): a gallery row lists its nearest gallery rows, and every other row (a
query) lists itself, then its nearest gallery rows, and appears in no other row's list.
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
    outsiders: np.ndarray | None = None  # gallery context: the rows (queries) in no list but their own

    @property
    def k(self) -> int:
        return self.indices.shape[1]

    def truncated(self, k: int) -> "KnnGraph":
        if k > self.k:
            raise ValueError(f"the graph holds {self.k} neighbours per row, {k} were asked for")
        return KnnGraph(self.indices[:, :k], self.distances[:, :k], self.farthest, self.outsiders)

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(indices, distances, farthest) as torch tensors on `device`."""
        return tuple(torch.as_tensor(a, device=device) for a in (self.indices, self.distances, self.farthest))


TIE_MARGIN = 8  # candidates kept past k; a row whose tie at k runs past them is sorted whole
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
    margin = min(total, k + TIE_MARGIN)
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
    values, candidates = _top(values, candidates, k, margin < total, lambda row: _whole_row(features, row))
    values[:, 0] = 1.0
    close = values > 1.0 - CLOSE**2 / 2  # e < CLOSE: sqrt(2 - 2 s) is too coarse there
    close[:, 0] = False
    distance = _exact_near(values, close, features, torch.arange(total, device=device), candidates)
    return KnnGraph(candidates.cpu().numpy(), distance.cpu().numpy(), euclidean_from_similarity(lowest).cpu().numpy())


def padded(lo: int, hi: int, total: int, least: int = 16) -> slice:
    """Rows lo..hi widened to at least `least` rows of X (as widened, for a contiguous range)."""
    if hi - lo >= least or total <= hi - lo:
        return slice(lo, hi)
    start = max(0, min(lo, total - least))
    return slice(start, max(hi, min(total, start + least)))


def _whole_row(features: torch.Tensor, row: int) -> torch.Tensor:
    """Row `row` of X X^T, itself first (its similarity set to +inf), from a product of at least 16
    rows (`padded`): a one-row product (GEMV) may round a column differently from the blocks' GEMM,
    and on Intel's MKL even two equal columns differently by their position (measured, 3 December 2026)."""
    rows = padded(row, row + 1, len(features))
    similarity = (features[rows] @ features.T)[row - rows.start]
    similarity[row] = math.inf
    return similarity


def _top(values: torch.Tensor, candidates: torch.Tensor, k: int, may_crowd: bool, whole_row) -> tuple:
    """The first k of each row's candidates (kept with a margin beyond k) by (similarity desc, index
    asc); a row whose tie at k runs past the margin is sorted whole (`whole_row(r)`: its similarities)."""
    values, candidates = _stable_order(values, candidates)
    crowded = torch.nonzero(values[:, k - 1] == values[:, -1]).flatten() if may_crowd and k else []
    for row in crowded.tolist() if len(crowded) else []:  # a tie runs past the margin: sort the whole row
        full = torch.sort(whole_row(row), descending=True, stable=True)
        values[row], candidates[row] = full.values[:values.shape[1]], full.indices[:values.shape[1]]
    return values[:, :k].contiguous(), candidates[:, :k].contiguous()


def _exact_near(values: torch.Tensor, close: torch.Tensor, features: torch.Tensor, rows: torch.Tensor,
                columns: torch.Tensor) -> torch.Tensor:
    """Distances sqrt(2 - 2 s) of the similarities `values`, but ||x_r - x_c|| itself where `close`
    (rows[i] against columns[i, j], rows of X)."""
    row, column = torch.nonzero(close, as_tuple=True)
    distance = euclidean_from_similarity(values)
    distance[row, column] = pair_distances(features, rows[row], columns[row, column])
    return distance


def build_gallery_graph(features: torch.Tensor, gallery_rows: np.ndarray, k: int,
                        show_progress: bool = False) -> KnnGraph:
    """The kNN graph of the gallery context over the rows of `features` (X, unit rows): a gallery
    row's list is its kNN among `gallery_rows` (sorted) alone (build_knn_graph on them); every other
    row q lists itself, then its k - 1 nearest gallery rows (ties by smaller row), and is marked an
    outsider: it appears in no other row's list. farthest[i]: the largest distance from row i to a
    gallery row. k is at most the gallery's size."""
    total, device = features.shape[0], features.device
    k = min(k, len(gallery_rows))
    gallery = torch.as_tensor(gallery_rows, device=device)
    own = build_knn_graph(features[gallery], k, show_progress)
    indices = np.empty((total, k), dtype=np.int64)
    distances = np.empty((total, k), dtype=np.float32)
    farthest = np.empty(total, dtype=np.float32)
    indices[gallery_rows], distances[gallery_rows], farthest[gallery_rows] = \
        gallery_rows[own.indices], own.distances, own.farthest
    outsiders = np.ones(total, dtype=bool)
    outsiders[gallery_rows] = False
    queries = np.flatnonzero(outsiders)
    near, near_distances, far = nearest_among(features, queries, gallery_rows, k - 1)
    indices[queries, 0], distances[queries, 0], farthest[queries] = queries, 0.0, far
    indices[queries, 1:], distances[queries, 1:] = near, near_distances
    return KnnGraph(indices, distances, farthest, outsiders)


def nearest_among(features: torch.Tensor, rows: np.ndarray, columns: np.ndarray, k: int) -> tuple:
    """For each of `rows` (rows of X), its k nearest among `columns` (other rows of X, sorted),
    nearest first, ties by the smaller row: (their rows, their distances), and the largest distance
    to any of `columns`. Computed in blocks of rows x columns products."""
    k = min(k, len(columns))
    margin = min(len(columns), k + TIE_MARGIN)
    near = np.empty((len(rows), k), dtype=np.int64)
    near_distances = np.empty((len(rows), k), dtype=np.float32)
    far = np.empty(len(rows), dtype=np.float32)
    targets = torch.as_tensor(columns, device=features.device)
    candidates_x = features[targets]
    step = block_rows(len(rows), len(columns), GRAPH_BLOCK_BYTES)
    for lo in range(0, len(rows), step):
        own = torch.as_tensor(rows[lo:lo + step], device=features.device)
        similarity = features[own] @ candidates_x.T
        far[lo:lo + len(own)] = euclidean_from_similarity(similarity.amin(dim=1)).cpu().numpy()
        if not k:
            continue
        top = torch.topk(similarity, margin, dim=1)
        values, positions = _top(top.values, top.indices, k, margin < len(columns), lambda row: similarity[row])
        distance = _exact_near(values, values > 1.0 - CLOSE**2 / 2, features, own, targets[positions])
        near[lo:lo + len(own)] = columns[positions.cpu().numpy()]
        near_distances[lo:lo + len(own)] = distance.cpu().numpy()
    return near, near_distances, far


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
