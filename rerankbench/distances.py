"""Query-to-gallery distances, produced in query chunks.

A method's result is a `Distances` object: it yields the M x N distances (smaller = more
similar) between chosen rows of X = [Q; G] block by block, so that MSMT17 (11,659 x 82,161)
or VERI-Wild large (10,000 x 128,517) never has to be held whole unless asked for.
Rows are addressed by their index in X, so one result serves every query/gallery partition
of the same rows (VehicleID's 10 draws).
"""
from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import torch

from .neighbours import block_rows, euclidean_from_similarity


class Distances(Protocol):
    """Distances between rows of X, yielded as (row offset, float32 block) pairs."""

    def blocks(self, query_rows: np.ndarray, gallery_rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        ...


class FeatureDistances:
    """d(i, j) = ||x_i - x_j|| for L2-normalised rows x (the baseline distance).

    `features` (T x D, unit rows) may live on any torch device; blocks come back as numpy.
    """

    def __init__(self, features: torch.Tensor):
        self.features = features

    def blocks(self, query_rows, gallery_rows):
        device = self.features.device
        gallery = self.features[torch.as_tensor(gallery_rows, device=device)]
        step = block_rows(len(query_rows), len(gallery_rows))
        for start in range(0, len(query_rows), step):
            rows = torch.as_tensor(query_rows[start:start + step], device=device)
            yield start, euclidean_from_similarity(self.features[rows] @ gallery.T).cpu().numpy()


class PrecomputedDistances:
    """Distances held in an array (or memory map) whose rows and columns are X-row indices
    `row_ids` and `column_ids`; blocks are gathered from it."""

    def __init__(self, matrix: np.ndarray, row_ids: np.ndarray, column_ids: np.ndarray):
        self.matrix = matrix
        self.row_position = _positions(row_ids)
        self.column_position = _positions(column_ids)

    def blocks(self, query_rows, gallery_rows):
        columns = self.column_position[gallery_rows]
        rows = self.row_position[query_rows]
        if (columns < 0).any() or (rows < 0).any():
            raise IndexError("asked for distances of rows that were not precomputed")
        contiguous = bool(len(columns)) and (np.diff(columns) == 1).all()
        step = block_rows(len(rows), len(columns))
        for start in range(0, len(rows), step):
            block = self.matrix[rows[start:start + step]]
            yield start, np.ascontiguousarray(block[:, columns[0]:columns[-1] + 1] if contiguous else block[:, columns])


def materialise(distances: Distances, query_rows: np.ndarray, gallery_rows: np.ndarray) -> np.ndarray:
    """The whole M x N matrix (for notebooks and small sets)."""
    out = np.empty((len(query_rows), len(gallery_rows)), dtype=np.float32)
    for start, block in distances.blocks(query_rows, gallery_rows):
        out[start:start + len(block)] = block
    return out


def _positions(ids: np.ndarray) -> np.ndarray:
    position = np.full(int(ids.max()) + 1 if len(ids) else 0, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    return position
