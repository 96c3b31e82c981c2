"""Query-gallery distances from sparse contextual vectors (k-reciprocal, SCA, ECN, GNN).

Each of these methods describes every row of X by a sparse vector over the rows of X and
compares a query with a gallery item through an overlap of their vectors,

    S[q, g] = sum_terms sum_m combine(A[q, m], B[g, m]),

turned into a distance by a method-specific `finish(S, base, rows)`, where `base` is the
block of shared query-gallery distances when the method mixes them in. Blocks of query rows
are produced one at a time (following the shared distances' blocks when there are any), so
the M x N result is never held whole.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .distances import Distances
from .neighbours import block_rows
from .sparse_rows import SparseRows, add_inner_products, add_min_overlap

COMBINE = {"min": add_min_overlap, "product": add_inner_products}

DENSE_SHARE = 0.125  # a block with more pairs that overlap is finished whole, not pair by pair

Finish = Callable[[torch.Tensor, "torch.Tensor | None", torch.Tensor], torch.Tensor]


class OverlapDistances:
    """Distances d = finish(S, base, rows) from the overlaps S of sparse row vectors.

    terms: (A, B, combine) triples; combine is "min" or "product" (see sparse_rows).
    finish: elementwise and broadcasting; it is applied once to the whole block with S = 0
    (a 0-d tensor; rows as a column, base the block) and then again to the few pairs whose S
    is not 0 (S, base and rows per pair), so the block is never passed over more than it must
    be; where more than DENSE_SHARE of the pairs overlap (GNN among many distractors), once to
    the whole block with S (the pairs' indices would outweigh the block). It may work in place
    on `base` (a block it owns) and returns a new tensor or `base`.
    dtype: the precision S is accumulated in (float64 where sums of integers must stay exact)."""

    def __init__(self, terms: list[tuple[SparseRows, SparseRows, str]], finish: Finish,
                 base: Distances | None = None, dtype: torch.dtype = torch.float32):
        self.terms = terms
        self.finish, self.base, self.dtype = finish, base, dtype
        self.device = terms[0][0].device

    def blocks(self, query_rows: np.ndarray, gallery_rows: np.ndarray):
        width = len(gallery_rows)
        gallery = torch.as_tensor(gallery_rows, device=self.device)
        terms = [(a, b.select(gallery).transpose(), COMBINE[combine]) for a, b, combine in self.terms]  # inverted indexes
        step = block_rows(len(query_rows), width)
        if self.base is not None:
            pieces = ((lo, torch.as_tensor(block, device=self.device)) for lo, block in self.base.blocks(query_rows, gallery_rows))
        else:
            pieces = ((lo, None) for lo in range(0, len(query_rows), step))
        scratch = torch.zeros(step * width, dtype=self.dtype, device=self.device)
        for lo, base in pieces:
            rows = torch.as_tensor(query_rows[lo:lo + (step if base is None else len(base))], device=self.device)
            overlap = scratch[:len(rows) * width]
            for a, b_by_column, add in terms:
                add(a, rows, b_by_column, overlap)
            if int(torch.count_nonzero(overlap)) > DENSE_SHARE * len(overlap):
                out = self.finish(overlap.view(len(rows), width), base, rows[:, None]).to(torch.float32)
                yield lo, out.cpu().numpy()
                overlap.zero_()
                continue
            pairs = torch.nonzero(overlap).squeeze(1)
            values = overlap[pairs]
            overlap[pairs] = 0  # clean for the next block
            at_pairs = None if base is None else base.view(-1)[pairs]
            out = self.finish(torch.zeros((), dtype=self.dtype, device=self.device), base, rows[:, None])
            out = out.to(torch.float32).expand(len(rows), width).contiguous()
            out.view(-1)[pairs] = self.finish(values, at_pairs, rows[pairs // width]).to(torch.float32)
            yield lo, out.cpu().numpy()
