"""The exact kNN graph from cheap candidates re-checked in fp32 (`--knn exact --knn-param screen=bf16`).

The graph is neighbours.build_knn_graph's, indices and distances alike; only the way there
differs. For a block of rows, every similarity is first computed at a cheaper precision c
(bf16 inputs, fp32 accumulation: oneDNN on CPU, cuBLAS on CUDA), then re-checked in fp32.

The bound. For unit rows x, y and bf16's unit roundoff u = 2^-8, the rounded inputs carry
|<x~, y~> - <x, y>| <= 2u + u^2 (Cauchy-Schwarz on the rounding errors, |d_k| <= u |x_k|),
the fp32 accumulation of D products adds at most g_D (1 + u)^2 (g_D = D 2^-24 / (1 - D 2^-24),
Higham's bound), the bf16 output one more u (1 + u)^2 (1 + g_D), and the fp32 value s that the
exact graph ranks by is itself within g_D of <x, y>: |c - s| <= eps, the sum (0.0119 at D = 2048).

The argument. Let m = K + 8 (the exact graph's candidate margin) and c_(m) a row's m-th largest
cheap value (itself counted +inf). The m columns with the largest c all have s >= c_(m) - eps, so
the m-th largest s is s_(m) >= c_(m) - eps, and every column with s >= s_(m) has
c >= s - eps >= c_(m) - 2 eps. So the pool {j : c_ij >= c_(m) - 2 eps} holds every column the
exact graph's top m can hold, ties at its edge included; its members are re-scored by the same
fp32 sgemm (whose value for a pair of rows does not depend on the block's shape), and the exact
graph's own rules (ties to the smaller row, a tie past the margin sorted whole, CLOSE) run on
them. The farthest row (farthest[i], from the least s) is screened the same way from below. A
row whose pool is larger than the cap P is re-done whole in fp32 (its block by row_shards), so
the result never depends on the bound being tight. Pays where bf16 products are fast (CUDA,
CPUs with AMX or AVX512-BF16); on an AVX2 CPU oneDNN runs them 5 to 8x slower than fp32
(README, Benchmarks), so `exact` uses the plain fp32 build unless asked.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .neighbours import CLOSE, KnnGraph, _exact_near, _top, _whole_row, euclidean_from_similarity
from .row_shards import padded, shard_knn

ROWS = 1024  # rows per cheap pass
RESCORE_ROWS = 64  # rows per fp32 re-check (a GEMM of at least 8 rows: the same values as the exact graph's)
COLUMNS = 8192  # columns per cheap product


def bf16_error_bound(dim: int) -> float:
    """eps with |c - s| <= eps for unit rows in `dim` dimensions (see the module's docstring)."""
    u, g = 2.0 ** -8, dim * 2.0 ** -24 / (1 - dim * 2.0 ** -24)
    return 2 * u + u * u + g * (1 + u) ** 2 + u * (1 + u) ** 2 * (1 + g) + g + 1e-6


def build_screened_graph(features: torch.Tensor, k: int, pool_cap: int = 512) -> KnnGraph:
    """The exact graph of the unit rows of `features` (T x D), screened by bf16 products."""
    total, device = features.shape[0], features.device
    k = min(k, total)
    margin = min(total, k + 8)
    cap = min(total, max(pool_cap, 2 * margin))
    eps = bf16_error_bound(features.shape[1])
    cheap_x = features.to(torch.bfloat16)
    indices = np.empty((total, k), dtype=np.int64)
    distances = np.empty((total, k), dtype=np.float32)
    lowest = np.empty(total, dtype=np.float32)
    for lo in range(0, total, ROWS):
        hi = min(lo + ROWS, total)
        high, high_at, low, low_at = _cheap_extremes(cheap_x, lo, hi, cap)
        for a in range(lo, hi, RESCORE_ROWS):
            b = min(a + RESCORE_ROWS, hi)
            part = slice(a - lo, b - lo)
            done = _rescored(features, a, b, k, margin, eps, high[part], high_at[part], low[part], low_at[part], cap)
            if done is None:  # a pool past the cap: these rows in fp32 throughout
                done = shard_knn(features, a, b, k)
            indices[a:b], distances[a:b], lowest[a:b] = done
    farthest = euclidean_from_similarity(torch.from_numpy(lowest)).numpy()
    return KnnGraph(indices, distances, farthest)


def _cheap_extremes(cheap_x: torch.Tensor, lo: int, hi: int, cap: int):
    """Each row's `cap` largest and smallest cheap similarities (itself +inf) and their columns."""
    total, device = cheap_x.shape[0], cheap_x.device
    rows = hi - lo
    high = torch.full((rows, cap), -math.inf, device=device)
    high_at = torch.zeros((rows, cap), dtype=torch.int64, device=device)
    low, low_at = torch.full((rows, cap), math.inf, device=device), torch.zeros_like(high_at)
    for b in range(0, total, COLUMNS):
        c = (cheap_x[lo:hi] @ cheap_x[b:b + COLUMNS].T).float()
        at = torch.arange(b, b + c.shape[1], device=device).expand(rows, -1)
        smallest = torch.topk(torch.cat([low, c], 1), cap, dim=1, largest=False)
        low, low_at = smallest.values, torch.cat([low_at, at], 1).gather(1, smallest.indices)
        if b < hi and lo < b + c.shape[1]:  # row i itself first
            own = torch.arange(max(lo, b), min(hi, b + c.shape[1]), device=device)
            c[own - lo, own - b] = math.inf
        largest = torch.topk(torch.cat([high, c], 1), cap, dim=1)
        high, high_at = largest.values, torch.cat([high_at, at], 1).gather(1, largest.indices)
    return high, high_at, low, low_at


def _rescored(features, a, b, k, margin, eps, high, high_at, low, low_at, cap):
    """(indices, distances, lowest) of rows a..b from their pools re-scored in fp32, or None when a
    pool may reach past the cap (the cap-th cheap value still within the bound)."""
    total, device = features.shape[0], features.device
    top_edge = high[:, margin - 1:margin] - 2 * eps
    bottom_edge = low[:, :1] + 2 * eps
    if cap < total and ((high[:, -1:] >= top_edge).any() or (low[:, -1:] <= bottom_edge).any()):
        return None
    upper = torch.where(high >= top_edge, high_at, -1)
    lower = torch.where(low <= bottom_edge, low_at, -1)
    pool = torch.cat([upper, lower], 1)
    columns = torch.unique(pool[pool >= 0])
    wide = padded(a, b, total)  # the same sgemm values as the exact graph's (at least 16 rows)
    exact = (features[wide] @ features[columns].T)[a - wide.start:b - wide.start]
    where = torch.searchsorted(columns, pool.clamp(min=0))
    s = exact.gather(1, where)
    lowest = torch.where(lower >= 0, s[:, upper.shape[1]:], math.inf).amin(dim=1)
    values = torch.where(upper >= 0, s[:, :upper.shape[1]], -math.inf)
    values[upper == torch.arange(a, b, device=device)[:, None]] = math.inf  # itself first
    top = torch.topk(values, margin, dim=1)
    candidates = upper.gather(1, top.indices)
    values, candidates = _top(top.values, candidates, k, margin < total, lambda r: _whole_row(features, a + r))
    values[:, 0] = 1.0
    close = values > 1.0 - CLOSE**2 / 2
    close[:, 0] = False
    distance = _exact_near(values, close, features, torch.arange(a, b, device=device), candidates)
    return candidates.cpu().numpy(), distance.cpu().numpy(), lowest.cpu().numpy()
