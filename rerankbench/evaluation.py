"""Retrieval metrics for re-ID: CMC@k, AP (and its trapezoid variant), INP, per query.

Canonical protocol (fast-reid / torchreid, spec/evaluation.md): for each query the gallery
is ranked by distance (stable: ties keep gallery order); gallery items with the query's
identity AND camera are removed ("junk"), as is every item of identity -1. True matches are
the remaining items of the query's identity. With P true matches at 1-based ranks
r_1 < ... < r_P among the remaining items:

    CMC@k  = 1 if r_1 <= k                      (query-level, then averaged)
    AP     = (1/P) sum_k k / r_k                 (non-interpolated)
    INP    = P / r_P                             (fast-reid's mINP, per query)
    AP_trapezoid = (1/P) sum_k ((k-1)/(r_k-1) + k/r_k) / 2, with (k-1)/(r_k-1) = 1 at r_k = 1
                                                 (Market-1501's official compute_AP.m)

The ranks are found without sorting a row: for each remaining non-match item, the number
of true matches strictly closer (torch.searchsorted against the sorted match distances)
gives how many such items precede each match, so r_k = k + #(non-matches closer than the
k-th match). A query where a non-match ties a match exactly is ranked by a stable sort.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .neighbours import block_rows


@dataclass(frozen=True)
class QueryScores:
    """Per-query results; num_matches = 0 marks a query with no valid true match."""

    num_matches: np.ndarray
    first_rank: np.ndarray
    ap: np.ndarray
    ap_trapezoid: np.ndarray
    inp: np.ndarray

    @staticmethod
    def concatenate(parts: list["QueryScores"]) -> "QueryScores":
        return QueryScores(*(np.concatenate([getattr(p, f) for p in parts]) for f in QueryScores.__dataclass_fields__))


def ranks_from_match_flags(matches: np.ndarray) -> np.ndarray:
    """1-based ranks of the true matches in an already ranked, junk-free row of flags."""
    return np.flatnonzero(matches) + 1


def scores_from_ranks(match_ranks: np.ndarray) -> tuple[float, float, float, int]:
    """(AP, AP_trapezoid, INP, first rank) from the sorted 1-based ranks of P >= 1 matches."""
    k = np.arange(1, len(match_ranks) + 1, dtype=np.float64)
    r = match_ranks.astype(np.float64)
    previous = np.where(r > 1, (k - 1) / np.maximum(r - 1, 1), 1.0)
    return (float(np.mean(k / r)), float(np.mean((previous + k / r) / 2)),
            float(len(r) / r[-1]), int(r[0]))


def score_queries(distance_blocks, query_ids, gallery_ids, query_cams=None, gallery_cams=None,
                  work_bytes: int = 64 << 20) -> QueryScores:
    """Per-query scores from (row offset, distance block) pairs covering all M queries in order;
    each block is scored in pieces of about `work_bytes` of distances."""
    gallery_ids_t = torch.as_tensor(np.asarray(gallery_ids, dtype=np.int64))
    gallery_cams_t = None if gallery_cams is None else torch.as_tensor(np.asarray(gallery_cams, dtype=np.int64))
    query_ids = np.asarray(query_ids, dtype=np.int64)
    query_cams = None if query_cams is None else np.asarray(query_cams, dtype=np.int64)
    parts, expected = [], 0
    for offset, block in distance_blocks:
        if offset != expected or block.shape[1] != len(gallery_ids):
            raise ValueError(f"distance block at row {offset} of shape {block.shape} does not continue the "
                             f"{expected} rows scored so far over {len(gallery_ids)} gallery items")
        step = block_rows(len(block), len(gallery_ids), budget_bytes=work_bytes)
        for start in range(0, len(block), step):
            piece = np.ascontiguousarray(block[start:start + step], dtype=np.float32)
            rows = slice(offset + start, offset + start + len(piece))
            parts.append(_score_block(
                torch.from_numpy(piece),
                torch.as_tensor(query_ids[rows]), gallery_ids_t,
                None if query_cams is None else torch.as_tensor(query_cams[rows]), gallery_cams_t))
        expected = offset + len(block)
    if expected != len(query_ids):
        raise ValueError(f"distances cover {expected} queries, the feature set has {len(query_ids)}")
    return QueryScores.concatenate(parts)


def _score_block(d, q_ids, g_ids, q_cams, g_cams) -> QueryScores:
    rows = d.shape[0]
    same_id = q_ids[:, None] == g_ids[None, :]
    junk = (g_ids < 0)[None, :].expand_as(same_id)
    if q_cams is not None:
        junk = junk | (same_id & (q_cams[:, None] == g_cams[None, :]))
    match = same_id & ~junk & (q_ids >= 0)[:, None]
    negative = ~same_id & ~junk
    num_matches = match.sum(1)
    out = {name: np.zeros(rows) for name in ("ap", "ap_trapezoid", "inp")}
    first_rank = np.zeros(rows, dtype=np.int64)
    width = int(num_matches.max()) if rows else 0
    if width == 0:
        return QueryScores(num_matches.numpy(), first_rank, out["ap"], out["ap_trapezoid"], out["inp"])

    match_d = torch.topk(torch.where(match, d, torch.inf), width, dim=1, largest=False, sorted=True).values
    closer_matches = torch.searchsorted(match_d, d)  # matches strictly closer than each item
    ties = negative & (closer_matches < num_matches[:, None]) & (
        match_d.gather(1, closer_matches.clamp(max=width - 1)) == d)
    tied = ties.any(1)

    flat = (torch.arange(rows)[:, None] * (width + 1) + closer_matches)[negative]
    before = torch.bincount(flat, minlength=rows * (width + 1)).view(rows, width + 1)[:, :width].cumsum(1)
    k = torch.arange(1, width + 1, dtype=torch.float64)
    ranks = (k + before).double()
    valid_k = k[None, :] <= num_matches[:, None]
    count = num_matches.double().clamp(min=1)
    out["ap"] = torch.where(valid_k, k / ranks, 0).sum(1) / count
    previous = torch.where(ranks > 1, (k - 1) / (ranks - 1).clamp(min=1), 1.0)
    out["ap_trapezoid"] = torch.where(valid_k, (previous + k / ranks) / 2, 0).sum(1) / count
    last = (num_matches - 1).clamp(min=0)[:, None]
    out["inp"] = num_matches.double() / ranks.gather(1, last).squeeze(1)
    out = {name: torch.where(num_matches > 0, value, 0).numpy() for name, value in out.items()}
    first_rank = torch.where(num_matches > 0, ranks[:, 0], 0).long().numpy()

    for row in torch.nonzero(tied).flatten().tolist():  # exact stable sort where a tie decides
        order = np.argsort(d[row].numpy(), kind="stable")
        kept = order[~junk[row].numpy()[order]]
        match_ranks = ranks_from_match_flags(match[row].numpy()[kept])
        out["ap"][row], out["ap_trapezoid"][row], out["inp"][row], first_rank[row] = scores_from_ranks(match_ranks)
    return QueryScores(num_matches.numpy(), first_rank, out["ap"], out["ap_trapezoid"], out["inp"])


def summarise(scores: QueryScores, official: bool = False, cmc_ranks=(1, 5, 10)) -> dict:
    """Metrics in percent. Canonical: averaged over queries with a valid match (the others
    are skipped and counted). official (Market-1501 MATLAB code): trapezoid AP, CMC and mAP
    averaged over all queries; mINP stays fast-reid's."""
    valid = scores.num_matches > 0
    over = np.ones_like(valid) if official else valid
    denominator = max(int(over.sum()), 1)
    metrics = {f"cmc{k}": 100.0 * float(((scores.first_rank > 0) & (scores.first_rank <= k))[over].sum()) / denominator
               for k in cmc_ranks}
    ap = scores.ap_trapezoid if official else scores.ap
    metrics["map"] = 100.0 * float(ap[over].sum()) / denominator
    metrics["minp"] = 100.0 * float(scores.inp[valid].sum()) / max(int(valid.sum()), 1)
    metrics["num_queries"] = int(len(valid))
    metrics["num_invalid_queries"] = int((~valid).sum())
    return metrics
