"""report --html: one self-contained page per record set, rendered in headless Chromium with
every image loaded and nothing on the console."""
from __future__ import annotations

import re

import numpy as np
import pytest

from headless_chromium import find_chromium, open_page
from rerankbench.cli import main
from rerankbench.evaluation.per_query import PerQuery
from rerankbench.harness.store import ResultsStore
from test_tables_and_plots import record, sweep_records, table_records

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian's chromium "
                                    "package; .ci/run installs it): the page is not opened in a browser")


def planted(ap: np.ndarray) -> PerQuery:
    n = len(ap)
    return PerQuery(np.zeros(n, np.int16), np.arange(n, dtype=np.int32), np.ones(n, np.int32),
                    np.where(ap > 0.75, 1, 3).astype(np.int32), ap, ap, ap)


@pytest.fixture(scope="module")
def record_set(tmp_path_factory):
    """Table V's records, sweeps, two methods with per-query results in both contexts; its pages."""
    folder = tmp_path_factory.mktemp("html")
    store = ResultsStore(folder)
    for r in table_records() + sweep_records():
        store.append({**r, "command": "python -m rerankbench run --methods all", "host": "box", "versions":
                      {"python": "3.11.2", "torch": "2.13.0"}})
    ap = np.random.default_rng(0).uniform(0.4, 1.0, 300)
    for context, shift in (("all", 0.0), ("gallery", -0.05)):
        for method, extra in (("aqe", 0.0), ("sca", 0.0), ("gnn", -0.3)):
            values = np.clip(ap + shift + extra, 0, 1)
            per_query = planted(values)
            store.append({**record(dataset="market1501", method=method, fingerprint="f9", second=100 * values.mean(),
                                   cmc1=100 * float((per_query.first_rank == 1).mean())),
                          "context": context, "per_query": per_query})
    assert main(["report", "--html", "--results", str(folder)]) == 0
    return folder


def test_the_page_holds_the_table_the_marks_the_figures_and_the_provenance(record_set):
    page = (record_set / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and '<h2 id="table5">Table V</h2>' in page
    assert '<span class="best">80.00</span>' in page and re.search(r"<td>-\[\d\]</td>", page)  # ECN failed
    # Market-1501: AQE (the row's best) and SCA identical (p = 1: †), GNN 30 points below (no †)
    row = re.search(r"<tr><td>Market-1501 \(twin\)</td><td>CMC@1</td>(.*?)</tr>", page).group(1)
    cells = [cell for cell in re.findall(r"<td>(.*?)</td>", row) if cell]  # AQE, SCA, GNN
    assert [cell.endswith("†</span>") for cell in cells] == [False, True, False]
    assert cells[0].startswith('<span class="best">') and cells[1].startswith('<span class="best">')
    assert "Significance is not marked" not in page
    pngs = sorted(p.stem for p in (record_set / "figures").glob("*.png"))
    assert sorted(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]+)">', page)) == pngs
    assert "market1501-pareto" in pngs and "contexts" in pngs and "msmt17-k1" in pngs
    assert '<h2 id="contexts">Transductive against inductive</h2>' in page
    assert "<td>box</td>" in page and "<td>2.13.0</td>" in page and "python -m rerankbench run --methods all" in page
    references = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert references and all(ref.startswith("data:") for ref in references)  # self-contained
    assert "<script" not in page


def test_the_page_is_the_same_from_the_same_records(record_set):
    before = (record_set / "report.html").read_bytes()
    assert main(["report", "--html", "--results", str(record_set)]) == 0
    assert (record_set / "report.html").read_bytes() == before


def test_report_without_html_writes_no_page(tmp_path):
    for r in table_records():
        ResultsStore(tmp_path).append(r)
    assert main(["report", "--results", str(tmp_path)]) == 0
    assert not (tmp_path / "report.html").exists()


@needs_chromium
def test_the_page_renders_in_headless_chromium(record_set):
    shown, errors = open_page(CHROMIUM, (record_set / "report.html").as_uri())
    assert errors == []
    assert shown["title"] == f"rerankbench: {record_set.name}"
    assert shown["headings"] == ["Table V", "Transductive against inductive", "Figures", "Provenance"]
    assert len(shown["images"]) == len(list((record_set / "figures").glob("*.png")))
    assert all(image["complete"] and image["width"] > 0 for image in shown["images"]), shown["images"]
    assert shown["tables"] >= 4 and shown["text"] > 1000


@needs_chromium
def test_the_browser_check_sees_a_broken_image_and_console_errors(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>t</title></head><body><img src="missing.png" alt="gone">'
                    '<script>console.error("boom"); not_a_function();</script></body></html>')
    shown, errors = open_page(CHROMIUM, page.as_uri())
    assert shown["images"] == [{"alt": "gone", "complete": True, "width": 0}]
    assert "boom" in errors and any("not_a_function is not defined" in e for e in errors)
    assert any("ERR_FILE_NOT_FOUND" in e for e in errors)
