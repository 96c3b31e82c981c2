"""Time and memory of every method on every test set of a record set.

For each feature set it lists the shared steps (the exact kNN graph and the query-gallery
distances, and the steps of derived features such as alpha-QE-expanded X) and, for each
method, the re-ranking time (excluding the shared steps and the scoring), the scoring time,
the peak RSS of the cell and its metrics.
"""
from __future__ import annotations

import json

from ..engine.contexts import ALL
from ..engine.registry import DATASET_ORDER, METHOD_ORDER, rank_in
from ..harness.frame import last_of, records_frame
from .tables import dataset_key


def _latest(records: list[dict]) -> list[dict]:
    """The last record of each (test set, method, parameters), in the paper's order of test sets and methods."""
    frame = records_frame(records)
    frame["params_json"] = [json.dumps(record["params"], sort_keys=True) for record in frame["record"]]
    chosen = last_of(frame, ["dataset", "fingerprint", "context", "method", "params_json"])["record"]
    return sorted(chosen, key=lambda r: (rank_in(DATASET_ORDER, r["dataset"]), rank_in(METHOD_ORDER, r["method"])))


def _seconds(step: dict | None) -> str:
    if not step:
        return "-"
    if step.get("with_knn_graph"):
        return "in the graph pass"
    return f"{step['seconds']:.1f} s"


def _shared_lines(record: dict) -> list[str]:
    steps = record.get("shared", {}).get("steps", {})
    graph = steps.get("knn_graph", {})
    line = (f"shared steps: kNN graph (K = {graph.get('k', '-')}) {_seconds(graph)}, "
            f"query-gallery distances {_seconds(steps.get('distances'))}")
    derived = [f"{label}: expansion {sub['derive']['seconds']:.1f} s, kNN graph {_seconds(sub.get('knn_graph'))}, "
               f"distances {_seconds(sub.get('distances'))}"
               for label, sub in steps.items() if isinstance(sub, dict) and "derive" in sub]
    peak = record.get("shared", {}).get("peak_rss_mb")
    lines = [line + (f"; peak RSS of the shared steps {peak:.0f} MB" if peak else "")]
    galleries = [sub for sub in steps.values() if isinstance(sub, dict) and "gallery" in sub]
    if galleries:
        graphs = sum((sub.get("knn_graph") or {}).get("seconds", 0.0) for sub in galleries)
        sizes = sorted({sub["gallery"]["rows"] for sub in galleries})
        lines.append(f"gallery context: {len(galleries)} gallery(ies) of {', '.join(map(str, sizes))} rows, their own "
                     f"kNN graphs {graphs:.1f} s in all")
    return lines + [f"derived ({text})" for text in derived]


def time_memory_report(records: list[dict]) -> str:
    """The report as Markdown."""
    chosen = _latest(records)
    if not chosen:
        raise ValueError("no records to report on")
    first = chosen[0]
    dates = [r["date"] for r in chosen if isinstance(r.get("date"), str)]
    scales = sorted({r.get("dataset_info", {}).get("source_scale", 1.0) for r in chosen})
    kernels = sorted({r["cpu_capability"] for r in chosen if r.get("cpu_capability")})
    machine = first.get("device", "not recorded") + (f" ({', '.join(kernels)} kernels)" if kernels else "")
    lines = [f"# Time and memory of every method on every test set (scale {', '.join(f'{s:g}' for s in scales)})", "",
             f"Machine: {machine}, {first.get('threads', '?')} threads; "
             f"commit {', '.join(sorted({str(r.get('git_commit')) for r in chosen}))}; "
             f"records from {min(dates, default='?')} to {max(dates, default='?')}. "
             "Generated from `records.jsonl` beside it by `python -m rerankbench report`.", "",
             "Re-rank s: the method's own work after the shared steps (building its structures and producing "
             "every query-gallery distance block); scoring s: the evaluation of those blocks. Peak RSS: the "
             "worker process while the cell ran, shared steps resident.", ""]
    for key in dict.fromkeys(map(dataset_key, chosen)):
        rows = [r for r in chosen if dataset_key(r) == key]
        info = rows[0]["dataset_info"]
        context = "" if key[2] == ALL else f", {key[2]} context"
        lines += [f"## {key[0]} (scale {info.get('source_scale', 1.0):g}{context}): {info['num_query']} queries x "
                  f"{info['num_gallery']} gallery (T = {info['num_query'] + info['num_gallery']})", ""]
        lines += [f"- {text}" for text in _shared_lines(rows[0])] + [""]
        lines += ["| method | params | re-rank s | scoring s | peak RSS MB | CMC@1 | CMC@5 | mAP | status |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
            if r["status"] != "ok":
                lines.append(f"| {r['method']} | {params} | - | - | - | - | - | - | failed: {r['error']} |")
                continue
            lines.append(f"| {r['method']} | {params} | {r['wall_s']:.1f} | {r['eval_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                         f"{r['cmc1']:.2f} | {r['cmc5']:.2f} | {r['map']:.2f} | ok |")
        lines.append("")
    return "\n".join(lines)
