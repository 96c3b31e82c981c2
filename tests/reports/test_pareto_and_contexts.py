"""Accuracy against cost (Pareto fronts) and the two contexts side by side, from hand-made records."""
from __future__ import annotations

import numpy as np
import pytest

from rerankbench.harness.store import ResultsStore
from rerankbench.reports.context_comparison import context_sets, context_table
from rerankbench.reports.pareto import Point, front, front_table, pareto_figures
from rerankbench.reports.report import regenerate
from test_tables_and_plots import record


def point(metric, wall_s, rss, method="aqe"):
    return Point(method, {}, metric, wall_s, rss)


def test_the_front_keeps_the_points_nothing_beats():
    points = [point(50, 0.1, 500, "baseline"), point(60, 1.0, 900), point(58, 0.5, 600), point(70, 2.0, 700),
              point(65, 3.0, 650), point(70, 2.5, 800), point(49, 0.05, 400)]
    assert [(p.metric, p.wall_s) for p in front(points, "wall_s")] == [(49, 0.05), (50, 0.1), (58, 0.5), (60, 1.0),
                                                                       (70, 2.0)]
    assert [(p.metric, p.peak_rss_mb) for p in front(points, "peak_rss_mb")] == [(49, 400), (50, 500), (58, 600),
                                                                                 (65, 650), (70, 700)]
    assert front([point(50, 1.0, 1), point(60, 1.0, 1)], "wall_s") == [point(60, 1.0, 1)]  # equal cost: the better


def cost_records():
    """msmt17: baseline, AQE at its defaults (three trials) and a k sweep; VehicleID: two methods;
    msmt17 in the gallery context: the baseline."""
    records = [record(method="baseline", second=50.0, wall_s=0.001)]
    records += [record(method="aqe", second=60.0, wall_s=w, trial=t) for t, w in enumerate((3.0, 1.0, 2.0))]
    records += [record(method="aqe", second=m, wall_s=w, overrides={"k": k}, params={"k": k})
                for k, m, w in ((2, 55.0, 0.5), (8, 58.0, 4.0))]
    records += [record(dataset="vehicleid_small", method=m, cmc1=c, protocol="vehicleid", fingerprint="f2")
                for m, c in (("baseline", 80.0), ("gnn", 90.0))]
    records.append({**record(method="baseline", second=50.0), "context": "gallery"})
    for r, rss in zip(records, (500, 700, 800, 900, 650, 720, 100, 100, 500)):
        r["peak_rss_mb"] = float(rss)
    return records


def test_one_figure_per_test_set_with_every_method_and_sweep_point():
    figures = pareto_figures(cost_records())
    assert [(f.stem, f.metric, f.label) for f in figures] == [
        ("msmt17-pareto", "map", "MSMT17 (twin)"), ("msmt17-gallery-pareto", "map", "MSMT17 (twin, gallery context)"),
        ("vehicleid_small-pareto", "cmc1", "VehicleID (small, twin)")]
    points = {(p.method, tuple(p.params.items())): p for p in figures[0].points}
    assert sorted(points) == [("aqe", ()), ("aqe", (("k", 2),)), ("aqe", (("k", 8),)), ("baseline", ())]
    default = points["aqe", ()]
    assert (default.metric, default.wall_s, default.peak_rss_mb) == (60.0, 2.0, 800.0)  # medians of the trials
    assert [p.label for p in front(figures[0].points, "wall_s")] == ["Baseline", "AQE (k=2)", "AQE"]
    assert front_table(figures[0], "peak_rss_mb").splitlines()[2:] == ["| Baseline | 50.00 | 500 |",
                                                                       "| AQE (k=2) | 55.00 | 650 |",
                                                                       "| AQE (k=8) | 58.00 | 720 |",
                                                                       "| AQE | 60.00 | 800 |"]
    assert front_table(figures[0], "wall_s").splitlines()[2] == "| Baseline | 50.00 | 1.0ms |"


def test_report_draws_every_front_and_the_contexts(tmp_path):
    records = cost_records() + [{**record(method="aqe", second=57.0, wall_s=2.5), "context": "gallery"}]
    for r in records:
        ResultsStore(tmp_path).append(r)
    written = {str(p.relative_to(tmp_path)) for p in regenerate(tmp_path)}
    assert {"figures/msmt17-pareto.png", "figures/msmt17-pareto.pdf", "figures/msmt17-pareto.md",
            "figures/msmt17-gallery-pareto.png", "figures/vehicleid_small-pareto.pdf", "figures/contexts.png",
            "figures/contexts.pdf", "tables/contexts.md"} <= written
    page = (tmp_path / "figures" / "msmt17-pareto.md").read_text()
    assert "![msmt17-pareto](msmt17-pareto.png)" in page and "| AQE | 60.00 | 2.0s |" in page
    for name in ("msmt17-pareto.png", "contexts.pdf"):  # the same records give the same files
        before = (tmp_path / "figures" / name).read_bytes()
        regenerate(tmp_path)
        assert (tmp_path / "figures" / name).read_bytes() == before


def test_the_contexts_side_by_side():
    records = cost_records() + [{**record(method="aqe", second=57.0, wall_s=2.5), "context": "gallery"}]
    (msmt17,) = context_sets(records)
    assert (msmt17.label, list(msmt17.pairs)) == ("MSMT17 (twin)", ["baseline", "aqe"])
    assert [pair[1]["context"] for pair in msmt17.pairs.values()] == ["gallery", "gallery"]
    lines = context_table([msmt17], "nowhere").splitlines()
    assert "| method | mAP all | mAP gallery | diff | p | CMC@1 all | CMC@1 gallery | time all | time gallery |" in lines
    assert "| AQE | 60.00 | 57.00 | -3.00 | - | 70.00 | 70.00 | 3.0s | 2.5s |" in lines  # trial 0; no per-query


def test_the_contexts_with_per_query_results(tmp_path):
    from rerankbench.evaluation.per_query import PerQuery
    rng = np.random.default_rng(0)
    ap = rng.uniform(0.3, 1.0, 300)
    for context, shift in (("all", 0.0), ("gallery", -0.1)):
        values = np.clip(ap + shift, 0, 1)
        per_query = PerQuery(np.zeros(300, np.int16), np.arange(300, dtype=np.int32), np.ones(300, np.int32),
                             np.ones(300, np.int32), values, values, values)
        ResultsStore(tmp_path).append({**record(method="sca", second=100 * float(values.mean())), "context": context,
                                       "per_query": per_query})
    (test_set,) = context_sets(ResultsStore(tmp_path).results())
    row = context_table([test_set], tmp_path).splitlines()[-1]
    assert row.startswith("| SCA | ") and "| 9.999e-05 |" in row
    assert float(row.split("|")[4]) == pytest.approx(-100 * float((ap - np.clip(ap - 0.1, 0, 1)).mean()), abs=0.006)
