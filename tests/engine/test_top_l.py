"""Top-L re-ranking against a plain re-implementation: each query's L nearest by the baseline
re-ordered by the method, the rest in baseline order after them, scored exactly."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_featureset
from rerankbench.engine.distances import materialise
from rerankbench.engine.registry import method
from rerankbench.engine.shared import SharedSteps
from rerankbench.engine.top_l import TopLDistances
from rerankbench.evaluation.metrics import score_queries


def plain_ranking(method_d: np.ndarray, base_d: np.ndarray, top_l: int) -> np.ndarray:
    """Gallery positions of each query in final order (stable sorts: ties to the earlier item)."""
    out = []
    for m, b in zip(method_d, base_d):
        baseline = np.argsort(b, kind="stable")
        shortlist = np.sort(baseline[:top_l])
        out.append(np.concatenate([shortlist[np.argsort(m[shortlist], kind="stable")], baseline[top_l:]]))
    return np.array(out)


def plain_ap(ranking, q_ids, q_cams, g_ids, g_cams) -> np.ndarray:
    """AP over each ranking, junk (same identity and camera; identity -1) removed."""
    aps = []
    for order, qi, qc in zip(ranking, q_ids, q_cams):
        keep = ~((g_ids[order] == qi) & (g_cams[order] == qc)) & (g_ids[order] >= 0)
        hits = (g_ids[order][keep] == qi)
        ranks = np.flatnonzero(hits) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks) if len(ranks) else 0.0)
    return np.array(aps)


@pytest.mark.parametrize("name,top_l", [("k_reciprocal", 5), ("k_reciprocal", 40), ("aqe", 17), ("gnn", 300)])
def test_top_l_against_a_plain_reranking(name, top_l):
    fs = make_featureset(25, 300, dim=16, clustered=True, spread=1.0, seed=3)
    shared = SharedSteps(fs)
    inner = method(name).rerank(SharedSteps(fs))
    queries, gallery = np.arange(25), np.arange(25, 325)
    method_d = materialise(inner, queries, gallery)
    base_d = materialise(shared.query_gallery_distances(), queries, gallery)
    got = materialise(TopLDistances(inner, shared.features, top_l), queries, gallery)
    want = plain_ranking(method_d, base_d, top_l)
    np.testing.assert_array_equal(np.argsort(got, axis=1, kind="stable"), want)
    q, g = fs.query, fs.gallery
    scores = score_queries([(0, got)], q.ids, g.ids, q.cams, g.cams)
    np.testing.assert_allclose(scores.ap, plain_ap(want, q.ids, q.cams, g.ids, g.cams), atol=1e-12)
    if top_l >= 300:  # the whole gallery: the method itself
        full = score_queries([(0, method_d)], q.ids, g.ids, q.cams, g.cams)
        np.testing.assert_allclose(scores.ap, full.ap, atol=1e-12)


def test_baseline_is_unchanged_and_blocks_stay_small(monkeypatch):
    import rerankbench.engine.top_l as top_l
    monkeypatch.setattr(top_l, "QUERY_ROWS", 4)  # several query blocks
    fs = make_featureset(30, 200, dim=8, clustered=True, seed=1)
    shared = SharedSteps(fs)
    base = shared.query_gallery_distances()
    queries, gallery = np.arange(30), np.arange(30, 230)
    blocks = list(TopLDistances(base, shared.features, 10).blocks(queries, gallery))
    assert max(len(b) for _, b in blocks) == 4
    q, g = fs.query, fs.gallery
    got = score_queries(iter(blocks), q.ids, g.ids, q.cams, g.cams)
    want = score_queries(base.blocks(queries, gallery), q.ids, g.ids, q.cams, g.cams)
    np.testing.assert_array_equal(got.ap, want.ap)
    np.testing.assert_array_equal(got.first_rank, want.first_rank)


def test_top_l_must_be_positive():
    fs = make_featureset(5, 20, dim=4)
    with pytest.raises(ValueError, match="at least 1"):
        TopLDistances(None, SharedSteps(fs).features, 0)
