"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with
k-reciprocal Encoding", CVPR 2017); reference: zhunzhong07/person-re-ranking,
python-version/re_ranking_ranklist.py (torchreid/utils/rerank.py is the same code).

d(i, j)   = e(i, j)^2 / max_l e(i, l)^2, e the Euclidean distance of unit features
            (distance="euclidean", canonical; "squared" feeds e^2 in as torchreid does, so
            that the reference squares it again: d = e^4 / max e^4)
V[i, j]   = exp(-d(i, j)) / sum_{l in R*(i)} exp(-d(i, l))  for j in R*(i)   (reciprocal.py)
V[i]     <- mean_{j in kNN(i, k2)} V[j]                      (local query expansion)
J(q, g)   = 1 - S / (2 - S),  S = sum_j min(V[q, j], V[g, j])  (1 where supports do not meet)
final     = (1 - lambda) J(q, g) + lambda d(q, g)
Parameters: k1 = N/C in the paper (20 in the original), k2 = 6, lambda = 0.3 (also named
`lam`, as Python cannot take lambda as a keyword argument; records say lambda). V is sparse
(|R*(i)| is a few dozen) and read from the shared kNN graph: no T x T array is ever made.

Gallery context (--context gallery): every gallery row's R, R*, V and local expansion are those
of k-reciprocal run on the gallery alone (d normalised by the farthest gallery row). A query q
is treated as one more row of X' = [q; G] whose arrival changes nothing of the gallery's:
kNN(q, k) is q, then its k - 1 nearest gallery rows; R(q, k) = { j in kNN(q, k+1) : q would
enter kNN(j, k+1) }, i.e. d(q, j) <= the distance of j's (k+1)-th list entry (ties to q);
R*(q) expands R(q, k1) with the gallery's own R(c, h) by the 2/3 rule (R(q, h) for c = q);
V[q] over R*(q) with d(q, j) = e(q, j)^2 / max_g e(q, g)^2 (its own column included); V[q] <- the
mean of V over kNN(q, k2), the gallery rows' V being the gallery's. J and the final distance as
above, with d(q, g) normalised by q's farthest gallery row. No query sees another.
"""
import torch

from rerankbench.engine.contextual import OverlapDistances
from rerankbench.engine.neighbours import lookup_distances
from rerankbench.engine.reciprocal import expanded_reciprocal_sets
from rerankbench.engine.reranker import DATA_DEPENDENT, NEIGHBOURHOOD, NEIGHBOURHOOD_WITHOUT_SELF, Range, Reranker
from rerankbench.engine.sparse_rows import SparseRows

CONVENTIONS = {"euclidean": 2, "squared": 4}  # d = (e / max e) ** power


class KReciprocal(Reranker):
    name = "k_reciprocal"
    title = "k-reciprocal"
    defaults = {"k1": DATA_DEPENDENT, "k2": 6, "lambda": 0.3, "distance": "euclidean"}
    ranges = {"k1": NEIGHBOURHOOD_WITHOUT_SELF,  # R(i, k1) reads kNN(i, k1 + 1)
              "k2": NEIGHBOURHOOD, "lambda": Range(0, 1)}
    spellings = {"lam": "lambda"}  # lambda is a Python keyword: rerank("k_reciprocal", fs, lam=0.5)
    uses_distances = True

    def resolved(self, fs):
        params = super().resolved(fs)
        if params["distance"] not in CONVENTIONS:
            raise ValueError(f"parameter k_reciprocal.distance must be one of {', '.join(CONVENTIONS)}, "
                             f"got {params['distance']!r}")
        return params

    def neighbours_needed(self, fs):
        """kNN(i, k1 + 1), and twice that so that most of R*(i)'s distances are in the graph."""
        params = self.resolved(fs)
        return max(2 * (params["k1"] + 1), params["k2"])

    def rerank(self, shared):
        params = self.resolved(shared.fs)
        k1, k2, mix, power = params["k1"], params["k2"], params["lambda"], CONVENTIONS[params["distance"]]
        x = shared.features
        graph = shared.knn_graph(self.neighbours_needed(shared.fs))
        knn, distance, farthest = graph.tensors(x.device)
        outsiders = None if graph.outsiders is None else torch.as_tensor(graph.outsiders, device=x.device)
        total = len(x)

        rows, members = expanded_reciprocal_sets(knn, k1, distance, outsiders)
        d = (lookup_distances(x, knn, distance, rows, members) / farthest[rows]) ** power
        v = SparseRows.from_entries(rows, members, torch.exp(-d), (total, total))
        v = v.scale_rows(1.0 / v.row_sums())
        if k2 != 1:
            v = v.combine_rows(knn[:, :k2], torch.full((total, k2), 1.0 / k2, device=x.device))

        def finish(overlap, base, query_rows):  # in place on the base block: no M x N temporaries
            jaccard = 1.0 - overlap / (2.0 - overlap)
            return base.div_(farthest[query_rows]).pow_(power).mul_(mix).add_((1.0 - mix) * jaccard)

        return OverlapDistances([(v, v, "min")], finish, base=shared.query_gallery_distances())
