"""Paired significance tests of two methods' per-query results (per_query.py), as ranx offers them.

Both methods scored the same queries; with x_i = w_i (a_i - b_i), where a_i, b_i are query i's
values under the two methods and w_i its weight in the protocol's metric (per_query.weights:
1 / (T n_t), so that VehicleID's draws each count 1/T), the difference of the metrics is
D = sum_i x_i.

- `permutation_test`: the paired randomisation test (Smucker, Allan & Carterette, "A Comparison
  of Statistical Significance Tests for Information Retrieval Evaluation", CIKM 2007). Under the
  null hypothesis the two methods' results are exchangeable query by query, so each x_i keeps
  or flips its sign with probability 1/2: D_r = sum_i s_ri x_i, s_ri = +-1. Two-sided,
  p = (1 + #{r : |D_r| >= |D|}) / (1 + R) over R seeded rounds (never 0; 1 when a = b).
  The signs are drawn as random bytes, eight queries a byte, and each byte's contribution is
  looked up in a table of its 256 values: a round costs n/8 look-ups.
- `bootstrap_interval`: the paired bootstrap (Efron & Tibshirani, 1993; Sakai, SIGIR 2006): the
  queries of each draw are resampled with replacement, D*_r = sum_t (1/T) mean of the resampled
  a - b of draw t, and the interval is the (1 - level)/2 and (1 + level)/2 quantiles of D*_r.
- `holm`: Holm's step-down correction of several p-values (Holm, 1979).
"""
from __future__ import annotations

import numpy as np

ROUNDS = 10_000
WORK = 1 << 22  # elements of a chunk of rounds x queries


def permutation_test(x: np.ndarray, rounds: int = ROUNDS, seed: int = 0) -> float:
    """Two-sided p-value of D = sum(x) under random sign flips of the x_i."""
    x = np.asarray(x, dtype=np.float64)
    observed = abs(float(x.sum()))
    padded = np.concatenate([x, np.zeros(-len(x) % 8)]).reshape(-1, 8)  # eight queries a byte
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1, bitorder="little")  # 256 x 8
    table = (2.0 * padded @ bits.T - padded.sum(1)[:, None]).ravel()  # [j, v]: sum_k s_k x_8j+k, signs of byte v
    width = len(padded)
    offsets = np.arange(width, dtype=np.int32) * 256
    tolerance = 1e-9 * max(float(np.abs(x).sum()), 1e-300)  # |D_r| = |D| up to rounding counts as reaching it
    rng = np.random.default_rng(seed)
    reached, done = 0, 0
    while done < rounds:
        chunk = min(rounds - done, max(1, WORK // max(width, 1)))
        signs = rng.integers(0, 256, size=(chunk, width), dtype=np.uint8)
        reached += int((np.abs(table.take(signs + offsets).sum(1)) >= observed - tolerance).sum())
        done += chunk
    return (1 + reached) / (1 + rounds)


def bootstrap_interval(differences: np.ndarray, draws: np.ndarray, rounds: int = ROUNDS, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """The paired bootstrap interval of sum_t (1/T) mean_t(differences), resampling each draw's queries."""
    differences = np.asarray(differences, dtype=np.float64)
    groups = [differences[draws == draw] for draw in np.unique(draws)]
    rng = np.random.default_rng(seed)
    total = np.zeros(rounds)
    for group in groups:
        done = 0
        while done < rounds:
            chunk = min(rounds - done, max(1, WORK // max(len(group), 1)))
            picks = rng.integers(0, len(group), size=(chunk, len(group)), dtype=np.int32)
            total[done:done + chunk] += group[picks].mean(1) / len(groups)
            done += chunk
    low, high = np.quantile(total, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values: the i-th smallest times (m - i + 1), kept increasing, at most 1."""
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(len(p_values))
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - position) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()
