"""One test set's exact kNN graph built as Ray tasks (`--executor ray`): shards of the rows of X.

X (unit rows, T x D float32) is put in Ray's object store once; each task computes its shard's
rows against all rows (engine/row_shards.shard_knn: kNN(i, K) of rows lo..hi, with the exact
graph's rules) and the driver concatenates the shards: the same graph as the local build, indices
and distances (tests/harness/test_ray_executor.py). Memory of a task: X read in place from the
object store (T x D x 4 bytes, shared by the tasks of a node: 768 MB for the full MSMT17 twin),
its shard's candidates ((hi - lo) x (K + 8) x 12 bytes), a copy of 4,096 of its rows at a time
(32 MB at D = 2,048) and their 64 MB block of products against 4,096 columns, with topk's copies
of it: about 4 x 64 MB + 4,096 x D x 4 + (hi - lo)(K + 8) x 12 bytes besides X. The graph is then
written to the cache, where the shared-steps task and every cell's task read it.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from ..engine.neighbours import KnnGraph
from ..engine.row_shards import merge_shards, shard_bounds, shard_knn


def shard_task(x: np.ndarray, lo: int, hi: int, k: int, threads: int):
    """A Ray task: kNN(i, k) of rows lo..hi of X against all rows."""
    torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # X is read-only in the object store; nothing writes to it
        features = torch.from_numpy(x)
    return shard_knn(features, lo, hi, k)


def build_graph_on_ray(ray, features: torch.Tensor, k: int, shards: int, num_cpus: int) -> tuple[KnnGraph, dict]:
    """The exact graph of X from `shards` tasks of `num_cpus` cores each, and its timing."""
    start = time.perf_counter()
    x = ray.put(np.ascontiguousarray(features.cpu().numpy()))
    task = ray.remote(shard_task).options(num_cpus=num_cpus, max_retries=0)
    parts = ray.get([task.remote(x, lo, hi, k, num_cpus) for lo, hi in shard_bounds(len(features), shards)])
    graph = merge_shards(parts)
    return graph, {"seconds": time.perf_counter() - start, "backend": "exact", "ray_shards": len(parts)}


def shards_for(ray, num_cpus: int) -> int:
    """Shards: one per task slot of the cluster, and at least two."""
    return max(2, int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1)))
