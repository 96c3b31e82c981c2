"""Query-to-gallery distances, produced in query chunks.

A method's result is a `Distances` object: it yields the M x N distances (smaller = more
similar) between chosen rows of X = [Q; G] block by block, so that MSMT17 (11,659 x 82,161)
or VERI-Wild large (10,000 x 128,517) never has to be held whole unless asked for.
Rows are addressed by their index in X, so one result serves every query/gallery partition
of the same rows (VehicleID's 10 draws).
"""
from __future__ import annotations

import mmap
from typing import Iterator, Protocol

import numpy as np
import torch

from .neighbours import block_rows, euclidean_from_similarity


class Distances(Protocol):
    """Distances between rows of X, yielded as (row offset, float32 block) pairs."""

    def blocks(self, query_rows: np.ndarray, gallery_rows: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        ...


def contiguous(rows: np.ndarray) -> slice | None:
    """rows as a slice when they are one increasing run (a, a+1, ..., b), else None."""
    if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and (np.diff(rows) == 1).all():
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return None


def take_rows(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """x[rows]: a view where the rows are one contiguous run, a copy otherwise."""
    run = contiguous(rows)
    return x[run] if run is not None else x[torch.as_tensor(rows, device=x.device)]


def euclidean_blocks(features: torch.Tensor, query_rows: np.ndarray, gallery_rows: np.ndarray,
                     out: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(offset, block) of ||x_q - x_g|| for unit rows x, in query blocks. With `out` (an M x N
    float32 array) each block is written into it -- on CPU multiplied straight into it."""
    gallery = take_rows(features, gallery_rows)
    step = block_rows(len(query_rows), len(gallery_rows))
    for lo in range(0, len(query_rows), step):
        query = take_rows(features, query_rows[lo:lo + step])
        if out is not None and features.device.type == "cpu":
            block = euclidean_from_similarity(torch.mm(query, gallery.T, out=torch.from_numpy(out[lo:lo + step])))
            yield lo, block.numpy()
            continue
        block = euclidean_from_similarity(query @ gallery.T).cpu().numpy()
        if out is not None:
            out[lo:lo + step] = block
        yield lo, block


class FeatureDistances:
    """d(i, j) = ||x_i - x_j|| for L2-normalised rows x (the baseline distance).

    `features` (T x D, unit rows) may live on any torch device; blocks come back as numpy.
    """

    def __init__(self, features: torch.Tensor):
        self.features = features

    def blocks(self, query_rows, gallery_rows):
        return euclidean_blocks(self.features, query_rows, gallery_rows)


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
        run = contiguous(columns)
        step = block_rows(len(rows), len(columns))
        for start in range(0, len(rows), step):
            block = self.matrix[rows[start:start + step]]
            block = np.ascontiguousarray(block[:, run] if run is not None else block[:, columns])
            _release_pages(self.matrix)
            yield start, block


def materialise(distances: Distances, query_rows: np.ndarray, gallery_rows: np.ndarray) -> np.ndarray:
    """The whole M x N matrix (for notebooks and small sets)."""
    out = np.empty((len(query_rows), len(gallery_rows)), dtype=np.float32)
    for start, block in distances.blocks(query_rows, gallery_rows):
        out[start:start + len(block)] = block
    return out


def _release_pages(matrix: np.ndarray) -> None:
    """Drop a read-only memory map's pages from this process (the page cache keeps them), so
    that reading the whole M x N matrix block by block does not leave it all resident."""
    mapping = getattr(matrix, "_mmap", None)  # set by numpy.load(..., mmap_mode="r")
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _positions(ids: np.ndarray) -> np.ndarray:
    position = np.full(int(ids.max()) + 1 if len(ids) else 0, -1, dtype=np.int64)
    position[ids] = np.arange(len(ids))
    return position
