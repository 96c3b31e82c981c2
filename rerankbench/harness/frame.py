"""The records as a pandas DataFrame: one row a record, what a researcher wants in a notebook,
and what the tables, plots and `compare` select and group records with.

    frame = rerankbench.load_records("results/default_run")
    frame[frame.method == "k_reciprocal"][["dataset", "params.k1", "map", "wall_s", "peak_rss_mb"]]
    rerankbench.load_per_query(frame.iloc[0])          # that record's queries, one row each

Columns: every field of the records, nested ones flattened with dots (pandas.json_normalize:
`params.k1`, `dataset_info.fingerprint`, `shared.steps.knn_graph.seconds`, `per_query.file`), and
besides them `cell` (the cell's key, store.cell_key_of), `fingerprint` (of the features),
`context`, `trial` (0 where a record predates the field), `results` (the folder the record was
read from) and `record` (the record itself, as a dict). `newest` keeps each cell's newest record,
in the paper's order.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..evaluation.per_query import DTYPES
from ..engine.registry import DATASET_ORDER, METHOD_ORDER, rank_in
from . import per_query_files
from .store import ResultsStore, cell_key_of

ORDER = ["dataset_rank", "dataset", "method_rank", "method", "params_text", "trial", "first_seen"]


def records_frame(records: list[dict], results: str | Path | None = None) -> pd.DataFrame:
    """`records` (dicts, in the order they were written) as a DataFrame, one row each."""
    frame = pd.json_normalize(records) if records else pd.DataFrame(columns=["dataset", "method", "params", "status"])
    frame.index = pd.RangeIndex(len(records))
    extra = pd.DataFrame({
        "cell": [cell_key_of(record) for record in records],
        "fingerprint": [(record.get("dataset_info") or {}).get("fingerprint", "") for record in records],
        "context": [record.get("context", "all") for record in records],
        "trial": [record.get("trial", 0) for record in records],
        "results": None if results is None else str(results),
        "record": pd.Series(records, dtype=object),
    })
    frame = pd.concat([frame.drop(columns=[c for c in extra if c in frame]), extra], axis=1)
    return frame.copy()  # one block per dtype: json_normalize leaves a column a block


def last_of(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The last row of each group of equal `by` values, each standing where its group's first row stood."""
    codes = pd.factorize(pd.MultiIndex.from_frame(frame[by].astype(str)))[0] if len(frame) else []
    return frame.assign(first_seen=codes).drop_duplicates("first_seen", keep="last").sort_values("first_seen")


def newest(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest record of each cell, sorted as the paper lists them: test set, method, parameters,
    trial (cells that tie there in the order their first record was written)."""
    last = last_of(frame, ["cell"])
    keys = pd.DataFrame({
        "dataset_rank": [rank_in(DATASET_ORDER, name)[0] for name in last["dataset"]],
        "method_rank": [rank_in(METHOD_ORDER, name)[0] for name in last["method"]],
        "params_text": [str(record["params"]) for record in last["record"]],
    }, index=last.index)
    ordered = pd.concat([last, keys], axis=1).sort_values(ORDER, kind="stable")
    return ordered.drop(columns=[*keys.columns, "first_seen"]).copy()  # consolidated: columns may be added


def load_records(results: str | Path) -> pd.DataFrame:
    """The well-formed records of a results folder (records.jsonl; malformed lines are skipped
    with a warning), one row each, without the `record` column."""
    return records_frame(ResultsStore(results).results(), results).drop(columns="record")


def load_per_query(row) -> pd.DataFrame:
    """The per-query results of one record (a row of `load_records`), one row a query: draw
    (VehicleID's; 0 elsewhere), query_row, num_matches, first_rank, ap, ap_trapezoid, inp.
    PerQueryUnavailable (a ValueError naming the file) when there are none or the file is damaged."""
    reference = {key: row.get(f"per_query.{key}") for key in ("file", "sha1", "bytes")}
    record = {"dataset": row.get("dataset"), "method": row.get("method"),
              "per_query": None if not isinstance(reference["file"], str) else {**reference,
                                                                                  "bytes": int(reference["bytes"])}}
    scores = per_query_files.read(row.get("results") or ".", record)
    return pd.DataFrame({name: getattr(scores, name) for name in scores.__dataclass_fields__})


def per_query_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-query results of every record of `frame` (records_frame's) that has them, one row a
    query, after its record's dataset, method, params (JSON), context and trial."""
    parts = []
    for _, row in frame[frame["per_query.file"].notna()].iterrows() if "per_query.file" in frame else []:
        queries = load_per_query(row)
        identity = {"dataset": row["dataset"], "method": row["method"],
                    "params": json.dumps(row["record"]["params"], sort_keys=True), "context": row["context"],
                    "trial": row["trial"]}
        parts.append(pd.concat([pd.DataFrame(identity, index=queries.index), queries], axis=1))
    columns = ["dataset", "method", "params", "context", "trial", *DTYPES]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
