"""k-reciprocal nearest neighbours and their 2/3 expansion (Zhong et al., CVPR 2017, Sec. 3.2-3.3),
read from the shared kNN graph and vectorised over every row of X at once.

R(i, k)  = { j in kNN(i, k+1) : i in kNN(j, k+1) }
R*(i)    = R(i, k1) united with every R(c, h) with c in R(i, k1) (i itself included) for which
           |R(c, h) & R(i, k1)| > 2/3 |R(c, h)|;  h = round(k1 / 2), rounding half to even as
           numpy.around does in the reference (k1 = 25 -> 12, k1 = 27 -> 14).

In the gallery context (contexts.py) a query q is in no other row's list (`outsiders`): for it,
"q in kNN(j, k+1)" means that q would enter j's list, d(q, j) <= the distance of its last entry
(ties go to q, as they would to a row placed before the gallery); the gallery rows' own sets
are the gallery's.
"""
from __future__ import annotations

import torch

ROWS_PER_PIECE = 4096


def reciprocal_sets(knn: torch.Tensor, k: int, distances: torch.Tensor | None = None,
                    outsiders: torch.Tensor | None = None) -> torch.Tensor:
    """R(i, k) as a T x (k+1) table, members in kNN order, -1 where kNN(i, k+1) has a non-member;
    an outsider (with the graph's `distances`) is in kNN(j, k+1) when it would enter it."""
    forward = knn[:, :k + 1]
    out = torch.empty_like(forward)
    for lo in range(0, len(knn), ROWS_PER_PIECE):
        rows = forward[lo:lo + ROWS_PER_PIECE]
        own = torch.arange(lo, lo + len(rows), device=knn.device)
        backward = knn[rows, :k + 1]  # b x (k+1) x (k+1)
        member = (backward == own[:, None, None]).any(-1)
        if outsiders is not None:
            would_enter = (distances[lo:lo + len(rows), :k + 1] <= distances[rows, k]) | (rows == own[:, None])
            member = torch.where(outsiders[lo:lo + len(rows), None], would_enter, member)
        out[lo:lo + len(rows)] = torch.where(member, rows, -1)
    return out


def half_k(k1: int) -> int:
    """round(k1 / 2) with halves to even, as numpy.around in the reference."""
    return round(k1 / 2)  # Python's round is round-half-to-even


def expanded_reciprocal_sets(knn: torch.Tensor, k1: int, distances: torch.Tensor | None = None,
                             outsiders: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """R*(i) for every row i, as (row, member) pairs sorted by row then member, without repeats
    (with `outsiders` and the graph's `distances`: in the gallery context)."""
    total = len(knn)
    reciprocal = reciprocal_sets(knn, k1, distances, outsiders)
    halves = reciprocal_sets(knn, half_k(k1), distances, outsiders)
    rows_out, members_out = [], []
    for lo in range(0, total, ROWS_PER_PIECE):
        own_set = reciprocal[lo:lo + ROWS_PER_PIECE]  # b x (k1+1)
        b = len(own_set)
        valid = own_set >= 0
        sorted_set = torch.sort(torch.where(valid, own_set, total), dim=1).values  # -1 -> T, sorted last
        candidates = halves[own_set.clamp(min=0)]  # b x (k1+1) x (h+1)
        present = (candidates >= 0) & valid[:, :, None]
        flat = candidates.clamp(min=0).reshape(b, -1)
        position = torch.searchsorted(sorted_set, flat).clamp(max=sorted_set.shape[1] - 1)
        inside = (sorted_set.gather(1, position) == flat).view_as(candidates) & present
        size = present.sum(-1)
        accepted = valid & (inside.sum(-1).double() > 2.0 / 3.0 * size.double())
        own = torch.arange(lo, lo + b, device=knn.device)
        added = present & accepted[:, :, None]
        rows_out += [own[:, None].expand_as(own_set)[valid], own[:, None, None].expand_as(candidates)[added]]
        members_out += [own_set[valid], candidates[added]]
    rows, members = torch.cat(rows_out), torch.cat(members_out)
    key = torch.unique(rows * total + members)
    return key // total, key % total
