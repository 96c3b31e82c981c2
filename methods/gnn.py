"""GNN re-ranking (Zhang et al., "Understanding Image Retrieval Re-Ranking: A Graph Neural
Network Perspective", 2020); reference: layumi/Person_reID_baseline_pytorch GPU-Re-Ranking/
(torchreid/utils/GPU-Re-Ranking/ is the same code).

s_ij, kNN(i, k1)  the top-k1 cosine similarities of row i (self included)
A[i, j] = 1 for j in kNN(i, k1)                              (binary adjacency)
twice:  A <- A + A^T;  A[i] <- sum_{j in kNN(i, k2)} s_ij^2 A[j];  A[i] <- A[i] / ||A[i]||
dist(q, g) = 1 - A_q . A_g
(with k2 = 1 the propagation is skipped, as in the reference). The propagation reads the first
k2 entries of each row's top-k1 list (the reference's initial_rank[:, :k2] of topk(S, k1)), so
it uses min(k1, k2) neighbours: k2 is capped at k1, and the resolved parameters record the k2
used (VehicleID's defaults k1 = 4, k2 = 7 run and record k2 = 4). Parameters: k1 = N/C in the
paper's table (26 on Market in the reference), k2 = 7. A stays sparse; the reference's dense
T x T adjacency and 32-bit CUDA indices limit it to T <= 46,340. layumi's copy mixes 0.3 of the
original cosine into the result; that variant is not the canonical method.
"""
import torch

from rerankbench.engine.contextual import OverlapDistances
from rerankbench.engine.reranker import DATA_DEPENDENT, NEIGHBOURHOOD, Reranker
from rerankbench.engine.sparse_rows import SparseRows


class GnnReranking(Reranker):
    name = "gnn"
    title = "GNN"
    defaults = {"k1": DATA_DEPENDENT, "k2": 7}
    ranges = {"k1": NEIGHBOURHOOD, "k2": NEIGHBOURHOOD}

    def resolved(self, fs):
        """k2 capped at k1: the propagation reads the first k2 of the top-k1 list."""
        params = super().resolved(fs)
        params["k2"] = min(params["k1"], params["k2"])
        return params

    def neighbours_needed(self, fs):
        return self.resolved(fs)["k1"]

    def rerank(self, shared):
        params = self.resolved(shared.fs)
        k1, k2 = params["k1"], params["k2"]
        total = len(shared.features)
        knn, distance, _ = shared.knn_graph(k1).tensors(shared.device)
        a = SparseRows.from_neighbours(knn[:, :k1], torch.ones(total, k1, device=shared.device))
        if k2 != 1:
            weight = (1.0 - distance[:, :k2] ** 2 / 2) ** 2  # s^2, s = x_i . x_j = 1 - e^2 / 2
            for _ in range(2):
                both = a.transpose()
                a = SparseRows.from_entries(torch.cat([a.row_of_entries(), both.row_of_entries()]),
                                            torch.cat([a.indices, both.indices]), torch.cat([a.values, both.values]),
                                            (total, total))
                a = a.combine_rows(knn[:, :k2], weight)
                a = a.scale_rows(1.0 / a.row_sums(a.values ** 2).sqrt())
        return OverlapDistances([(a, a, "product")], lambda overlap, base, rows: 1.0 - overlap)
