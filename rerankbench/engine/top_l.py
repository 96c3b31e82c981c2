"""Top-L re-ranking: for galleries whose M x N distances would not fit (`--top-l L`).

Each query's L nearest gallery items by the baseline distance ||x_q - x_g|| (its shortlist,
ordered as a stable sort orders them: ties to the earlier gallery item) are re-ranked by the
method; every other item keeps its baseline order after them (Jegou et al.'s shortlist
re-ranking; the k-reciprocal paper re-ranks the whole list, which this is at L = N). The
evaluation stays exact: the blocks handed to it hold, for the shortlist, the values -L..-1 in the
method's order (its distance, ties to the earlier item), and for every other item its baseline
distance (>= 0), so a true match beyond L is scored at its baseline rank.

Nothing M x N is held: queries go in blocks of at most 64 rows; for a block the method is asked
only for the union of its queries' shortlists (Distances.blocks over those gallery rows: at most
64 L, whose contextual vectors the method builds, thousands of entries each for GNN among many
distractors), and the baseline block (B x N) is computed from X.
"""
from __future__ import annotations

import numpy as np
import torch

from .distances import euclidean_blocks
from .neighbours import _top, block_rows

DEFAULT_L = 1000
QUERY_ROWS = 64


class TopLDistances:
    """`inner` (a method's Distances) on each query's top `top_l` baseline candidates, the rest after them."""

    def __init__(self, inner, features: torch.Tensor, top_l: int):
        if top_l < 1:
            raise ValueError(f"--top-l must be at least 1, got {top_l}")
        self.inner, self.features, self.top_l = inner, features, top_l

    def blocks(self, query_rows: np.ndarray, gallery_rows: np.ndarray):
        width = len(gallery_rows)
        top_l = min(self.top_l, width)
        step = max(1, min(QUERY_ROWS, block_rows(len(query_rows), width)))
        for lo in range(0, len(query_rows), step):
            rows = query_rows[lo:lo + step]
            base = np.concatenate([block for _, block in euclidean_blocks(self.features, rows, gallery_rows)])
            shortlist = self.shortlist(base, top_l)
            union = np.unique(shortlist)
            method = np.concatenate([block for _, block in self.inner.blocks(rows, gallery_rows[union])])
            values = np.take_along_axis(method, np.searchsorted(union, shortlist), axis=1)
            by_position = np.argsort(shortlist, axis=1, kind="stable")
            shortlist = np.take_along_axis(shortlist, by_position, 1)
            values = np.take_along_axis(values, by_position, 1)
            order = np.argsort(values, axis=1, kind="stable")  # the method's order, ties to the earlier item
            out = base
            ranks = np.arange(-top_l, 0, dtype=np.float32)
            np.put_along_axis(out, np.take_along_axis(shortlist, order, 1), np.broadcast_to(ranks, order.shape), 1)
            yield lo, out

    @staticmethod
    def shortlist(base: np.ndarray, top_l: int) -> np.ndarray:
        """Each row's first `top_l` gallery positions by (distance, position): the baseline's order."""
        width = base.shape[1]
        negated = -torch.from_numpy(base)
        margin = min(width, top_l + 8)
        top = torch.topk(negated, margin, dim=1)
        _, positions = _top(top.values, top.indices, top_l, margin < width, lambda r: negated[r])
        return positions.numpy()
