"""Tables generated from the stored records, never edited by hand."""
from __future__ import annotations

from ..engine.contexts import ALL
from ..engine.registry import methods
from ..harness.frame import newest, records_frame
from ..harness.store import context_of


def dataset_key(record: dict) -> tuple[str, str, str]:
    """The setting a record belongs to: (test set, fingerprint of its features, context)."""
    return record["dataset"], record.get("dataset_info", {}).get("fingerprint", ""), context_of(record)


def latest(records: list[dict]) -> list[dict]:
    """The newest record of each cell, in the paper's order (test set, method, params, trial)."""
    return newest(records_frame(records))["record"].tolist()


def markdown_table(records: list[dict]) -> str:
    """One row per cell: metrics in percent; VehicleID's are means over its 10 draws."""
    header = ["dataset", "method", "params", "CMC@1", "CMC@5", "mAP", "mINP", "method s", "shared s", "peak RSS MB", "status"]
    rows = [header, ["---"] * len(header)]
    synthetic = False
    for r in latest(records):
        synthetic |= bool(r.get("synthetic"))
        tags = ["twin"] * bool(r.get("synthetic")) + [f"{context_of(r)} context"] * (context_of(r) != ALL)
        name = r["dataset"] + (f" ({', '.join(tags)})" if tags else "")
        cls = methods().get(r["method"])
        shown = cls.brief(r["params"], r.get("overrides") or {}) if cls else r["params"]
        params = ", ".join(f"{k}={v}" for k, v in shown.items()) or "-"
        shared = sum(step.get("seconds", 0.0) for step in (r.get("shared") or {}).get("steps", {}).values())
        ok = r["status"] == "ok"
        rows.append([name, r["method"], params,
                     *(_number(r.get(m)) if ok else "-" for m in ("cmc1", "cmc5", "map", "minp")),
                     _number(r.get("wall_s"), 3) if ok else "-", _number(shared, 2), _number(r.get("peak_rss_mb"), 0),
                     "ok" if ok else "failed: " + str(r.get("error", "")).splitlines()[0].replace("|", "/")])
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    if synthetic:
        lines.append("\n(twin): synthetic twin of the dataset, not the released data.")
    if any(context_of(r) != ALL for r in records):
        lines.append("gallery context: each query re-ranked against the gallery alone (inductive).")
    return "\n".join(lines)


def _number(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
