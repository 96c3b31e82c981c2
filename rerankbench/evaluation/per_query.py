"""Per-query results of one cell: what its metrics average, kept so that two methods can be
compared query by query (paired tests, evaluation/significance.py), as ranx and pytrec_eval keep them.

For every query of every trial of the protocol a `PerQuery` holds the trial (`draw`: VehicleID's
draw, 0 to 9; 0 under the other protocols, which have one), the query's row of X = [Q; G], its
number of true matches (0: no valid match, skipped by the canonical protocol), its first-hit
rank (0: none), AP, trapezoid AP and INP (metrics.py). The protocol's metrics are weighted sums
of these (`metric_terms`, `weights`): with n_t counted queries in draw t of T draws,
metric = sum_i w_i v_i, w_i = 1 / (T n_t(i)).
Stored as a compressed .npz (`to_bytes`), read back checked (`from_bytes`).
"""
from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np

from ..runtime.files import UNREADABLE, DamagedFile
from .metrics import QueryScores

DTYPES = {"draw": np.int16, "query_row": np.int32, "num_matches": np.int32, "first_rank": np.int32,
          "ap": np.float64, "ap_trapezoid": np.float64, "inp": np.float64}
METRICS = ("cmc1", "cmc5", "cmc10", "map", "minp")


@dataclass(frozen=True, eq=False)
class PerQuery:
    draw: np.ndarray
    query_row: np.ndarray
    num_matches: np.ndarray
    first_rank: np.ndarray
    ap: np.ndarray
    ap_trapezoid: np.ndarray
    inp: np.ndarray

    def __len__(self) -> int:
        return len(self.draw)

    @classmethod
    def of_trials(cls, scored: list[tuple[np.ndarray, QueryScores]]) -> "PerQuery":
        """From (query rows, scores) of each trial (evaluation/protocols.score_trials)."""
        draw = np.concatenate([np.full(len(rows), number) for number, (rows, _) in enumerate(scored)])
        arrays = {"draw": draw, "query_row": np.concatenate([rows for rows, _ in scored])}
        for name in DTYPES:
            if name not in arrays:
                arrays[name] = np.concatenate([getattr(scores, name) for _, scores in scored])
        return cls(**{name: np.asarray(arrays[name], dtype=dtype) for name, dtype in DTYPES.items()})

    def to_bytes(self) -> bytes:
        """A compressed .npz of the arrays."""
        out = io.BytesIO()
        np.savez_compressed(out, **{f.name: getattr(self, f.name) for f in fields(self)})
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> "PerQuery":
        """Read back what `to_bytes` wrote, checked: every array, of one length and its dtype (DamagedFile)."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in DTYPES if name in archive.files}
        except UNREADABLE as error:
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DamagedFile(f"{where}: unreadable ({problem})") from None
        missing = [name for name in DTYPES if name not in arrays]
        if missing:
            raise DamagedFile(f"{where}: no {', '.join(missing)} in it")
        length = len(arrays["draw"])
        for name, dtype in DTYPES.items():
            if arrays[name].shape != (length,) or arrays[name].dtype != dtype:
                raise DamagedFile(f"{where}: {name} is {arrays[name].dtype} of shape {arrays[name].shape}, "
                                  f"expected {np.dtype(dtype)} of shape ({length},)")
        return cls(**arrays)

    def metric_terms(self, metric: str, official: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(counted, values): which queries the protocol's `metric` counts and each one's value in
        percent; the metric is the mean over each trial's counted queries, averaged over the trials.
        Canonical: the queries with a true match; official (Market-1501's code): all queries, and
        AP is the trapezoid one (mINP counts the matched queries in both)."""
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        valid = self.num_matches > 0
        counted = valid if (not official or metric == "minp") else np.ones_like(valid)
        if metric == "map":
            values = self.ap_trapezoid if official else self.ap
        elif metric == "minp":
            values = self.inp
        else:
            values = ((self.first_rank > 0) & (self.first_rank <= int(metric[3:]))).astype(np.float64)
        return counted, 100.0 * values

    def weights(self, counted: np.ndarray) -> np.ndarray:
        """w_i = 1 / (T n_t(i)) for each counted query i (0 for the others): sum_i w_i v_i is the metric."""
        draw = self.draw.astype(np.int64)
        per_trial = np.bincount(draw[counted], minlength=int(draw.max(initial=0)) + 1)
        with np.errstate(divide="ignore"):
            weight = 1.0 / (len(np.unique(draw)) * per_trial[draw])
        return np.where(counted, weight, 0.0)
