"""A test set with nothing to score (no query has a true match in the gallery) gives failed
records that say why, not 0.00 stored as ok (which Table V would mark as the row's best)."""
from __future__ import annotations

import numpy as np
import pytest

from rerankbench.cli import main
from rerankbench.harness.store import ResultsStore

M, N, D = 12, 40, 16
METHODS = ["baseline", "aqe", "k_reciprocal"]


def write_features(path, q_ids, g_ids, q_cams, g_cams):
    rng = np.random.default_rng(0)
    np.savez(path, qf=rng.normal(size=(M, D)).astype(np.float32), gf=rng.normal(size=(N, D)).astype(np.float32),
             q_ids=q_ids, g_ids=g_ids, q_cams=q_cams, g_cams=g_cams)


IDS = np.arange(M) % 4 + 1  # queries of identities 1..4
GALLERY_IDS = np.arange(N) % 8 + 1  # every query identity is in the gallery, 5 images each
CASES = {  # (q_ids, g_ids, q_cams, g_cams), why
    "all-junk gallery": ((IDS, np.full(N, -1), np.zeros(M), np.ones(N)),
                         f"of the {M} queries, {M} have no gallery image of their identity"),
    "every gallery image in the query's camera": ((IDS, GALLERY_IDS, np.zeros(M), np.zeros(N)),
                                                  f"of the {M} queries, {M} have them only in their own camera"),
    "no query identity in the gallery": ((IDS + 100, GALLERY_IDS, np.zeros(M), np.ones(N)),
                                         f"of the {M} queries, {M} have no gallery image of their identity"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_nothing_to_score_gives_failed_records(capsys, tmp_path, case):
    arrays, why = CASES[case]
    path, results = tmp_path / "unscorable.npz", tmp_path / "res"
    write_features(path, *arrays)
    code = main(["run", "--methods", ",".join(METHODS), "--features", str(path), "--results", str(results),
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 1, err  # cells failed
    assert err.strip().splitlines()[-1].startswith(f"0 of {len(METHODS)} cells ok, {len(METHODS)} failed")
    records = ResultsStore(results).records()
    assert [r["method"] for r in records] == METHODS
    for record in records:
        assert record["status"] == "failed"
        assert record["error"].startswith(f"NoTrueMatch: no query has a true match in the gallery: {why}")
        assert record["cmc1"] is None and record["map"] is None
    assert "FAILED: NoTrueMatch: no query has a true match" in out
    # Table V: a "-" in every cell of the test set, no 0.00 marked as the best
    assert main(["table", "--results", str(results)]) == 0
    table = capsys.readouterr().out
    rows = [line.split("|") for line in table.splitlines() if line.startswith("| ")]
    metric_rows = [row for row in rows if row[2].strip() in ("CMC@1", "mAP")]
    assert len(metric_rows) == 2 and all(cell.strip().startswith("-[") for row in metric_rows for cell in row[3:-1])
    assert "0.00" not in table and "no query has a true match" in table  # the notes give the reason


def test_queries_without_a_match_among_others_are_skipped_and_counted(capsys, tmp_path):
    # as "every gallery image in the query's camera", but the first four queries are in camera 1
    path, results = tmp_path / "partly.npz", tmp_path / "res"
    q_cams = np.zeros(M)
    q_cams[:4] = 1
    write_features(path, IDS, GALLERY_IDS, q_cams, np.zeros(N))
    assert main(["run", "--methods", "baseline", "--features", str(path), "--results", str(results),
                 "--no-progress"]) == 0
    (record,) = ResultsStore(results).records()
    assert record["status"] == "ok"
    assert (record["num_queries"], record["num_invalid_queries"]) == (M, M - 4)
