"""AQE: average query expansion (Chum et al., "Total Recall", ICCV 2007).

x'_i = normalise( mean_{j in kNN(i, k)} x_j ) for every row of X, query and gallery alike;
distances are then recomputed on x'. Paper setting: k = N/C. Uniform weights let false
matches pull the feature away, so AQE degrades fast as k grows (paper, Sec. IV-C).

Gallery context (--context gallery): a gallery row is expanded over its kNN among the gallery
alone; a query q over kNN(q, k) = q itself, then its k - 1 nearest gallery rows (never another query).
"""
import torch

from rerankbench.engine.distances import FeatureDistances
from rerankbench.engine.expansion import expand
from rerankbench.engine.reranker import DATA_DEPENDENT, NEIGHBOURHOOD, Reranker


class AverageQueryExpansion(Reranker):
    name = "aqe"
    title = "AQE"
    aliases = {"k1": "k"}  # the neighbourhood size the paper calls k1
    defaults = {"k": DATA_DEPENDENT}
    ranges = {"k": NEIGHBOURHOOD}

    def neighbours_needed(self, fs):
        return self.resolved(fs)["k"]

    def rerank(self, shared):
        k = self.resolved(shared.fs)["k"]
        return FeatureDistances(expand(shared.features, shared.knn_graph(k), k,
                                       lambda _, similarity: torch.ones_like(similarity)))
