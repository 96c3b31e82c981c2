"""ECN: Expanded Cross Neighbourhood re-ranking (Sarfraz et al., "A Pose-Sensitive Embedding for
Person Re-Identification with Expanded Cross Neighborhood Re-Ranking", CVPR 2018); reference:
pse-ecn/expanded-cross-neighborhood ecn.py (method="rankdist").

F[i, j]  = max(0, k - pos(i, j)), pos(i, j) the 0-based place of j in i's ranking (self at 0)
r(i, j)  = -(F F^T)[i, j]                         (rank-list distance)
E(i)     = the top-t neighbours of i and the top-q of each of them (self excluded): t + t q rows
ECN(p,g) = mean of r(e, p) over e in E(g) and r(e, g) over e in E(p)
         = -(F_p . H_g + H_p . F_g) / (2 (t + t q)),  H_i = sum_{e in E(i)} F_e
Where ECN(p, g) = 0 (no overlap), the cosine distance 1 - x_p . x_g is used (the authors' fix).
Parameters k = 25, t = 3, q = 8. The reference returns gallery x query; this is query x gallery.

Gallery context (--context gallery): a gallery row's ranking, F and E are the gallery's alone (a
query is at no position in them: F_g[q] = 0). A query p ranks itself, then the gallery: F_p over
that list, E(p) its t nearest gallery rows and their top-q in the gallery. ECN(p, g) as above.
"""
import torch

from rerankbench.engine.contextual import OverlapDistances
from rerankbench.engine.reranker import NEIGHBOURHOOD, NEIGHBOURHOOD_WITHOUT_SELF, Reranker
from rerankbench.engine.sparse_rows import SparseRows


class ExpandedCrossNeighbourhood(Reranker):
    name = "ecn"
    title = "ECN"
    defaults = {"k": 25, "t": 3, "q": 8}
    ranges = {"k": NEIGHBOURHOOD, "t": NEIGHBOURHOOD_WITHOUT_SELF, "q": NEIGHBOURHOOD_WITHOUT_SELF}
    uses_distances = True

    def neighbours_needed(self, fs):
        params = self.resolved(fs)
        return max(params["k"], params["t"] + 1, params["q"] + 1)

    def rerank(self, shared):
        params = self.resolved(shared.fs)
        k, t, q = params["k"], params["t"], params["q"]
        total = len(shared.features)
        knn = shared.knn_graph(self.neighbours_needed(shared.fs)).tensors(shared.device)[0]
        rank_weight = k - torch.arange(k, dtype=torch.float64, device=shared.device)  # F = k - pos
        f = SparseRows.from_neighbours(knn[:, :k], rank_weight.expand(total, k))
        top = knn[:, 1:t + 1]
        expanded = torch.cat([top, knn[top, 1:q + 1].reshape(total, t * q)], dim=1)
        h = f.combine_rows(expanded, torch.ones(expanded.shape, dtype=torch.float64, device=shared.device))
        members = 2 * expanded.shape[1]

        def finish(overlap, base, rows):
            cosine_distance = base.pow_(2).div_(2)  # 1 - cos = e^2 / 2 for unit rows, in place
            return cosine_distance if overlap.dim() == 0 else torch.where(overlap != 0, -overlap / members, cosine_distance)

        return OverlapDistances([(f, h, "product"), (h, f, "product")], finish,
                                base=shared.query_gallery_distances(), dtype=torch.float64)
