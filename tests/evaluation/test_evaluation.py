"""Retrieval metrics: hand-worked cases and a comparison with a plain torchreid-style loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import plain_euclidean, plain_normalise
from rerankbench.engine.distances import PrecomputedDistances
from rerankbench.evaluation.metrics import NoTrueMatch, score_queries, summarise
from rerankbench.evaluation.protocols import evaluate_all
from rerankbench.features.featureset import FeatureSet, Split
from rerankbench.features.trials import VEHICLEID_DRAWS, trials

EXACT = dict(abs=1e-12)

# ---------------------------------------------------------------------------------------------
# (a) one query: junk (-1) interleaved, a same-id same-camera item, distractors (id 0)
#
# Query: id 7, camera 1. The gallery below is listed in index order; in distance order it is
#   d=0.05 id -1  (junk: ignored)
#   d=0.10 id 7 cam 1 (same id AND same camera: removed)
#   d=0.20 id 3 cam 2 -> rank 1, negative
#   d=0.30 id 7 cam 2 -> rank 2, MATCH
#   d=0.35 id -1  (junk)
#   d=0.40 id 7 cam 3 -> rank 3, MATCH
#   d=0.50 id 0 cam 1 -> rank 4, negative (distractor, same camera as the query: still kept)
#   d=0.60 id 5 cam 1 -> rank 5, negative
#   d=0.65 id -1  (junk)
#   d=0.70 id 7 cam 1 (removed)
#   d=0.80 id 7 cam 4 -> rank 6, MATCH
#   d=0.90 id 0 cam 2 -> rank 7, negative
#   d=0.95 id 9 cam 2 -> rank 8, negative (used by the invalid query of case (b))
# Matches at ranks r = 2, 3, 6 (P = 3):
#   first rank = 2
#   AP   = (1/2 + 2/3 + 3/6) / 3 = (3/6 + 4/6 + 3/6) / 3 = 10/18 = 5/9
#   INP  = P / r_P = 3/6 = 1/2
#   AP_trapezoid = (1/3) * [ (0/1 + 1/2)/2 + (1/2 + 2/3)/2 + (2/5 + 3/6)/2 ]
#                = (1/3) * [ 1/4 + 7/12 + 9/20 ] = (1/3) * (15 + 35 + 27)/60 = 77/180
# ---------------------------------------------------------------------------------------------
_ROWS = [  # (distance for query A, id, camera) in gallery index order (deliberately shuffled)
    (0.60, 5, 1), (0.05, -1, 1), (0.90, 0, 2), (0.30, 7, 2), (0.65, -1, 2), (0.10, 7, 1), (0.80, 7, 4),
    (0.35, -1, 3), (0.20, 3, 2), (0.70, 7, 1), (0.50, 0, 1), (0.40, 7, 3), (0.95, 9, 2),
]
G_IDS = np.array([r[1] for r in _ROWS])
G_CAMS = np.array([r[2] for r in _ROWS])
D_A = np.array([r[0] for r in _ROWS], dtype=np.float32)


def test_hand_worked_single_query():
    s = score_queries([(0, D_A[None, :])], [7], G_IDS, [1], G_CAMS)
    assert s.num_matches.tolist() == [3]
    assert s.first_rank.tolist() == [2]
    assert s.ap[0] == pytest.approx(5 / 9, **EXACT)
    assert s.inp[0] == pytest.approx(1 / 2, **EXACT)
    assert s.ap_trapezoid[0] == pytest.approx(77 / 180, **EXACT)


def test_hand_worked_single_query_without_cameras():
    # No cameras: nothing is removed by camera, junk (-1) still is. Distance order, junk dropped:
    #   0.10 id7 MATCH r1, 0.20 id3 r2, 0.30 id7 MATCH r3, 0.40 id7 MATCH r4, 0.50 id0 r5,
    #   0.60 id5 r6, 0.70 id7 MATCH r7, 0.80 id7 MATCH r8, 0.90 id0 r9, 0.95 id9 r10
    # ranks 1, 3, 4, 7, 8 (P = 5): AP = (1/1 + 2/3 + 3/4 + 4/7 + 5/8) / 5, INP = 5/8
    s = score_queries([(0, D_A[None, :])], [7], G_IDS)
    assert s.num_matches.tolist() == [5]
    assert s.first_rank.tolist() == [1]
    assert s.ap[0] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 7 + 5 / 8) / 5, **EXACT)
    assert s.inp[0] == pytest.approx(5 / 8, **EXACT)
    # trapezoid: k=1,r=1 -> (1 + 1)/2; k=2,r=3 -> (1/2 + 2/3)/2; k=3,r=4 -> (2/3 + 3/4)/2;
    #            k=4,r=7 -> (3/6 + 4/7)/2; k=5,r=8 -> (4/7 + 5/8)/2
    trapezoid = (1 + (1 / 2 + 2 / 3) / 2 + (2 / 3 + 3 / 4) / 2 + (3 / 6 + 4 / 7) / 2 + (4 / 7 + 5 / 8) / 2) / 5
    assert s.ap_trapezoid[0] == pytest.approx(trapezoid, **EXACT)


def test_distractor_is_a_negative_not_junk():
    # Relabel the two distractors (id 0) as junk (-1): they leave the ranking, so the matches
    # at ranks 2, 3, 6 move to 2, 3, 5: AP = (1/2 + 2/3 + 3/5)/3, INP = 3/5.
    ids = np.where(G_IDS == 0, -1, G_IDS)
    s = score_queries([(0, D_A[None, :])], [7], ids, [1], G_CAMS)
    assert s.first_rank.tolist() == [2]
    assert s.ap[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3, **EXACT)
    assert s.inp[0] == pytest.approx(3 / 5, **EXACT)


# ---------------------------------------------------------------------------------------------
# (b) invalid queries are skipped (canonical) or count 0 (official)
#   query A: id 7 cam 1, as above: first rank 2, AP 5/9, INP 1/2, AP_trap 77/180
#   query B: id 9 cam 2: the only id-9 gallery item is camera 2 -> removed -> no valid match
#   query C: id 3 cam 1: the id-3 item (cam 2) is nearest -> rank 1, P = 1: AP = INP = AP_trap = 1
# canonical (valid A, C): cmc1 = 1/2, cmc5 = 2/2, mAP = (5/9 + 1)/2 = 7/9, mINP = (1/2 + 1)/2 = 3/4
# official (all three):   cmc1 = 1/3, cmc5 = 2/3, mAP = (77/180 + 0 + 1)/3 = 257/540; mINP as canonical
# ---------------------------------------------------------------------------------------------
def _three_queries():
    d_b = np.linspace(0.1, 0.9, len(G_IDS)).astype(np.float32)
    d_c = np.full(len(G_IDS), 0.5, dtype=np.float32)
    d_c[np.flatnonzero(G_IDS == 3)[0]] = 0.01
    d = np.stack([D_A, d_b, d_c])
    return d, np.array([7, 9, 3]), np.array([1, 2, 1])


def test_invalid_query_skipped_and_counted():
    d, q_ids, q_cams = _three_queries()
    s = score_queries([(0, d)], q_ids, G_IDS, q_cams, G_CAMS)
    assert s.num_matches.tolist() == [3, 0, 1]
    assert s.first_rank.tolist() == [2, 0, 1]
    m = summarise(s)
    assert m["num_queries"] == 3
    assert m["num_invalid_queries"] == 1
    assert m["cmc1"] == pytest.approx(50.0, **EXACT)
    assert m["cmc5"] == pytest.approx(100.0, **EXACT)
    assert m["cmc10"] == pytest.approx(100.0, **EXACT)
    assert m["map"] == pytest.approx(100 * 7 / 9, **EXACT)
    assert m["minp"] == pytest.approx(75.0, **EXACT)


def test_official_averages_over_all_queries_with_trapezoid_ap():
    d, q_ids, q_cams = _three_queries()
    m = summarise(score_queries([(0, d)], q_ids, G_IDS, q_cams, G_CAMS), official=True)
    assert m["num_queries"] == 3
    assert m["num_invalid_queries"] == 1
    assert m["cmc1"] == pytest.approx(100 / 3, **EXACT)
    assert m["cmc5"] == pytest.approx(200 / 3, **EXACT)
    assert m["map"] == pytest.approx(100 * 257 / 540, **EXACT)
    assert m["minp"] == pytest.approx(75.0, **EXACT)


# Test sets where no query can be scored: summarise refuses them, saying why, rather than report
# 0.00 (which Table V would mark as the row's best). Gallery: ids [4, 5, -1], cameras [0, 1, 1].
@pytest.mark.parametrize("q_ids, q_cams, g_ids, why", [
    # every query's only same-identity item is in its own camera
    ([4, 4], [0, 0], [4, 5, -1], "of the 2 queries, 2 have them only in their own camera"),
    # no query identity in the gallery
    ([7, 8, 9], [0, 1, 0], [4, 5, -1], "of the 3 queries, 3 have no gallery image of their identity"),
    # an all-junk gallery
    ([4, 5], [0, 1], [-1, -1, -1], "of the 2 queries, 2 have no gallery image of their identity (identity -1 is junk"),
    # junk queries (-1 matches nothing, not even the gallery's -1)
    ([-1, -1], [0, 0], [4, 5, -1], "of the 2 queries, 2 have no gallery image of their identity"),
    # both reasons
    ([4, 9, 4], [0, 0, 0], [4, 5, -1], "of the 3 queries, 1 have no gallery image of their identity (identity -1 is "
                                       "junk: it matches nothing) and 2 have them only in their own camera"),
])
@pytest.mark.parametrize("official", [False, True])
def test_no_query_with_a_true_match_is_refused(q_ids, q_cams, g_ids, why, official):
    d = np.tile(np.array([0.1, 0.2, 0.3], np.float32), (len(q_ids), 1))
    s = score_queries([(0, d)], q_ids, g_ids, q_cams, [0, 1, 1])
    assert s.num_matches.tolist() == [0] * len(q_ids)
    with pytest.raises(NoTrueMatch) as error:
        summarise(s, official=official)
    assert str(error.value).startswith(f"no query has a true match in the gallery: {why}")
    assert "\n" not in str(error.value)


def test_one_query_with_a_true_match_is_enough():
    # ids as the last case above, but the third query's camera is 1: its id-4 item (camera 0) is
    # a match at rank 1 -> scored over 1 valid query, the other two skipped and counted
    d = np.tile(np.array([0.1, 0.2, 0.3], np.float32), (3, 1))
    m = summarise(score_queries([(0, d)], [4, 9, 4], [4, 5, -1], [0, 0, 1], [0, 1, 1]))
    assert (m["num_queries"], m["num_invalid_queries"]) == (3, 2)
    assert (m["cmc1"], m["map"], m["minp"]) == (100.0, 100.0, 100.0)


@pytest.mark.parametrize("protocol, why", [
    ("market", "of the 2 queries, 2 have no gallery image of their identity (identity -1 is junk: it matches "
               "nothing)"),  # ids 1, 2 against 3, 4, 5
    ("vehicleid", "there are no queries"),  # one image per identity: every draw puts all five in the gallery
])
def test_evaluate_all_refuses_a_test_set_without_true_matches(protocol, why):
    fs = FeatureSet("none", Split(np.eye(2, 6, dtype=np.float32), np.array([1, 2]), np.zeros(2, np.int64)),
                    Split(np.eye(3, 6, 2, dtype=np.float32), np.array([3, 4, 5]), np.ones(3, np.int64)),
                    protocol=protocol)
    d = PrecomputedDistances(np.ones((5, 5), np.float32), np.arange(5), np.arange(5))
    with pytest.raises(NoTrueMatch) as error:
        evaluate_all(d, fs)
    assert str(error.value) == f"no query has a true match in the gallery: {why}"


# ---------------------------------------------------------------------------------------------
# (c) ties resolve by gallery index (stable sort)
# ---------------------------------------------------------------------------------------------
def test_tie_negative_first_in_index_order():
    # query id 1 cam 0; gallery [id2 d.5, id1 d.5, id3 d.7]: the negative (index 0) precedes
    # the tied match (index 1): match at rank 2 -> AP = 1/2, INP = 1/2, CMC@1 = 0
    s = score_queries([(0, np.array([[0.5, 0.5, 0.7]], np.float32))], [1], [2, 1, 3], [0], [1, 1, 1])
    assert s.first_rank.tolist() == [2]
    assert s.ap[0] == pytest.approx(0.5, **EXACT)
    assert s.inp[0] == pytest.approx(0.5, **EXACT)
    # trapezoid: k=1, r=2: (0/1 + 1/2)/2 = 1/4
    assert s.ap_trapezoid[0] == pytest.approx(0.25, **EXACT)


def test_tie_match_first_in_index_order():
    # the same, match at index 0: rank 1 -> AP = 1
    s = score_queries([(0, np.array([[0.5, 0.5, 0.7]], np.float32))], [1], [1, 2, 3], [0], [1, 1, 1])
    assert s.first_rank.tolist() == [1]
    assert s.ap[0] == pytest.approx(1.0, **EXACT)
    assert s.inp[0] == pytest.approx(1.0, **EXACT)


@pytest.mark.parametrize("g_ids, g_cams, first, ap, inp", [
    # distances (all variants): [.5, .5, .5, .5, .3, .5]; query id 1 camera 0.
    # idx1 is junk (-1); idx5 is id 1 camera 0 (same id and camera: removed); idx4 (id 3, .3)
    # is rank 1. The ties at .5 come in index order:
    # idx0 MATCH r2, idx2 neg r3, idx3 MATCH r4: AP = (1/2 + 2/4)/2 = 1/2, INP = 2/4
    ([1, -1, 2, 1, 3, 1], [1, 1, 1, 2, 1, 0], 2, 1 / 2, 2 / 4),
    # idx0 neg r2, idx2 MATCH r3, idx3 MATCH r4: AP = (1/3 + 2/4)/2 = 5/12, INP = 2/4
    ([2, -1, 1, 1, 3, 1], [1, 1, 1, 2, 1, 0], 3, 5 / 12, 2 / 4),
    # idx0 MATCH r2, idx2 MATCH r3, idx3 neg r4: AP = (1/2 + 2/3)/2 = 7/12, INP = 2/3
    ([1, -1, 1, 2, 3, 1], [1, 1, 2, 1, 1, 0], 2, 7 / 12, 2 / 3),
])
def test_multi_way_tie_with_junk_inside(g_ids, g_cams, first, ap, inp):
    d = np.array([[0.5, 0.5, 0.5, 0.5, 0.3, 0.5]], np.float32)
    s = score_queries([(0, d)], [1], g_ids, [0], g_cams)
    assert s.num_matches.tolist() == [2]
    assert s.first_rank.tolist() == [first]
    assert s.ap[0] == pytest.approx(ap, **EXACT)
    assert s.inp[0] == pytest.approx(inp, **EXACT)


# ---------------------------------------------------------------------------------------------
# (d) CMC@5 and CMC@10
# ---------------------------------------------------------------------------------------------
def test_cmc_at_5_and_10():
    # Query i has identity i+1; the gallery holds one image of each of identities 1..7 plus five
    # negatives (id 50..54): 12 items. Query i's own image is placed at rank r_i by giving the
    # other eleven items distances 1..11 and it r_i - 0.5. Ranks 1, 3, 5, 6, 10, 11 and query 6
    # (id 7) is made invalid by giving it a gallery-less identity (id 99).
    # valid = 6 queries: CMC@1 = 1/6, CMC@5 = 3/6 (ranks 1, 3, 5), CMC@10 = 5/6 (all but 11);
    # AP = 1/r for a single match: mAP = (1 + 1/3 + 1/5 + 1/6 + 1/10 + 1/11) / 6
    g_ids = np.array([1, 2, 3, 4, 5, 6, 7, 50, 51, 52, 53, 54])
    target = [1, 3, 5, 6, 10, 11]
    rows = []
    for i, r in enumerate(target):
        others = [j for j in range(12) if j != i]
        row = np.empty(12, np.float32)
        row[others] = np.arange(1, 12)
        row[i] = r - 0.5
        rows.append(row)
    rows.append(np.arange(12, dtype=np.float32))
    q_ids = np.array([1, 2, 3, 4, 5, 6, 99])
    s = score_queries([(0, np.stack(rows))], q_ids, g_ids)
    assert s.first_rank.tolist() == [1, 3, 5, 6, 10, 11, 0]
    m = summarise(s)
    assert m["num_invalid_queries"] == 1
    assert m["cmc1"] == pytest.approx(100 / 6, **EXACT)
    assert m["cmc5"] == pytest.approx(300 / 6, **EXACT)
    assert m["cmc10"] == pytest.approx(500 / 6, **EXACT)
    assert m["map"] == pytest.approx(100 * (1 + 1 / 3 + 1 / 5 + 1 / 6 + 1 / 10 + 1 / 11) / 6, **EXACT)
    m = summarise(s, cmc_ranks=(1, 3, 11))
    assert (m["cmc1"], m["cmc3"], m["cmc11"]) == pytest.approx((100 / 6, 200 / 6, 100.0), **EXACT)


# ---------------------------------------------------------------------------------------------
# (e) against a plain per-query loop (stable argsort, torchreid-style), uneven blocks
# ---------------------------------------------------------------------------------------------
def plain_scores(d, q_ids, g_ids, q_cams, g_cams):
    """Per query: (num_matches, first_rank, AP, AP_trapezoid, INP) with a full stable sort."""
    out = []
    for i in range(len(d)):
        order = np.argsort(d[i], kind="stable")
        ids = g_ids[order]
        keep = ids != -1
        if q_cams is not None:
            keep &= ~((ids == q_ids[i]) & (g_cams[order] == q_cams[i]))
        matches = (ids[keep] == q_ids[i]) & (q_ids[i] != -1)
        if not matches.any():
            out.append((0, 0, 0.0, 0.0, 0.0))
            continue
        hits = matches.cumsum()
        precision = hits / np.arange(1, len(matches) + 1)
        ap = float((precision * matches).sum() / matches.sum())
        ranks = np.flatnonzero(matches) + 1
        k = np.arange(1, len(ranks) + 1)
        prev = np.array([1.0 if r == 1 else (kk - 1) / (r - 1) for kk, r in zip(k, ranks)])
        trap = float(np.sum((prev + k / ranks) / 2) / len(ranks))
        out.append((len(ranks), int(ranks[0]), ap, trap, len(ranks) / ranks[-1]))
    return [np.array(c) for c in zip(*out)]


def plain_summary(cols, official=False):
    num, first, ap, trap, inp = cols
    valid = num > 0
    n = len(num) if official else int(valid.sum())
    apv = trap if official else ap
    over = np.ones_like(valid) if official else valid
    return {"cmc1": 100.0 * int(((first >= 1) & (first <= 1))[over].sum()) / n,
            "cmc5": 100.0 * int(((first >= 1) & (first <= 5))[over].sum()) / n,
            "cmc10": 100.0 * int(((first >= 1) & (first <= 10))[over].sum()) / n,
            "map": 100.0 * float(apv[over].sum()) / n,
            "minp": 100.0 * float(inp[valid].sum()) / int(valid.sum()),
            "num_queries": len(num), "num_invalid_queries": int((~valid).sum())}


@pytest.mark.parametrize("quantised", [False, True])
@pytest.mark.parametrize("with_cams", [True, False])
@pytest.mark.parametrize("piece_rows", [None, 7])  # 7: blocks are scored in pieces that do not divide them
def test_matches_plain_loop_on_random_input(quantised, with_cams, piece_rows):
    rng = np.random.default_rng(11 + quantised + 2 * with_cams)
    m, n = 200, 1500
    g_ids = rng.integers(-1, 30, n)  # -1 junk, 0 distractor, 1..29 identities
    q_ids = rng.integers(1, 30, m)
    q_ids[:6] = [0, 0, -1, 5, 5, 5]
    q_cams, g_cams = rng.integers(0, 4, m), rng.integers(0, 4, n)
    if not with_cams:
        q_cams = g_cams = None
    if quantised:
        d = (rng.integers(0, 8, (m, n)) / 8).astype(np.float32)
    else:
        d = rng.random((m, n), dtype=np.float32)
    cuts = [0, 1, 38, 39, 150, 200]
    blocks = [(a, d[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    work = {} if piece_rows is None else {"work_bytes": 4 * n * piece_rows}
    s = score_queries(iter(blocks), q_ids, g_ids, q_cams, g_cams, **work)
    num, first, ap, trap, inp = plain_scores(d, q_ids, g_ids, q_cams, g_cams)
    assert (num > 0).sum() > 150 and (num == 0).any()  # the case has valid and invalid queries
    np.testing.assert_array_equal(s.num_matches, num)
    np.testing.assert_array_equal(s.first_rank, first)
    np.testing.assert_allclose(s.ap, ap, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.ap_trapezoid, trap, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.inp, inp, rtol=0, atol=1e-12)
    for official in (False, True):
        got, want = summarise(s, official=official), plain_summary((num, first, ap, trap, inp), official)
        for key in ("cmc1", "cmc5", "cmc10", "num_queries", "num_invalid_queries"):
            assert got[key] == want[key], key  # exactly equal
        for key in ("map", "minp"):
            assert got[key] == pytest.approx(want[key], rel=1e-13, abs=1e-12), key


def test_block_split_does_not_change_scores():
    rng = np.random.default_rng(3)
    d = (rng.integers(0, 5, (40, 60)) / 5).astype(np.float32)
    q_ids, g_ids = rng.integers(0, 6, 40), rng.integers(-1, 6, 60)
    whole = score_queries([(0, d)], q_ids, g_ids)
    parts = score_queries([(0, d[:7]), (7, d[7:8]), (8, d[8:])], q_ids, g_ids)
    for field in ("num_matches", "first_rank", "ap", "ap_trapezoid", "inp"):
        np.testing.assert_array_equal(getattr(whole, field), getattr(parts, field))


# ---------------------------------------------------------------------------------------------
# (f) blocks out of order
# ---------------------------------------------------------------------------------------------
def test_block_at_wrong_offset_raises():
    d = np.zeros((4, 3), np.float32)
    ids = [1, 2, 3, 4]
    with pytest.raises(ValueError, match="row 3"):
        score_queries([(0, d[:2]), (3, d[2:])], ids, [1, 2, 3])  # a gap: rows 2.. expected at 2
    with pytest.raises(ValueError):
        score_queries([(2, d[2:]), (0, d[:2])], ids, [1, 2, 3])  # wrong order
    with pytest.raises(ValueError):
        score_queries([(0, d[:2])], ids, [1, 2, 3])  # does not cover all queries
    with pytest.raises(ValueError):
        score_queries([(0, d[:, :2])], ids, [1, 2, 3])  # wrong width


# ---------------------------------------------------------------------------------------------
# (g) VehicleID protocol: 10 seeded draws, one image per identity in the gallery
# ---------------------------------------------------------------------------------------------
def _vehicleid_set(with_cams=False):
    rng = np.random.default_rng(5)
    counts = [2, 3, 4, 5, 2, 3, 4, 6]  # images per identity, 8 identities, 29 images
    ids = np.repeat(np.arange(1, 9), counts)
    perm = rng.permutation(len(ids))
    ids = ids[perm]
    centres = rng.normal(size=(9, 8))
    x = (centres[ids] + 0.9 * rng.normal(size=(len(ids), 8))).astype(np.float32)
    cams = rng.integers(0, 2, len(ids)) if with_cams else None
    # initial split: the first image of each identity in the gallery (the protocol ignores it)
    _, first = np.unique(ids, return_index=True)
    g = np.sort(first)
    q = np.setdiff1d(np.arange(len(ids)), g)
    split = lambda rows: Split(x[rows], ids[rows], None if cams is None else cams[rows])  # noqa: E731
    return FeatureSet("vid", split(q), split(g), protocol="vehicleid"), x, ids


def test_vehicleid_draws_one_image_per_identity():
    fs, _, _ = _vehicleid_set()
    ids = np.concatenate([fs.query.ids, fs.gallery.ids])
    draws = trials(fs)
    assert len(draws) == VEHICLEID_DRAWS == 10
    galleries = set()
    for query_rows, gallery_rows in draws:
        assert sorted(ids[gallery_rows].tolist()) == list(range(1, 9))  # exactly one per identity
        assert len(np.intersect1d(query_rows, gallery_rows)) == 0
        assert sorted(np.concatenate([query_rows, gallery_rows]).tolist()) == list(range(29))
        galleries.add(tuple(gallery_rows))
    assert len(galleries) > 1  # the draws differ
    again = trials(fs)
    for (q1, g1), (q2, g2) in zip(draws, again):  # seeded: the same draws every time
        np.testing.assert_array_equal(g1, g2)
        np.testing.assert_array_equal(q1, q2)


def test_vehicleid_metrics_are_the_mean_over_draws():
    fs, _, _ = _vehicleid_set()
    x = plain_normalise(fs.stacked())
    d = plain_euclidean(x, x).astype(np.float32)
    ids = np.concatenate([fs.query.ids, fs.gallery.ids])
    t = len(ids)
    result = evaluate_all(PrecomputedDistances(d, np.arange(t), np.arange(t)), fs)
    per_draw = []
    for query_rows, gallery_rows in trials(fs):
        sub = d[np.ix_(query_rows, gallery_rows)]
        per_draw.append(summarise(score_queries([(0, sub)], ids[query_rows], ids[gallery_rows])))
    assert result["trials"] == 10
    assert result["num_queries"] == 29 - 8
    for key in ("cmc1", "cmc5", "cmc10", "map", "minp"):
        values = np.array([p[key] for p in per_draw])
        assert result[key] == pytest.approx(values.mean(), abs=1e-9), key
        assert result[f"{key}_std"] == pytest.approx(values.std(), abs=1e-9), key
    assert len({p["cmc1"] for p in per_draw}) > 1  # not the same draw ten times


def test_vehicleid_ignores_cameras():
    plain, _, _ = _vehicleid_set(with_cams=False)
    with_cams, _, _ = _vehicleid_set(with_cams=True)
    x = torch.nn.functional.normalize(torch.from_numpy(plain.stacked()), dim=1)
    from rerankbench.engine.distances import FeatureDistances
    a = evaluate_all(FeatureDistances(x), plain)
    b = evaluate_all(FeatureDistances(x), with_cams)
    assert a == b
    assert a["num_invalid_queries"] == 0
