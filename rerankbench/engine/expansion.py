"""Query expansion on the shared kNN graph: every row of X (query and gallery alike:
"database-side augmentation") is replaced by a weighted sum of its neighbours' features,

    x'_i = normalise( sum_{j in kNN(i, k)} w_ij x_j ),

computed in row blocks (B x k x D at a time), never as a T x T matrix.
"""
from __future__ import annotations

from typing import Callable

import torch

from .neighbours import KnnGraph

WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (neighbours, similarities) (B x k) -> weights (B x k)


def expand(features: torch.Tensor, graph: KnnGraph, k: int, weights: WeightFn) -> torch.Tensor:
    """x'_i = normalise(sum_j w_ij x_j) over j in kNN(i, k); w = weights(j, x_i . x_j) for a block of rows."""
    graph = graph.truncated(k)
    device = features.device
    out = torch.empty_like(features)
    step = max(1, (256 << 20) // (4 * k * features.shape[1]))
    for lo in range(0, len(features), step):
        index = torch.as_tensor(graph.indices[lo:lo + step], device=device)
        distance = torch.as_tensor(graph.distances[lo:lo + step], device=device)
        similarity = 1.0 - distance.double() ** 2 / 2  # x_i . x_j for unit rows
        w = weights(index, similarity).to(features.dtype)
        out[lo:lo + step] = torch.einsum("bk,bkd->bd", w, features[index])
    return torch.nn.functional.normalize(out, dim=1)
