"""SCA: Sparse Contextual Activation (Bai & Bai, "Sparse Contextual Activation for Efficient
Visual Re-ranking", TIP 2016); reference: SongBaiHust/Sparse-Contextual-Activation SCA_demo.m.

d(i, j) = e(i, j) / max_l e(i, l), e the Euclidean distance of unit features (not squared)
f_i[j]  = exp(-d(i, j)) / sum_{l in kNN(i, k1)} exp(-d(i, l))  for j in kNN(i, k1)  (self included)
f_i    <- sum_{j in kNN(i, k2)} f_j                          (local enhancement: a sum, not a mean)
dist    = 1 - S / (2 k2 - S),  S = sum_j min(f_p[j], f_g[j])  (1 where supports do not meet)
Parameters: k1 = N/C in the paper's table (4 in the demo), k2 = 2 (the demo's).

Gallery context (--context gallery): the gallery rows' f are SCA's on the gallery alone. A query
q: f_q over kNN(q, k1) = q itself, then its k1 - 1 nearest gallery rows, d normalised by its
farthest gallery row; enhanced over kNN(q, k2) with the gallery's f_j. No query sees another.
"""
import torch

from rerankbench.engine.contextual import OverlapDistances
from rerankbench.engine.reranker import DATA_DEPENDENT, NEIGHBOURHOOD, Reranker
from rerankbench.engine.sparse_rows import SparseRows


class SparseContextualActivation(Reranker):
    name = "sca"
    title = "SCA"
    defaults = {"k1": DATA_DEPENDENT, "k2": 2}
    ranges = {"k1": NEIGHBOURHOOD, "k2": NEIGHBOURHOOD}

    def neighbours_needed(self, fs):
        params = self.resolved(fs)
        return max(params["k1"], params["k2"])

    def rerank(self, shared):
        params = self.resolved(shared.fs)
        k1, k2 = params["k1"], params["k2"]
        total = len(shared.features)
        knn, distance, farthest = shared.knn_graph(max(k1, k2)).tensors(shared.device)
        f = SparseRows.from_neighbours(knn[:, :k1], torch.exp(-(distance[:, :k1] / farthest[:, None])))
        f = f.scale_rows(1.0 / f.row_sums())
        if k2 != 1:
            f = f.combine_rows(knn[:, :k2], torch.ones(total, k2, device=shared.device))
        return OverlapDistances([(f, f, "min")], lambda overlap, base, rows: 1.0 - overlap / (2.0 * k2 - overlap))
