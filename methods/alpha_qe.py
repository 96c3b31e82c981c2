"""alpha-QE: alpha-weighted query expansion (Radenovic et al., "Fine-tuning CNN Image
Retrieval with No Human Annotation", TPAMI 2018).

x'_i = normalise( sum_{j in kNN(i, k)} max(x_i . x_j, 0)^alpha x_j ) for every row of X;
negative similarities are clipped to 0 so that a non-integer alpha never gives NaN.
Paper setting: k = N/C, alpha = 3. (fast-reid's `aqe` is this method.)

Gallery context (--context gallery): a gallery row is expanded over its kNN among the gallery
alone; a query q over kNN(q, k) = q itself (weight 1), then its k - 1 nearest gallery rows.
"""
from rerankbench.engine.distances import FeatureDistances
from rerankbench.engine.expansion import expand
from rerankbench.engine.reranker import DATA_DEPENDENT, NEIGHBOURHOOD, NON_NEGATIVE, Reranker


class AlphaQueryExpansion(Reranker):
    name = "alpha_qe"
    title = "αQE"
    aliases = {"k1": "k"}  # the neighbourhood size the paper calls k1
    defaults = {"k": DATA_DEPENDENT, "alpha": 3.0}
    ranges = {"k": NEIGHBOURHOOD, "alpha": NON_NEGATIVE}

    def neighbours_needed(self, fs):
        return self.resolved(fs)["k"]

    def rerank(self, shared):
        params = self.resolved(shared.fs)
        alpha = params["alpha"]
        return FeatureDistances(expand(shared.features, shared.knn_graph(params["k"]), params["k"],
                                       lambda _, similarity: similarity.clamp(min=0) ** alpha))
