"""`compare` and `table --significance`: paired tests between methods' per-query results."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rerankbench.cli import main
from rerankbench.evaluation.per_query import PerQuery
from rerankbench.harness.store import ResultsStore
from rerankbench.reports.comparison import mark_significance
from rerankbench.reports.paper_table import build_table
from rerankbench.reports.table_formats import to_latex, to_markdown
from test_tables_and_plots import record

TWIN = ["--datasets", "market1501", "--scale", "0.02", "--dim", "32", "--no-progress"]
FIELDS = {"dataset", "methods", "metric", "difference", "p_value", "ci_low", "ci_high", "rounds"}


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_identical_output_aqe_k_1_against_the_baseline(capsys, tmp_path):
    assert main(["run", "--methods", "baseline", *TWIN, "--results", str(tmp_path)]) == 0
    assert main(["run", "--methods", "aqe", "--set", "aqe.k=1", *TWIN, "--results", str(tmp_path)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "compare", "--results", tmp_path, "--dataset", "market1501", "--methods",
                         "aqe,baseline", "--set", "aqe.k=1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert FIELDS <= set(result)
    assert (result["p_value"], result["ci_low"], result["ci_high"], result["difference"]) == (1.0, 0.0, 0.0, 0.0)
    assert (result["dataset"], result["methods"], result["metric"], result["rounds"]) == (
        "market1501", ["aqe", "baseline"], "map", 10_000)
    code, out, err = run(capsys, "compare", "--results", tmp_path, "--dataset", "market1501", "--methods",
                         "aqe,baseline", "--set", "aqe.k=1", "--metric", "cmc1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Market-1501 (twin, scale 0.02): aqe (k=1) against baseline, CMC@1 over ")
    assert lines[2] == "paired randomisation test: p = 1 (two-sided, 10,000 rounds, seed 0)"
    assert lines[3] == "paired bootstrap 95% interval of the difference: [+0.00, +0.00] (10,000 rounds)"


def test_k_reciprocal_against_the_baseline_on_the_market_twin_at_the_default_scale(capsys, tmp_path):
    assert main(["run", "--methods", "baseline,k_reciprocal", "--datasets", "market1501", "--no-progress",
                 "--results", str(tmp_path)]) == 0
    capsys.readouterr()
    code, out, err = run(capsys, "compare", "--results", tmp_path, "--dataset", "market1501", "--methods",
                         "k_reciprocal,baseline", "--json")
    assert code == 0, err
    result = json.loads(out)
    records = {r["method"]: r for r in ResultsStore(tmp_path).results()}
    assert result["difference"] == pytest.approx(records["k_reciprocal"]["map"] - records["baseline"]["map"], abs=1e-9)
    assert result["p_value"] < 0.01
    assert 0 < result["ci_low"] < result["difference"] < result["ci_high"]


@pytest.fixture(scope="module")
def two_scales(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scales")
    for scale in ("0.02", "0.03"):
        assert main(["run", "--methods", "baseline,aqe", "--datasets", "market1501", "--scale", scale, "--dim", "32",
                     "--no-progress", "--results", str(folder)]) == 0
    return folder


@pytest.mark.parametrize("args, message", [
    (["--methods", "aqe"], "--methods: name two different methods, got aqe"),
    (["--methods", "aqe,nope"], "unknown method 'nope'; registered: baseline, aqe, alpha_qe, k_reciprocal, "
                                "alpha_qe_k_reciprocal, sca, ecn, gnn, acp (or 'all')"),
    (["--methods", "aqe,gnn", "--scale", "0.02"], "no ok record of gnn at default parameters on market1501 at scale 0.02"),
    (["--methods", "aqe,baseline", "--set", "aqe.k=3", "--scale", "0.02"],
     "no ok record of aqe at k=3 on market1501 at scale 0.02"),
    (["--methods", "aqe,baseline"], "aqe, baseline on market1501: records of 2 feature sets (scales 0.02, 0.03); "
                                    "choose one with --scale"),
    (["--methods", "aqe,baseline", "--scale", "0.02", "--rounds", "100"], "--rounds must be at least 10,000, got 100"),
])
def test_what_cannot_be_compared_is_said_in_one_line(capsys, two_scales, args, message):
    code, out, err = run(capsys, "compare", "--results", two_scales, "--dataset", "market1501", *args)
    assert code == 2 and err == f"error: {message}\n"


def test_records_without_per_query_results_cannot_be_compared(capsys, two_scales, tmp_path):
    old = [{k: v for k, v in r.items() if k != "per_query"} for r in ResultsStore(two_scales).results()]
    for r in old:
        ResultsStore(tmp_path).append(r)
    code, out, err = run(capsys, "compare", "--results", tmp_path, "--dataset", "market1501", "--methods",
                         "aqe,baseline", "--scale", "0.02")
    assert code == 2 and err.count("\n") == 1
    assert "the record keeps no per-query results" in err


def planted(ap: np.ndarray) -> PerQuery:
    """Per-query results with these APs, a first hit at rank 1 where AP > 0.75 (rank 3 elsewhere)."""
    n = len(ap)
    return PerQuery(np.zeros(n, np.int16), np.arange(n, dtype=np.int32), np.ones(n, np.int32),
                    np.where(ap > 0.75, 1, 3).astype(np.int32), ap, ap, ap)


def test_table_marks_the_cells_not_significantly_different_from_the_rows_best(tmp_path):
    rng = np.random.default_rng(0)
    best = rng.uniform(0.5, 1.0, 400)
    runs = {"aqe": best,  # the row's best (the first of a tie, in the table's order)
            "alpha_qe": best.copy(),  # identical: p = 1
            "k_reciprocal": best + rng.normal(0, 0.01, 400),  # a difference of noise alone
            "sca": best - 0.2,  # far worse
            "ecn": best - 0.1}  # and no per-query results (a record from before they were kept)
    for method, ap in runs.items():
        per_query = planted(np.clip(ap, 0, 1))
        r = record(method=method, cmc1=100 * float((per_query.first_rank == 1).mean()), second=100 * float(ap.mean()))
        r["map"] = 100 * float(per_query.ap.mean())
        ResultsStore(tmp_path).append({**r, "per_query": per_query} if method != "ecn" else r)
    table = mark_significance(build_table(ResultsStore(tmp_path).results()), tmp_path)
    row = next(row for row in table.rows if row.metric == "mAP")
    assert {name: (entry.mark, entry.same_as_best) for name, entry in row.entries.items()} == {
        "aqe": ("best", False), "alpha_qe": ("best", True), "k_reciprocal": ("second", True), "sca": ("", False),
        "ecn": ("", False)}
    assert "MSMT17 (twin), mAP: not tested against AQE: ecn on msmt17: the record keeps no per-query results " \
           "(written before they were kept, or failed)" in table.notes
    text = to_markdown(table)
    assert "|  | mAP | **76.53** | **76.53**† | _76.52_† | 56.53 | 66.53 |" in text
    assert "†: not significantly different from the row's best" in text
    assert "$^\\dagger$" in to_latex(table)
