"""--context gallery through the harness: recorded in every record and part of the cell's identity
(records written before it still name their cells), its metrics those of the API, shown in the
tables; a neighbourhood larger than the gallery stops the run before any cell."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import rerankbench
from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.engine.contexts import in_context
from rerankbench.engine.shared import SharedSteps
from rerankbench.evaluation.protocols import evaluate_all
from rerankbench.harness.store import ResultsStore, cell_key_of
from rerankbench.reports.paper_table import build_table
from rerankbench.reports.table_formats import to_markdown
from rerankbench.reports.time_memory import time_memory_report

TWIN = ["--scale", "0.02", "--dim", "32", "--no-progress"]
METHODS = "baseline,aqe,k_reciprocal,gnn"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same cells in both contexts, on the Market-1501 and VehicleID small twins."""
    folder = tmp_path_factory.mktemp("contexts")
    for context in ("all", "gallery"):
        assert main(["run", "--methods", METHODS, "--datasets", "market1501,vehicleid_small", *TWIN, "--context",
                     context, "--results", str(folder)]) == 0
    return folder


def test_every_record_says_its_context_and_the_contexts_are_different_cells(both):
    records = ResultsStore(both).results()
    assert [r["context"] for r in records] == ["all"] * 8 + ["gallery"] * 8
    assert len({cell_key_of(r) for r in records}) == 16
    assert all(json.loads(r["cell"])[-1] == "gallery" for r in records[8:])
    assert all(cell_key_of(a) != cell_key_of(g) for a, g in zip(records[:8], records[8:]))
    differs = [a["method"] for a, g in zip(records[:8], records[8:]) if a["map"] != g["map"]]
    assert set(differs) == {"aqe", "k_reciprocal", "gnn"}  # the baseline reads no neighbourhood


@pytest.mark.parametrize("dataset", ["market1501", "vehicleid_small"])
def test_the_harness_scores_what_the_api_scores(both, dataset):
    fs = registry.datasets()[dataset].load(scale=0.02, dim=32)
    for record in ResultsStore(both).results():
        if record["dataset"] == dataset and record["context"] == "gallery":
            want = evaluate_all(in_context(registry.method(record["method"]), SharedSteps(fs), "gallery"), fs)
            assert {m: record[m] for m in ("cmc1", "cmc5", "map", "minp")} == {m: want[m] for m in
                                                                               ("cmc1", "cmc5", "map", "minp")}
            if dataset == "market1501":
                got = rerankbench.evaluate(rerankbench.rerank(record["method"], fs, context="gallery"), fs)
                assert got["map"] == record["map"]


def test_a_rerun_skips_the_cells_of_its_context_only(capsys, both):
    code, out, err = run(capsys, "run", "--methods", METHODS, "--datasets", "market1501", *TWIN, "--context", "gallery",
                         "--results", both)
    assert code == 0 and "4 cell(s) already in" in out


def test_records_from_before_contexts_name_the_cells_of_the_context_all(capsys, both, tmp_path):
    for record in ResultsStore(both).results()[:4]:  # market1501 in the context all, without the field
        ResultsStore(tmp_path).append({k: v for k, v in record.items() if k != "context"})
    old = ResultsStore(tmp_path).results()
    assert [cell_key_of(r) for r in old] == [cell_key_of(r) for r in ResultsStore(both).results()[:4]]
    code, out, err = run(capsys, "run", "--methods", METHODS, "--datasets", "market1501", *TWIN, "--results", tmp_path)
    assert code == 0 and "4 cell(s) already in" in out
    code, out, err = run(capsys, "run", "--methods", "baseline", "--datasets", "market1501", *TWIN, "--context",
                         "gallery", "--results", tmp_path)
    assert code == 0 and "already in" not in out and len(ResultsStore(tmp_path).results()) == 5


def test_a_record_with_an_unknown_context_is_malformed(both, tmp_path):
    ResultsStore(tmp_path).append({**ResultsStore(both).results()[0], "context": "everything"})
    with pytest.warns(UserWarning, match=r"records.jsonl:1: skipped a malformed record \(context is 'everything'\)"):
        assert ResultsStore(tmp_path).results() == []


def test_the_tables_show_the_context(capsys, both):
    records = ResultsStore(both).results()
    text = to_markdown(build_table(records))
    assert "| Market-1501 (twin, scale 0.02) | CMC@1 |" in text
    assert "| Market-1501 (twin, scale 0.02, gallery context) | CMC@1 |" in text
    assert "Rows marked 'gallery context' re-rank each query against the gallery alone" in text
    assert "## market1501 (scale 0.02, gallery context): " in time_memory_report(records)
    assert "gallery context: 10 gallery(ies) of 16 rows" in time_memory_report(records)  # VehicleID's draws
    code, out, err = run(capsys, "table", "--records", "--results", both)
    assert "| market1501 (twin, gallery context) | gnn |" in out
    frame = rerankbench.load_records(both)
    assert frame.groupby("context").size().to_dict() == {"all": 8, "gallery": 8}


def test_a_neighbourhood_beyond_the_gallery_stops_the_run_before_any_cell(capsys, tmp_path):
    code, out, err = run(capsys, "run", "--methods", "baseline,ecn", "--datasets", "vehicleid_small", *TWIN,
                         "--context", "gallery", "--results", tmp_path)
    assert code == 2
    assert err == "error: parameter ecn.k = 25 is larger than the 16 rows of the gallery (context gallery)\n"
    assert not (tmp_path / "records.jsonl").exists()


def test_compare_within_one_context(capsys, both):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, err = run(capsys, "compare", "--results", both, "--dataset", "market1501", "--methods",
                             "k_reciprocal,baseline", "--context", "gallery", "--json")
    assert code == 0, err
    records = {r["method"]: r for r in ResultsStore(both).results()
               if r["dataset"] == "market1501" and r["context"] == "gallery"}
    assert json.loads(out)["difference"] == pytest.approx(records["k_reciprocal"]["map"] - records["baseline"]["map"],
                                                          abs=1e-9)
    assert json.loads(out)["context"] == "gallery"
    np.testing.assert_equal(json.loads(run(capsys, "compare", "--results", both, "--dataset", "market1501",
                                           "--methods", "k_reciprocal,baseline", "--json")[1])["context"], "all")
