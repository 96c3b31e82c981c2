"""The exact kNN graph from cheap candidates re-checked in fp32 (`--knn exact --knn-param screen=bf16`).

The graph is neighbours.build_knn_graph's, indices and distances alike; only the way there
differs. For a block of rows, every similarity c is first computed from the rows rounded to bf16
(oneDNN on CPU, cuBLAS on CUDA: fp32 accumulation, bf16 output), and only the columns that the
bound below cannot rule out are re-scored in fp32.

The bound, a posteriori. Write x~ = x + r for a row rounded to bf16 (r, its rounding residual, is
exact in fp32) and s for the fp32 sgemm value that the exact graph ranks by. Then
<x~, y~> - <x, y> = <x, r_y> + <r_x, y> + <r_x, r_y>, so by Cauchy-Schwarz it is at most
|x| |r_y| + |r_x| |y| + |r_x| |r_y|; the fp32 accumulation of D products adds at most
g_D |x~| |y~| and s is itself within g_D |x| |y| of <x, y> (g_D = D 2^-24 / (1 - D 2^-24),
Higham's bound for any order of summation); the bf16 output rounds to nearest, off by at most
u |c| (u = 2^-8). With R and N the largest residual and row norm over X, row i's A_i bounds the
first four terms against every column, and |c_ij - s_ij| <= u |c_ij| + A_i. The residuals of
rounding 2048-d unit rows are about 0.0017, so 2 A_i is about 0.0077, against the 0.024 of the
worst case |r| <= u |x|.

The argument. The exact graph lists, after the row itself, its K columns of largest s, ties to the
smaller column (neighbours.build_knn_graph: a tie past its margin is sorted whole). Let c_(K) be a
row's K-th largest cheap value (itself counted +inf); f(c) = c - u |c| and h(c) = c + u |c|
increase with c. The K columns of largest c have s >= f(c) - A >= f(c_(K)) - A, so the K-th
largest s is at least that, and every column with s >= s_(K) has h(c) >= s - A >= f(c_(K)) - 2 A.
So the pool {j : h(c_ij) >= f(c_(K)) - 2 A_i} holds every column of the exact list and every column
tied with its last; it is found by one comparison of the bf16 values with that edge rounded down to
bf16, and the pool sorted by (s desc, column asc) begins with the exact list (a row with K + 8 or
more columns at s >= s_(K) is the exact graph's crowded row and sorted whole from its whole row
of X X^T, as there: neighbours._whole_row). Mirrored from below, {j : f(c_ij) <= h(c_min) + 2 A_i}
holds the column of the least s (farthest[i]). s itself comes from the same fp32 sgemm as the
exact graph's, for a group of at least 16 rows against the union of their pools (its value for a
pair does not depend on the block: neighbours.padded); CLOSE is applied as there. A pool is as
large as the data make it (a row of many near-ties re-scores many columns), so the result never
depends on the bound being tight, only on its being true. The identity also
rests on the fp32 sgemm giving a pair the same value whatever the other columns of the product:
true of MKL on AMD CPUs, not of its AVX512 path on Intel ones (`layout_independent()`), where the
screened graph's lists are the exact graph's but its distances may differ in the last bit
(Market-1501 twin at 0.02: lists equal, 1,545 of 3,850 distances one ulp apart; 3 December 2026).
Groups are re-scored side by side, one thread each. Pays where bf16 products are fast (CUDA, CPUs
with AMX or AVX512-BF16: README, Benchmarks); on an AVX2 CPU oneDNN runs them 5 to 8x slower than
fp32, so `exact` uses the plain fp32 build unless asked.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch

from .neighbours import CLOSE, TIE_MARGIN, KnnGraph, _exact_near, _whole_row, euclidean_from_similarity, padded

U = 2.0 ** -8  # bf16's unit roundoff
BLOCK_BYTES = 192 << 20  # one block of cheap (bf16) products, kept for its rows' re-scoring
COLUMNS = 8192  # columns per cheap product
GROUP = 16  # rows re-scored together (the least that gives the exact graph's sgemm values)


def layout_independent(device: str = "cpu") -> bool:
    """Whether this host's fp32 products give each pair of rows the same value in a product with
    other columns as in one with all of them (the exact graph's), which the identity needs."""
    generator = torch.Generator().manual_seed(0)
    for rows, dim, step in ((500, 2048, 7), (3000, 2048, 13), (500, 256, 7)):
        x = torch.nn.functional.normalize(torch.randn(rows, dim, generator=generator), dim=1).to(device)
        columns = torch.arange(1, rows, step, device=device)
        if not torch.equal((x[:16] @ x.T)[:, columns], x[:16] @ x[columns].T):
            return False
    return True


def rounding_bounds(features: torch.Tensor, cheap: torch.Tensor) -> torch.Tensor:
    """A_i (float64, per row) with |c_ij - s_ij| <= u |c_ij| + A_i for every column j (module docstring)."""
    dim = features.shape[1]
    g = dim * 2.0 ** -24 / (1 - dim * 2.0 ** -24)
    residual = (cheap.float() - features).double().norm(dim=1) * (1 + 1e-6)
    norm = features.double().norm(dim=1) * (1 + 1e-6)
    r, n = residual.max(), norm.max()
    return norm * r + residual * n + residual * r + g * ((norm + residual) * (n + r) + norm * n) + 1e-7


def build_screened_graph(features: torch.Tensor, k: int) -> KnnGraph:
    """The exact graph of the unit rows of `features` (T x D), screened by bf16 products."""
    total, device = features.shape[0], features.device
    k = min(k, total)
    cheap = features.to(torch.bfloat16)
    bound = rounding_bounds(features, cheap)
    rows = min(max(GROUP, BLOCK_BYTES // (2 * total) // GROUP * GROUP), total)
    products = torch.empty((rows, total), dtype=torch.bfloat16, device=device)
    indices = np.empty((total, k), dtype=np.int64)
    distances = np.empty((total, k), dtype=np.float32)
    lowest = np.empty(total, dtype=np.float32)
    threads = 1 if features.is_cuda else torch.get_num_threads()
    spare = threading.local()  # each thread's buffer for the rows it gathers
    with ThreadPoolExecutor(threads) as pool:
        for lo in range(0, total, rows):
            hi = min(lo + rows, total)
            c, near_edge, far_edge = _cheap_block(cheap, lo, hi, k, bound[lo:hi], products)

            def rescore(a: int) -> None:
                b, part = min(a + GROUP, hi), slice(a - lo, a - lo + GROUP)
                near, far = c[part] >= near_edge[part, None], c[part] <= far_edge[part, None]
                indices[a:b], distances[a:b], lowest[a:b] = _rescored(features, a, b, k, near, far, spare)

            with _one_thread_each(threads):  # small products: one thread per group, groups side by side
                list(pool.map(rescore, range(lo, hi, GROUP)))
    farthest = euclidean_from_similarity(torch.from_numpy(lowest)).numpy()
    return KnnGraph(indices, distances, farthest)


@contextmanager
def _one_thread_each(threads: int):
    """torch's intra-op threads set to 1 while `threads` Python threads run ops side by side."""
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _cheap_block(cheap: torch.Tensor, lo: int, hi: int, k: int, bound: torch.Tensor, out: torch.Tensor):
    """The cheap products c of rows lo..hi (itself +inf), in `out`, and each row's edges, as bf16:
    c >= the near edge holds every column that may be among its top k in fp32 (itself counted
    first) or tied with its k-th, c <= the far edge every column that may hold its least."""
    c = out[:hi - lo]
    for j in range(0, len(cheap), COLUMNS):  # in column pieces: a piece of products stays in cache
        c[:, j:j + COLUMNS] = _cheap_product(cheap[lo:hi], cheap[j:j + COLUMNS])
    far_edge = _bf16_edge(_upper(c.amin(dim=1).double()) + 2 * bound, up=True)
    own = torch.arange(lo, hi, device=c.device)
    c[own - lo, own] = math.inf  # after the least: the exact graph's least similarity counts itself too
    kth = torch.topk(c, k, dim=1).values[:, -1].double()
    return c, _bf16_edge(_lower(kth) - 2 * bound, up=False), far_edge


def _cheap_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a b^T, bf16 in and out, accumulated in fp32 (cuBLAS may otherwise reduce in bf16)."""
    if not a.is_cuda:
        return a @ b.T
    matmul = torch.backends.cuda.matmul
    allowed, matmul.allow_bf16_reduced_precision_reduction = matmul.allow_bf16_reduced_precision_reduction, False
    try:
        return a @ b.T
    finally:
        matmul.allow_bf16_reduced_precision_reduction = allowed


def _lower(c: torch.Tensor) -> torch.Tensor:
    """f(c) = c - u |c| (+inf stays +inf)."""
    return torch.where(torch.isinf(c), c, c - U * c.abs())


def _upper(c: torch.Tensor) -> torch.Tensor:
    """h(c) = c + u |c|."""
    return c + U * c.abs()


def _bf16_edge(edge: torch.Tensor, up: bool) -> torch.Tensor:
    """The bf16 value t with, for every bf16 c: h(c) >= edge implies c >= t (up=False), or
    f(c) <= edge implies c <= t (up=True). h(c) >= e means c >= e / (1 + u) for e >= 0 and
    c >= e / (1 - u) for e < 0; f mirrors it. t is that threshold rounded outwards to bf16."""
    outwards = (edge >= 0) == up  # where dividing by 1 - u moves the edge outwards
    t = torch.where(outwards, edge / (1 - U), edge / (1 + U))
    return -_bf16_below(-t) if up else _bf16_below(t)


def _bf16_below(t: torch.Tensor) -> torch.Tensor:
    """The largest bf16 value at most t (float64): the largest float32 at most t, its last 16 bits
    cut (bf16 is float32's first 16), one bf16 step further where the cut moved a negative value up."""
    t32 = t.float()
    t32 = torch.where(t32.double() > t, torch.nextafter(t32, torch.full_like(t32, -math.inf)), t32)
    bits = t32.view(torch.int32)
    cut = bits & -65536
    cut = torch.where((bits < 0) & (bits != cut), cut + 65536, cut)
    return cut.view(torch.float32).to(torch.bfloat16)


def _gathered(features: torch.Tensor, columns: torch.Tensor, spare: threading.local) -> torch.Tensor:
    """features[columns], into this thread's buffer (a fresh 20 MB array each time costs its page faults)."""
    buffer = getattr(spare, "rows", None)
    if buffer is None or len(buffer) < len(columns):
        spare.rows = buffer = features.new_empty((max(len(columns), 4096), features.shape[1]))
    return torch.index_select(features, 0, columns, out=buffer[:len(columns)])


def _rescored(features, a, b, k, near, far, spare):
    """(indices, distances, lowest) of rows a..b, their pools re-scored in fp32."""
    total, device = features.shape[0], features.device
    row, column = torch.nonzero(near | far, as_tuple=True)
    columns, at = torch.unique(column, return_inverse=True)
    wide = padded(a, b, total)  # the same sgemm values as the exact graph's (at least 16 rows)
    exact = (features[wide] @ _gathered(features, columns, spare).T)[a - wide.start:b - wide.start]
    s = exact[row, at]
    is_near, is_far = near[row, column], far[row, column]
    lowest = torch.full((b - a,), math.inf, device=device).scatter_reduce(0, row[is_far], s[is_far], "amin")
    values = torch.full(exact.shape, -math.inf, device=device)
    values[row[is_near], at[is_near]] = s[is_near]
    values[torch.arange(b - a, device=device), torch.searchsorted(columns, torch.arange(a, b, device=device))] = math.inf
    order = torch.sort(values, dim=1, descending=True, stable=True)  # columns ascend: ties to the smaller
    values, candidates = order.values[:, :k], columns[order.indices[:, :k]]
    if k + TIE_MARGIN < total:  # as the exact graph: a row whose tie at k runs past its margin, sorted whole
        for r in torch.nonzero((order.values >= values[:, -1:]).sum(dim=1) >= k + TIE_MARGIN).flatten().tolist():
            whole = torch.sort(_whole_row(features, a + r), descending=True, stable=True)
            values[r], candidates[r] = whole.values[:k], whole.indices[:k]
    values[:, 0] = 1.0
    close = values > 1.0 - CLOSE**2 / 2
    close[:, 0] = False
    distance = _exact_near(values, close, features, torch.arange(a, b, device=device), candidates)
    return candidates.cpu().numpy(), distance.cpu().numpy(), lowest.cpu().numpy()
