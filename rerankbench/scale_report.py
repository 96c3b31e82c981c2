"""The full-scale report: time and peak RSS of every method on every twin, from stored records.

For each feature set it lists the shared steps (the exact kNN graph and the query-gallery
distances, and the steps of derived features such as alpha-QE-expanded X) and, for each
method, the re-ranking time (excluding the shared steps and the scoring), the scoring time,
the peak RSS of the cell and its metrics. The records it was made from are written beside
it, so the report can be regenerated from them.
"""
from __future__ import annotations

import json
from pathlib import Path

from .registry import DATASET_ORDER, METHOD_ORDER, rank_in


def _latest(records: list[dict], scale: float, methods: list[str] | None) -> list[dict]:
    """The last record of each (dataset, method, params) at this scale."""
    chosen: dict[tuple, dict] = {}
    for record in records:
        info = record.get("dataset_info", {})
        if info.get("source_scale", 1.0) != scale or (methods and record["method"] not in methods):
            continue
        chosen[(record["dataset"], record["method"], json.dumps(record["params"], sort_keys=True))] = record
    return sorted(chosen.values(), key=lambda r: (rank_in(DATASET_ORDER, r["dataset"]), rank_in(METHOD_ORDER, r["method"])))


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
    return lines + [f"derived ({text})" for text in derived]


def write_report(records: list[dict], output: str | Path, command: str, scale: float = 1.0,
                 methods: list[str] | None = None) -> Path:
    chosen = _latest(records, scale, methods)
    if not chosen:
        raise ValueError(f"no records at scale {scale:g}{' for ' + ', '.join(methods) if methods else ''}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    first = chosen[0]
    lines = [f"# Full-scale run: time and memory of every method on every twin (scale {scale:g}, synthetic)", "",
             f"Command: `{command}`  ",
             f"Machine: {first['device']}, {first['threads']} threads; commit {first['git_commit']}; "
             f"records from {min(r['date'] for r in chosen)} to {max(r['date'] for r in chosen)}.  ",
             f"Records: `{output.with_suffix('.jsonl').name}` (this report is made from them by "
             f"`python -m rerankbench scale-report`).", "",
             "Re-rank s: the method's own work after the shared steps (building its structures and producing "
             "every query-gallery distance block); scoring s: the evaluation of those blocks. Peak RSS: the "
             "worker process while the cell ran, shared steps resident.", ""]
    for dataset in dict.fromkeys(r["dataset"] for r in chosen):
        rows = [r for r in chosen if r["dataset"] == dataset]
        info = rows[0]["dataset_info"]
        lines += [f"## {dataset}: {info['num_query']} queries x {info['num_gallery']} gallery "
                  f"(T = {info['num_query'] + info['num_gallery']})", ""]
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
    output.write_text("\n".join(lines))
    with output.with_suffix(".jsonl").open("w") as handle:
        for record in chosen:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
    return output
