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

Rows are never sorted. Only the items no farther than a query's hardest true match can change
any rank; the true matches are found through an identity -> gallery index, and each other
item up to the hardest match is placed among them by a (row, distance, gallery index) key,
so r_k = k + (non-matches before the k-th match), with ties resolved as a stable sort would.

A query without a true match is skipped and counted; a test set where no query has one has
nothing to score, and summarise refuses it (NoTrueMatch) rather than report zeros.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine.neighbours import block_rows


class NoTrueMatch(ValueError):
    """No query has a true match in the gallery: there is nothing to score."""


@dataclass(frozen=True)
class QueryScores:
    """Per-query results; num_matches = 0 marks a query with no valid true match, and
    num_same_identity counts the gallery items of its identity in any camera (0 for junk, -1)."""

    num_matches: np.ndarray
    first_rank: np.ndarray
    ap: np.ndarray
    ap_trapezoid: np.ndarray
    inp: np.ndarray
    num_same_identity: np.ndarray

    @staticmethod
    def concatenate(parts: list["QueryScores"]) -> "QueryScores":
        return QueryScores(*(np.concatenate([getattr(p, f) for p in parts]) if parts else np.zeros(0, np.int64)
                             for f in QueryScores.__dataclass_fields__))


class _Gallery:
    """Gallery identities and cameras, with its items grouped by identity."""

    def __init__(self, ids, cams):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.cams = None if cams is None else np.asarray(cams, dtype=np.int64)
        self.order = np.argsort(self.ids, kind="stable")
        self.sorted_ids = self.ids[self.order]
        self.column_bits = max(1, int(len(self.ids) - 1).bit_length())  # a gallery index in a sort key
        self.max_rows = 1 << (64 - 32 - self.column_bits)  # rows of a piece, so (row, distance, index) fits 64 bits

    def true_matches(self, query_ids, query_cams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(B x P) gallery indices of each query's identity, which of them have it (identity >= 0)
        and which are true matches (those, and in another camera where there are cameras)."""
        start = np.searchsorted(self.sorted_ids, query_ids, "left")
        stop = np.searchsorted(self.sorted_ids, query_ids, "right")
        width = max(int((stop - start).max(initial=0)), 1)
        position = start[:, None] + np.arange(width)
        inside = position < stop[:, None]
        members = self.order[np.minimum(position, len(self.order) - 1)]
        same_identity = inside & (query_ids >= 0)[:, None]
        valid = same_identity if self.cams is None else same_identity & (self.cams[members] != query_cams[:, None])
        return members, same_identity, valid


def score_queries(distance_blocks, query_ids, gallery_ids, query_cams=None, gallery_cams=None,
                  work_bytes: int = 64 << 20) -> QueryScores:
    """Per-query scores from (row offset, distance block) pairs covering all M queries in order;
    each block is scored in pieces of about `work_bytes` of distances."""
    gallery = _Gallery(gallery_ids, gallery_cams)
    query_ids = np.asarray(query_ids, dtype=np.int64)
    query_cams = None if query_cams is None else np.asarray(query_cams, dtype=np.int64)
    parts, expected = [], 0
    for offset, block in distance_blocks:
        if offset != expected or block.shape[1] != len(gallery.ids):
            raise ValueError(f"distance block at row {offset} of shape {block.shape} does not continue the "
                             f"{expected} rows scored so far over {len(gallery.ids)} gallery items")
        step = min(block_rows(len(block), len(gallery.ids), budget_bytes=work_bytes), gallery.max_rows)
        for start in range(0, len(block), step):
            piece = np.ascontiguousarray(block[start:start + step], dtype=np.float32)
            rows = slice(offset + start, offset + start + len(piece))
            parts.append(_score_piece(piece, query_ids[rows], None if query_cams is None else query_cams[rows], gallery))
        expected = offset + len(block)
    if expected != len(query_ids):
        raise ValueError(f"distances cover {expected} queries, the feature set has {len(query_ids)}")
    return QueryScores.concatenate(parts)


def _sortable_bits(values: np.ndarray) -> np.ndarray:
    """uint64 holding a uint32 that orders like the float32 values (IEEE 754 bit trick)."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into 0.0
    negative = bits >> np.uint32(31) == 1
    return np.where(negative, ~bits, bits | np.uint32(1 << 31)).astype(np.uint64)


def _score_piece(d: np.ndarray, q_ids: np.ndarray, q_cams, gallery: _Gallery) -> QueryScores:
    """Scores of the queries of one piece of distances.

    Each candidate item (no farther than its query's hardest true match) gets the key
    (query row, distance, gallery index) packed in a uint64, which orders items exactly as a
    stable sort of the row would. The true matches' keys are sorted; every candidate non-match
    is placed among them with searchsorted; then rank(match) = k + (non-matches before it).
    """
    rows = len(d)
    members, same_identity, valid = gallery.true_matches(q_ids, q_cams)
    num_matches = valid.sum(1)
    hardest = np.where(valid, np.take_along_axis(d, members, 1), -np.inf).max(1)
    row, col = (t.numpy() for t in torch.nonzero(torch.from_numpy(d) <= torch.from_numpy(hardest)[:, None], as_tuple=True))
    ids = gallery.ids[col]
    same = ids == q_ids[row]
    junk = ids < 0
    if q_cams is not None:
        junk |= same & (gallery.cams[col] == q_cams[row])
    shift = np.uint64(gallery.column_bits)
    key = (row.astype(np.uint64) << (np.uint64(32) + shift)) | (_sortable_bits(d[row, col]) << shift) | col.astype(np.uint64)
    match_key = np.sort(key[same & ~junk])
    match_row = (match_key >> (np.uint64(32) + shift)).astype(np.int64)
    negative = ~same & ~junk
    closer = np.cumsum(np.bincount(np.searchsorted(match_key, key[negative]), minlength=len(match_key) + 1))
    earlier_rows = np.concatenate([[0], np.cumsum(np.bincount(row[negative], minlength=rows))])[:rows]
    k = np.arange(1, len(match_key) + 1) - np.searchsorted(match_row, match_row)  # 1-based, within the query
    rank = (k + closer[:len(match_key)] - earlier_rows[match_row]).astype(np.float64)
    count = np.maximum(num_matches, 1)
    previous = np.where(rank > 1, (k - 1) / np.maximum(rank - 1, 1), 1.0)
    ap = np.bincount(match_row, k / rank, minlength=rows) / count
    ap_trapezoid = np.bincount(match_row, (previous + k / rank) / 2, minlength=rows) / count
    first_rank = np.zeros(rows, dtype=np.int64)
    first_rank[match_row[k == 1]] = rank[k == 1]
    last = k == num_matches[match_row]
    inp = np.zeros(rows)
    inp[match_row[last]] = k[last] / rank[last]
    return QueryScores(num_matches, first_rank, ap, ap_trapezoid, inp, same_identity.sum(1))


def summarise(scores: QueryScores, official: bool = False, cmc_ranks=(1, 5, 10)) -> dict:
    """Metrics in percent. Canonical: averaged over queries with a valid match (the others
    are skipped and counted). official (Market-1501 MATLAB code): trapezoid AP, CMC and mAP
    averaged over all queries; mINP stays fast-reid's. NoTrueMatch when no query has a match."""
    valid = scores.num_matches > 0
    if not valid.any():
        raise NoTrueMatch(f"no query has a true match in the gallery: {_why_unmatched(scores)}")
    over = np.ones_like(valid) if official else valid
    denominator = int(over.sum())
    metrics = {f"cmc{k}": 100.0 * float(((scores.first_rank > 0) & (scores.first_rank <= k))[over].sum()) / denominator
               for k in cmc_ranks}
    ap = scores.ap_trapezoid if official else scores.ap
    metrics["map"] = 100.0 * float(ap[over].sum()) / denominator
    metrics["minp"] = 100.0 * float(scores.inp[valid].sum()) / int(valid.sum())
    metrics["num_queries"] = int(len(valid))
    metrics["num_invalid_queries"] = int((~valid).sum())
    return metrics


def _why_unmatched(scores: QueryScores) -> str:
    """How many of the queries without a true match have no gallery item of their identity, and
    how many have them only in their own camera."""
    unmatched = scores.num_matches == 0
    absent = int((unmatched & (scores.num_same_identity == 0)).sum())
    own_camera = int(unmatched.sum()) - absent
    reasons = []
    if absent:
        reasons.append(f"{absent} have no gallery image of their identity (identity -1 is junk: it matches nothing)")
    if own_camera:
        reasons.append(f"{own_camera} have them only in their own camera, where they do not count")
    return f"of the {len(unmatched)} queries, {' and '.join(reasons)}" if reasons else "there are no queries"
