"""Table V, the sweeps and their plots, and the report, from hand-made records."""
import json

import pytest

from rerankbench import cli
from rerankbench.harness.store import ResultsStore
from rerankbench.harness.sweep import parse_values, sweep_cells
from rerankbench.reports.paper_table import Entry, build_table, duration, mark_best
from rerankbench.reports.plots import draw, peak_table, sweep_figures
from rerankbench.reports.report import export, regenerate
from rerankbench.reports.table_formats import read_csv, to_csv, to_latex, to_markdown


def record(dataset="msmt17", method="baseline", cmc1=70.0, second=50.0, wall_s=1.0, status="ok", overrides=None,
           protocol="market", fingerprint="f1", trial=0, synthetic=True, error=None, params=None):
    params = {**(params or {}), **(overrides or {})}
    metrics = {"cmc1": cmc1, "cmc5": second if protocol == "vehicleid" else cmc1 + 5, "map": second, "minp": 10.0}
    if status != "ok":
        metrics = dict.fromkeys(metrics)
    return {"cell": json.dumps([dataset, fingerprint, method, params, trial, "cpu"]), "dataset": dataset,
            "dataset_info": {"fingerprint": fingerprint, "protocol": protocol, "source_scale": 1.0, "num_query": 10,
                             "num_gallery": 90},
            "synthetic": synthetic, "method": method, "params": params, "overrides": overrides or {}, "trial": trial,
            "status": status, "error": error, **metrics, "wall_s": wall_s if status == "ok" else None, "eval_s": 0.1,
            "peak_rss_mb": 100.0, "device": "cpu:test", "threads": 2, "git_commit": "abc", "date": "2026-11-24",
            "shared": {"steps": {"knn_graph": {"seconds": 3.0, "k": 10}, "distances": {"seconds": 2.0}}}}


def table_records():
    return [record(method="baseline", cmc1=73.0, second=50.0, wall_s=0.0004),
            record(method="aqe", cmc1=80.0, second=60.0, wall_s=2.0),
            record(method="alpha_qe", cmc1=80.0, second=65.0, wall_s=3.0),
            record(method="k_reciprocal", cmc1=78.0, second=66.0, wall_s=20.0),
            record(method="ecn", status="failed", error="out of memory: over the 10 MB limit\ntraceback"),
            record(dataset="vehicleid_small", method="baseline", cmc1=80.0, second=94.0, protocol="vehicleid",
                   fingerprint="f2"),
            record(dataset="vehicleid_small", method="aqe", cmc1=71.0, second=92.0, protocol="vehicleid", fingerprint="f2")]


def rows_by(table):
    return {(row.dataset, row.metric): row for row in table.rows}


def test_table_layout_marks_failures_and_empty_cells():
    table = build_table(table_records())
    assert table.methods == ["baseline", "aqe", "alpha_qe", "k_reciprocal", "ecn"]
    rows = rows_by(table)
    assert [key[1] for key in rows if key[0] == "MSMT17 (twin)"] == ["CMC@1", "mAP", "time"]
    assert [key[1] for key in rows if key[0] == "VehicleID (small, twin)"] == ["CMC@1", "CMC@5", "time"]
    cmc1 = rows["MSMT17 (twin)", "CMC@1"].entries
    assert [cmc1[m].mark for m in table.methods] == ["", "best", "best", "second", ""]  # a tie shares the best
    assert cmc1["ecn"].text == "-[2]" and cmc1["ecn"].value is None
    assert table.notes[1] == "ecn on MSMT17 (twin): out of memory: over the 10 MB limit"
    assert table.notes[0].startswith("MSMT17 (twin): shared steps") and "5.0 s" in table.notes[0]
    mean_ap = rows["MSMT17 (twin)", "mAP"].entries
    assert (mean_ap["k_reciprocal"].mark, mean_ap["alpha_qe"].mark, mean_ap["aqe"].mark) == ("best", "second", "")
    vehicle = rows["VehicleID (small, twin)", "CMC@5"].entries
    assert (vehicle["baseline"].text, vehicle["aqe"].text, vehicle["alpha_qe"].text) == ("94.00", "92.00", "")
    times = rows["MSMT17 (twin)", "time"].entries
    assert (times["baseline"].text, times["k_reciprocal"].text, times["ecn"].text) == ("0.4ms", "20.0s", "-")


def test_table_uses_default_parameters_and_the_median_time_of_trials():
    records = [record(method="aqe", cmc1=80.0, wall_s=5.0, trial=t) for t in range(3)]
    records[1]["wall_s"], records[2]["wall_s"] = 1.0, 2.0
    records.append(record(method="aqe", cmc1=99.0, overrides={"k": 3}))  # a sweep point: not in Table V
    row = rows_by(build_table(records))
    assert row["MSMT17 (twin)", "CMC@1"].entries["aqe"].value == 80.0
    assert row["MSMT17 (twin)", "time"].entries["aqe"].value == 2.0


def test_mark_best_ties_and_second():
    entries = {name: Entry(value) for name, value in zip("abcde", [90.0, 85.0, 90.0, None, 70.0])}
    mark_best(entries)
    assert [entries[n].mark for n in "abcde"] == ["best", "second", "best", "", ""]


def test_duration_as_the_paper_prints_it():
    assert [duration(s) for s in (0.0004, 0.0159, 1.3, 430.63)] == ["0.4ms", "15.9ms", "1.3s", "430.6s"]


def test_table_beside_the_papers_numbers():
    rows = rows_by(build_table(table_records(), with_paper=True))
    paper = rows["MSMT17 (twin)", "CMC@1 paper"].entries
    assert (paper["baseline"].value, paper["aqe"].value, paper["ecn"].text) == (73.75, 76.82, "")
    assert rows["MSMT17 (twin)", "CMC@1 diff"].entries["aqe"].text == "+3.18"
    assert rows["MSMT17 (twin)", "mAP diff"].entries["baseline"].value == pytest.approx(-0.31)
    assert rows["MSMT17 (twin)", "time paper"].entries["k_reciprocal"].text == "430.6s"
    assert rows["VehicleID (small, twin)", "CMC@5 paper"].entries["aqe"].value == 92.18


def test_csv_reads_back_equal():
    table = build_table(table_records(), with_paper=True)
    back = read_csv(to_csv(table))
    assert len(back) == len(table.rows)
    for row, read in zip(table.rows, back):
        assert (read["dataset"], read["metric"]) == (row.dataset, row.metric)
        for method in table.methods:
            entry = row.entries[method]
            expected = entry.value if entry.value is not None else "-" if entry.text.startswith("-") else None
            assert read[method] == expected
    cmc1 = next(r for r in back if r["metric"] == "CMC@1" and r["dataset"] == "MSMT17 (twin)")
    assert cmc1["ecn"] == "-" and "ecn on MSMT17 (twin): out of memory" in cmc1["notes"]


def test_latex_is_balanced_escaped_and_coloured():
    records = table_records() + [record(dataset="my_features", method="aqe", synthetic=False, fingerprint="f3",
                                        cmc1=50.0, second=40.0)]
    text = to_latex(build_table(records))
    body = text.replace("\\{", "").replace("\\}", "")
    assert body.count("{") == body.count("}")
    assert "my\\_features" in text and "my_features" not in text.replace("my\\_features", "")
    assert "$\\alpha$QE" in text and "α" not in text
    assert "\\textcolor{red}{80.00}" in text and "\\textcolor{blue}{78.00}" in text
    assert "-\\textsuperscript{2}" in text and "(\\%)" in text
    columns = 2 + 5
    for line in text.splitlines():
        if line.endswith("\\\\") and " & " in line:
            assert line.count(" & ") == columns - 1, line
    assert text.count("\\begin{") == text.count("\\end{")


def test_the_shared_steps_note_names_the_graph_the_records_used():
    exact = build_table(table_records()[:2])
    assert exact.notes[0] == ("MSMT17 (twin): shared steps (exact kNN graph, query-gallery distances) 5.0 s, "
                              "done once for every method and not in the time row")
    hnsw = [{**r, "knn": {"backend": "hnsw", "params": {"M": 32, "efSearch": 64, "recall_rows": 2000}},
             "knn_recall": 0.80559} for r in table_records()[:2]]
    assert build_table(hnsw).notes[0].startswith("MSMT17 (twin): shared steps (hnsw kNN graph (M 32, efSearch 64; "
                                                 "recall@K 0.8056), query-gallery distances) 5.0 s")


def test_markdown_has_every_row_and_the_notes():
    text = to_markdown(build_table(table_records()))
    assert "| MSMT17 (twin) | CMC@1 | 73.00 | **80.00** | **80.00** | _78.00_ | -[2] |" in text
    assert "[2] ecn on MSMT17 (twin): out of memory" in text
    assert "synthetic twins" in text


def test_two_twins_of_one_test_set_are_named_by_scale_or_else_by_fingerprint():
    other_host = [record(method="baseline", fingerprint="f9"), record(method="acp", cmc1=75.0, fingerprint="f9")]
    same_scale = rows_labels(build_table(table_records()[:2] + other_host))
    assert "MSMT17 (twin, scale 1, fingerprint f1)" in same_scale
    assert "MSMT17 (twin, scale 1, fingerprint f9)" in same_scale
    smaller = [{**r, "dataset_info": {**r["dataset_info"], "source_scale": 0.1}} for r in other_host]
    assert {"MSMT17 (twin, scale 1)", "MSMT17 (twin, scale 0.1)"} <= rows_labels(build_table(table_records()[:2] + smaller))


def rows_labels(table):
    return {label for label, _ in rows_by(table)}


@pytest.mark.parametrize("text, values", [("1:5", [1, 2, 3, 4, 5]), ("2:10:4", [2, 6, 10]), ("5,10,20", [5, 10, 20]),
                                          ("0.1:0.5:0.2", [0.1, 0.3, 0.5]), ("3", [3]), ("0.3,1", [0.3, 1])])
def test_parse_values(text, values):
    assert parse_values(text) == values
    assert all(type(a) is type(b) for a, b in zip(parse_values(text), values))


@pytest.mark.parametrize("text", ["5:1", "1:5:0", "a:b", "1:2:3:4", ""])
def test_parse_values_rejects(text):
    with pytest.raises(ValueError, match="--values"):
        parse_values(text)


def test_sweep_cells_follow_aliases_and_run_the_baseline_once():
    cells = sweep_cells(["baseline", "aqe", "k_reciprocal"], "k1", [2, 4], {"k_reciprocal": {"k2": "3"}})
    assert cells == [("baseline", {}), ("aqe", {"k": 2}), ("aqe", {"k": 4}),
                     ("k_reciprocal", {"k2": "3", "k1": 2}), ("k_reciprocal", {"k2": "3", "k1": 4})]
    with pytest.raises(ValueError, match="none of"):
        sweep_cells(["baseline", "aqe"], "lambda", [0.1], {})
    with pytest.raises(ValueError, match="conflicts"):
        sweep_cells(["aqe"], "k1", [1], {"aqe": {"k": "5"}})


def sweep_records():
    records = [record(method="baseline", cmc1=70.0, second=50.0)]
    for k, (a, b) in {1: (70.0, 50.0), 5: (78.0, 62.0), 10: (74.0, 58.0)}.items():
        records.append(record(method="aqe", cmc1=a, second=b, overrides={"k": k}, params={"k": k}))
    for k, (a, b) in {1: (69.0, 52.0), 5: (75.0, 63.0), 10: (79.0, 66.0)}.items():
        records.append(record(method="k_reciprocal", cmc1=a, second=b, overrides={"k1": k}, params={"k1": k, "k2": 6}))
    records.append(record(method="k_reciprocal", cmc1=60.0, second=40.0, overrides={"k1": 10, "k2": 2}, params={"k1": 10, "k2": 2}))
    records.append(record(method="k_reciprocal", cmc1=61.0, second=41.0, overrides={"k1": 10, "k2": 4}, params={"k1": 10, "k2": 4}))
    return records


def test_sweep_figures_group_by_the_papers_parameter_name():
    figures = sweep_figures(sweep_records())
    assert [(f.dataset, f.param, f.metrics) for f in figures] == [("msmt17", "k1", ("cmc1", "map")),
                                                                  ("msmt17", "k2", ("map",))]
    k1 = figures[0]
    assert [c.method for c in k1.curves] == ["aqe", "k_reciprocal"]
    assert sorted(k1.curves[0].points) == [1, 5, 10] and k1.baseline["cmc1"] == 70.0
    assert [c.label for c in k1.curves] == ["AQE", "k-reciprocal"]
    assert [c.label for c in figures[1].curves] == ["k-reciprocal (k1=10)"]  # what the k2 sweep held fixed


def test_peak_table_rows_at_each_methods_best_value():
    k1 = sweep_figures(sweep_records())[0]
    lines = peak_table(k1, "map").splitlines()
    assert lines[0] == "| k1 | Baseline | AQE | k-reciprocal |"
    assert lines[2:] == ["| 5 | 50.00 | 62.00 | **63.00** |", "| 10 | 50.00 | 58.00 | **66.00** |"]
    assert peak_table(k1, "cmc1").splitlines()[2:] == ["| 5 | 70.00 | **78.00** | 75.00 |",
                                                       "| 10 | 70.00 | 74.00 | **79.00** |"]


def test_draw_writes_png_and_pdf(tmp_path):
    paths = draw(sweep_figures(sweep_records())[0], tmp_path)
    assert [p.name for p in paths] == ["msmt17-k1.png", "msmt17-k1.pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[1].read_bytes()[:5] == b"%PDF-"


def test_report_regenerates_every_record_set(tmp_path):
    for folder, records in {tmp_path: table_records(), tmp_path / "sweeps": sweep_records()}.items():
        folder.mkdir(exist_ok=True)
        for r in records:
            ResultsStore(folder).append(r)
    (tmp_path / "cache").mkdir()
    ResultsStore(tmp_path / "cache").append(record())  # the cache is not a record set
    written = {str(p.relative_to(tmp_path)) for p in regenerate(tmp_path)}
    assert {"tables/table5.md", "tables/table5.tex", "tables/table5.csv", "tables/table5-paper.csv",
            "time_memory.md", "sweeps/figures/msmt17-k1.png", "sweeps/figures/msmt17-k2.pdf",
            "sweeps/figures/msmt17-k1.md", "sweeps/tables/table5.md"} <= written
    assert not any(name.startswith("cache") for name in written)
    figure_page = (tmp_path / "sweeps" / "figures" / "msmt17-k1.md").read_text()
    assert "![msmt17-k1](msmt17-k1.png)" in figure_page and "(b) mAP (%) wrt. k1" in figure_page


def test_export_copies_the_chosen_newest_records(tmp_path):
    records = table_records() + [record(method="aqe", cmc1=81.0, second=61.0)]  # a newer run of one cell
    path = export(records, tmp_path / "set", methods=["baseline", "aqe"], datasets=["msmt17"])
    chosen = ResultsStore(path.parent).records()
    assert [(r["method"], r["cmc1"]) for r in chosen] == [("baseline", 73.0), ("aqe", 81.0)]
    with pytest.raises(ValueError, match="no records"):
        export(records, tmp_path / "none", methods=["gnn"])


def test_sweep_command_end_to_end(tmp_path, capsys):
    results = str(tmp_path)
    code = cli.main(["sweep", "--methods", "baseline,aqe,alpha_qe", "--param", "k1", "--values", "1:3",
                     "--datasets", "market1501", "--scale", "0.02", "--results", results, "--no-progress"])
    assert code == 0
    records = ResultsStore(results).records()
    assert sorted((r["method"], r["params"].get("k")) for r in records) == [
        ("alpha_qe", 1), ("alpha_qe", 2), ("alpha_qe", 3), ("aqe", 1), ("aqe", 2), ("aqe", 3), ("baseline", None)]
    assert {json.dumps(r["overrides"]) for r in records if r["method"] == "aqe"} == {'{"k": 1}', '{"k": 2}', '{"k": 3}'}
    assert all(r["command"].startswith("python -m rerankbench sweep --methods baseline,aqe,alpha_qe") for r in records)
    # k = 1 expands each row by itself alone: the baseline's ranking
    aqe_1 = next(r for r in records if r["method"] == "aqe" and r["params"]["k"] == 1)
    baseline = next(r for r in records if r["method"] == "baseline")
    assert (aqe_1["cmc1"], aqe_1["map"]) == (baseline["cmc1"], baseline["map"])
    assert cli.main(["report", "--results", results]) == 0
    assert (tmp_path / "figures" / "market1501-k1.png").exists()
    assert "| k1 | Baseline | AQE | αQE |" in (tmp_path / "figures" / "market1501-k1.md").read_text()
    assert cli.main(["table", "--results", results, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith('"Market-1501 (twin, scale 0.02)",time,')
