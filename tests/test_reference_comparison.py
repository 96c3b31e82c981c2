"""compare-reference runs a reference re_ranking file beside ours, each in a fresh process.

The reference here is a stand-in with the published signature, written by the test (a plain
dense k-reciprocal from the spec), so the test needs no download."""
from __future__ import annotations

import json

import pytest

from rerankbench.cli import main

STAND_IN = '''
import numpy as np

def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    d = np.block([[q_q_dist, q_g_dist], [q_g_dist.T, g_g_dist]]).astype(np.float64) ** 2
    d = d / d.max(1, keepdims=True)
    t, m = len(d), len(q_g_dist)
    rank = np.argsort(d, axis=1, kind="stable")
    top = {k: [set(rank[i, :k + 1]) for i in range(t)] for k in (k1, round(k1 / 2))}
    def reciprocal(i, k):
        return [j for j in rank[i, :k + 1] if i in top[k][j]]
    v = np.zeros_like(d)
    for i in range(t):
        r = reciprocal(i, k1)
        expansion = list(r)
        for c in r:
            rc = reciprocal(c, round(k1 / 2))
            if len(set(rc) & set(r)) > 2 / 3 * len(rc):
                expansion += rc
        members = np.unique(expansion)
        w = np.exp(-d[i, members])
        v[i, members] = w / w.sum()
    v = np.stack([v[rank[i, :k2]].mean(0) for i in range(t)])
    s = np.stack([np.minimum(v[q], v[m:]).sum(1) for q in range(m)])
    return (1 - lambda_value) * (1 - s / (2 - s)) + lambda_value * d[:m, m:]
'''


def test_compare_reference_writes_the_report(tmp_path, capsys):
    reference = tmp_path / "re_ranking_ranklist.py"
    reference.write_text(STAND_IN)
    out = tmp_path / "bench"
    code = main(["compare-reference", "--reference", str(reference), "--scale", "0.02",
                 "--output", str(out), "--results", str(tmp_path / "results")])
    assert code == 0
    figures = json.loads((out / "k_reciprocal_vs_reference_market1501.json").read_text())
    assert figures["metrics_equal"] and figures["largest_metric_difference"] == 0
    assert figures["params"]["k1"] == figures["ours"]["shared"]["knn_graph"]["k"] // 2 - 1
    for side in ("ours", "reference_side"):
        assert figures[side]["end_to_end_s"] > 0 and figures[side]["peak_rss_mb"] > 0
    report = (out / "k_reciprocal_vs_reference_market1501.md").read_text()
    assert "| end to end (features in, metrics out) |" in report and "Identical: yes" in report


def test_compare_reference_names_a_missing_file(tmp_path, capsys):
    assert main(["compare-reference", "--reference", str(tmp_path / "nope.py"), "--scale", "0.02"]) == 2
    assert "nope.py: no such file" in capsys.readouterr().err
