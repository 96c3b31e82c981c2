"""Sparse T x T matrices held by rows (CSR) in torch, for the neighbourhood re-rankers.

The contextual vectors of k-reciprocal re-ranking, SCA, ECN and GNN re-ranking have a few
dozen to a few hundred non-zeros per row, so they are kept sparse on the device of X, never
as a dense T x T array. Three operations cover every method:

- `SparseRows.from_entries`: build from (row, column, value) triples, summing duplicates
  (`SparseRows.sum` adds whole matrices so, in row pieces);
- `SparseRows.combine_rows`: out[i] = sum_j w_ij * A[n_ij] (local query expansion, GNN
  propagation, ECN's expanded neighbourhood);
- `add_min_overlap`: S[q, g] = sum_m min(A[q, m], B[g, m]) for a block of query rows and all
  gallery rows (the Jaccard numerator), by walking the inverted index of B (its transpose);
- `add_inner_products`: S[q, g] = A[q] . B[g], by torch's sparse-sparse matrix product.
Pairs whose supports do not meet cost nothing. `CombinedRows` is combine_rows (row-normalised)
computed only for the rows asked for, where the whole matrix would not fit (GNN's last step).

Large operations run in pieces of at most `budget` triples so memory stays bounded.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator

import torch

BUDGET = 1 << 23  # triples per piece (~8.4 M; about 0.5 GB of temporaries)


@dataclass(frozen=True)
class SparseRows:
    """Row i holds columns indices[indptr[i]:indptr[i+1]] (increasing) with their values."""

    indptr: torch.Tensor  # (rows + 1,) int64
    indices: torch.Tensor  # (nnz,) int64
    values: torch.Tensor  # (nnz,)
    columns: int

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> torch.Tensor:
        return self.indptr[1:] - self.indptr[:-1]

    @property
    def nnz(self) -> int:
        return len(self.indices)

    @property
    def device(self) -> torch.device:
        return self.values.device

    @classmethod
    def from_entries(cls, rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> "SparseRows":
        """The matrix with values[e] added at (rows[e], cols[e]); duplicates are summed."""
        num_rows, num_cols = shape
        key, order = torch.sort(rows * num_cols + cols, stable=True)  # duplicates summed in entry order
        unique, inverse = torch.unique_consecutive(key, return_inverse=True)
        summed = torch.zeros(len(unique), dtype=values.dtype, device=values.device).index_add_(0, inverse, values[order])
        return cls(_indptr(unique // num_cols, num_rows), unique % num_cols, summed, num_cols)

    @classmethod
    def from_neighbours(cls, neighbours: torch.Tensor, values: torch.Tensor) -> "SparseRows":
        """The T x T matrix whose row i holds values[i, j] at column neighbours[i, j] (T x k tables)."""
        total, k = neighbours.shape
        rows = torch.arange(total, device=neighbours.device).repeat_interleave(k)
        return cls.from_entries(rows, neighbours.flatten(), values.flatten(), (total, total))

    @classmethod
    def concatenate(cls, pieces: list["SparseRows"]) -> "SparseRows":
        """The rows of `pieces`, one after another."""
        offsets = torch.cumsum(torch.tensor([0] + [p.nnz for p in pieces[:-1]]), 0).tolist()
        indptr = torch.cat([pieces[0].indptr[:1]] + [p.indptr[1:] + off for p, off in zip(pieces, offsets)])
        return cls(indptr, torch.cat([p.indices for p in pieces]), torch.cat([p.values for p in pieces]), pieces[0].columns)

    @classmethod
    def sum(cls, terms: list["SparseRows"]) -> "SparseRows":
        """terms[0] + terms[1] + ..., built in row pieces of at most `BUDGET` entries so that no
        sort runs over every entry at once; where several terms hold a position their values are
        added in the order of `terms`, so the result is from_entries' over all their entries."""
        sizes = torch.stack([t.lengths for t in terms]).sum(0)
        pieces = []
        for lo, hi in _pieces(sizes):
            rows = torch.arange(lo, hi, device=sizes.device)
            owner, cols, values = (torch.cat(part) for part in zip(*(t.take(rows) for t in terms)))
            pieces.append(cls.from_entries(owner, cols, values, (hi - lo, terms[0].columns)))
        return cls.concatenate(pieces)

    def transpose(self) -> "SparseRows":
        """A^T: row m lists the rows of A that hold column m (the inverted index), in increasing
        order: a stable sort of the entries by column keeps each column's rows in row order."""
        order = torch.argsort(self.indices, stable=True)
        rows = torch.searchsorted(self.indptr, order, right=True) - 1
        return SparseRows(_indptr(self.indices, self.columns), rows, self.values[order], self.rows)

    def keep(self, mask: torch.Tensor) -> "SparseRows":
        """The entries where `mask` (one flag per entry) is true, rows kept."""
        kept_before = torch.cat([torch.zeros(1, dtype=torch.int64, device=mask.device), torch.cumsum(mask, 0)])
        return SparseRows(kept_before[self.indptr], self.indices[mask], self.values[mask], self.columns)

    def row_of_entries(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(self.rows, device=self.indptr.device), self.lengths)

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The entries of the given rows as (position in `rows`, column, value)."""
        lengths = self.lengths[rows]
        where = ragged_range(self.indptr[rows], lengths)
        owner = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths)
        return owner, self.indices[where], self.values[where]

    def select(self, rows: torch.Tensor) -> "SparseRows":
        """The given rows, in that order."""
        owner, cols, values = self.take(rows)
        return SparseRows(_indptr(owner, len(rows)), cols, values, self.columns)

    def to_torch(self) -> torch.Tensor:
        """As a torch sparse CSR tensor."""
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.indptr, self.indices, self.values, (self.rows, self.columns))

    def combine_rows(self, neighbours: torch.Tensor, weights: torch.Tensor) -> "SparseRows":
        """out[i] = sum_j weights[i, j] * self[neighbours[i, j]] for every row i of `neighbours` (R x k)."""
        sizes = self.lengths[neighbours].sum(1)
        pieces = []
        for lo, hi in _pieces(sizes):
            owner, cols, values = self.take(neighbours[lo:hi].flatten())
            k = neighbours.shape[1]
            values = values * weights[lo:hi].flatten().to(values.dtype)[owner]
            pieces.append(SparseRows.from_entries(owner // k, cols, values, (hi - lo, self.columns)))
        return SparseRows.concatenate(pieces)

    def scale_rows(self, factors: torch.Tensor) -> "SparseRows":
        return SparseRows(self.indptr, self.indices, self.values * factors[self.row_of_entries()], self.columns)

    def row_sums(self, values: torch.Tensor | None = None) -> torch.Tensor:
        values = self.values if values is None else values
        return torch.zeros(self.rows, dtype=values.dtype, device=values.device).index_add_(0, self.row_of_entries(), values)


def ragged_range(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """concat(range(s, s + n) for s, n in zip(starts, lengths)), without a Python loop."""
    ends = torch.cumsum(lengths, 0)
    shift = torch.repeat_interleave(starts - (ends - lengths), lengths)
    return torch.arange(int(ends[-1]) if len(ends) else 0, device=starts.device) + shift


def add_min_overlap(a: SparseRows, query_rows: torch.Tensor, b_by_column: SparseRows, out: torch.Tensor) -> None:
    """out[r * G + g] += sum_m min(a[query_rows[r], m], b[g, m]), walking b's inverted index
    `b_by_column` = B^T (G = B's row count): pairs whose supports do not meet cost nothing."""
    width = b_by_column.columns
    posting = b_by_column.lengths
    owner, m, va = a.take(query_rows)
    per_row = torch.zeros(len(query_rows), dtype=torch.int64, device=owner.device).index_add_(0, owner, posting[m])
    bounds = torch.cumsum(torch.bincount(owner, minlength=len(query_rows)), 0).tolist()
    for lo, hi in _pieces(per_row):
        first, last = (bounds[lo - 1] if lo else 0), bounds[hi - 1]
        counts = posting[m[first:last]]
        where = ragged_range(b_by_column.indptr[m[first:last]], counts)
        rows = torch.repeat_interleave(owner[first:last], counts)
        left = torch.repeat_interleave(va[first:last], counts).to(out.dtype)
        out.index_add_(0, rows * width + b_by_column.indices[where], torch.minimum(left, b_by_column.values[where].to(out.dtype)))


def add_inner_products(a: SparseRows, query_rows: torch.Tensor, b_by_column: SparseRows, out: torch.Tensor,
                       rows_per_product: int = 512) -> None:
    """out[r * G + g] += a[query_rows[r]] . b[g], by sparse-sparse matrix products
    (torch.sparse.mm on CSR tensors: MKL on CPU, cuSPARSE on CUDA)."""
    width = b_by_column.columns
    right = b_by_column.to_torch()
    for lo in range(0, len(query_rows), rows_per_product):
        product = torch.sparse.mm(a.select(query_rows[lo:lo + rows_per_product]).to_torch(), right)
        crow = product.crow_indices()
        rows = torch.repeat_interleave(torch.arange(len(crow) - 1, device=crow.device) + lo, crow[1:] - crow[:-1])
        out.index_add_(0, rows * width + product.col_indices(), product.values().to(out.dtype))


def _indptr(rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    counts = torch.bincount(rows, minlength=num_rows)
    return torch.cat([torch.zeros(1, dtype=torch.int64, device=rows.device), torch.cumsum(counts, 0)])


def _pieces(sizes: torch.Tensor) -> Iterator[tuple[int, int]]:
    """Consecutive row ranges [lo, hi) whose sizes add up to at most `BUDGET` (one row at least)."""
    budget = BUDGET  # read at the call, so that a test can make pieces of one row
    ends = torch.cumsum(sizes, 0).cpu()
    lo, total = 0, len(sizes)
    while lo < total:
        base = int(ends[lo - 1]) if lo else 0
        hi = int(torch.searchsorted(ends, base + budget, right=True))
        hi = min(max(hi, lo + 1), total)
        yield lo, hi
        lo = hi


class CombinedRows:
    """The rows of normalise(B.combine_rows(neighbours, weights)), each row L2-normalised, built
    only when asked for (`select`, `take`): a top-L block reads the rows of its queries and of
    their shortlists, never the whole matrix, whose rows hold thousands of entries once a gallery
    has many distractors (GNN's second propagation). Row i is the same whichever rows are asked
    with it."""

    def __init__(self, b: SparseRows, neighbours: torch.Tensor, weights: torch.Tensor):
        self.b, self.neighbours, self.weights = b, neighbours, weights

    @property
    def device(self) -> torch.device:
        return self.b.device

    def select(self, rows: torch.Tensor) -> SparseRows:
        out = self.b.combine_rows(self.neighbours[rows], self.weights[rows])
        return out.scale_rows(1.0 / out.row_sums(out.values ** 2).sqrt())

    def take(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.select(rows).take(torch.arange(len(rows), device=rows.device))
