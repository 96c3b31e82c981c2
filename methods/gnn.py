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
original cosine into the result; that variant is not the canonical method. The second
propagation's rows are built only when the distances ask for them (sparse_rows.CombinedRows):
with many distractors they hold thousands of entries each (1,667 a row on the Market-1501 twin
plus 100,000 distractors), so a top-L run builds those of each query block's shortlists only.

Gallery context (--context gallery): the gallery rows' A, at every step, is GNN's on the gallery
alone. A query q is one more row that changes nothing of the gallery's: A[q] = 1 on kNN(q, k1)
(q, then its k1 - 1 nearest gallery rows); the first A + A^T adds to A[q] a 1 at q and at each
gallery row j that q would enter, d(q, j) <= the distance of the k1-th entry of j's list (ties
to q), found from the shared query-gallery distances; the second adds A[q, q] (the gallery's
rows hold no entry for q). A[q] <- sum_{j in kNN(q, k2)} s_qj^2 A[j] with the gallery's A[j] and
q's own, normalised; no query sees another.
"""
import numpy as np
import torch

from rerankbench.engine.contextual import OverlapDistances
from rerankbench.engine.reranker import DATA_DEPENDENT, NEIGHBOURHOOD, Reranker
from rerankbench.engine.sparse_rows import CombinedRows, SparseRows


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

    def prepare(self, shared):
        super().prepare(shared)
        if shared.gallery is not None:  # which gallery rows a query would enter: read from the distances
            shared.query_gallery_distances()

    def rerank(self, shared):
        params = self.resolved(shared.fs)
        k1, k2 = params["k1"], params["k2"]
        total = len(shared.features)
        graph = shared.knn_graph(k1)
        knn, distance, _ = graph.tensors(shared.device)
        a = SparseRows.from_neighbours(knn[:, :k1], torch.ones(total, k1, device=shared.device))
        if k2 != 1:
            weight = (1.0 - distance[:, :k2] ** 2 / 2) ** 2  # s^2, s = x_i . x_j = 1 - e^2 / 2
            for step in range(2):
                reverse = [a.transpose()]
                if graph.outsiders is not None:
                    reverse = _gallery_reverse(shared, graph, reverse[0], k1, first=step == 0)
                a = SparseRows.sum([a, *reverse])
                combined = CombinedRows(a, knn[:, :k2], weight)  # the last step's rows: built when the distances ask
                a = combined.select(torch.arange(total, device=shared.device)) if step == 0 else combined
        return OverlapDistances([(a, a, "product")], lambda overlap, base, rows: 1.0 - overlap)


def _gallery_reverse(shared, graph, transposed: SparseRows, k1: int, first: bool) -> list[SparseRows]:
    """A^T's terms in the gallery context: a query's list adds nothing to a gallery row (only a
    query's own diagonal stays), and in the first step a query q gets a 1 at each gallery row
    whose kNN(j, k1) it would enter: d(q, j) <= the distance of j's k1-th entry."""
    outsiders = torch.as_tensor(graph.outsiders, device=transposed.device)
    kept = transposed.keep(~outsiders[transposed.indices] | (transposed.row_of_entries() == transposed.indices))
    if not first:
        return [kept]
    queries, gallery = shared.candidates()
    radius = graph.distances[gallery, k1 - 1]
    entering_rows, entering_cols = [], []
    for lo, block in shared.query_gallery_distances().blocks(queries, gallery):
        row, col = np.nonzero(block <= radius)
        entering_rows.append(queries[lo + row])
        entering_cols.append(gallery[col])
    rows = torch.as_tensor(np.concatenate(entering_rows), device=kept.device)
    entering = SparseRows.from_entries(rows, torch.as_tensor(np.concatenate(entering_cols), device=kept.device),
                                       torch.ones(len(rows), dtype=kept.values.dtype, device=kept.device),
                                       (kept.rows, kept.columns))
    return [kept, entering]
