"""alpha-QE + k-reciprocal: k-reciprocal re-ranking (k1, k2, lambda) of the alpha-QE-expanded
features x' = normalise(sum_{j in kNN(i, k)} max(x_i . x_j, 0)^alpha x_j) (the paper's
combined baseline; see methods/alpha_qe.py and methods/k_reciprocal.py for the formulas).

The expanded features need a kNN graph and query-gallery distances of their own: they are
shared steps of the expanded set (`SharedSteps.derived`), built before the method is timed,
cached, and reused by every k1 / k2 / lambda of a sweep.

Gallery context (--context gallery): alpha-QE's gallery context (the gallery expanded over the
gallery alone, each query over itself and its nearest gallery rows), then k-reciprocal's gallery
context on the expanded features (its kNN graph is the expanded gallery's own).
"""
from rerankbench.engine.expansion import expand
from rerankbench.engine.reranker import Reranker
from rerankbench.methods.alpha_qe import AlphaQueryExpansion
from rerankbench.methods.k_reciprocal import KReciprocal


class AlphaQeKReciprocal(Reranker):
    name = "alpha_qe_k_reciprocal"
    title = "αQE + k-reciprocal"
    defaults = {**AlphaQueryExpansion.defaults, **KReciprocal.defaults}
    ranges = {**AlphaQueryExpansion.ranges, **KReciprocal.ranges}
    spellings = KReciprocal.spellings  # lam for lambda

    def neighbours_needed(self, fs):
        return self.resolved(fs)["k"]

    def prepare(self, shared):
        super().prepare(shared)
        reranker, expanded = self._parts(shared)
        reranker.prepare(expanded)

    def rerank(self, shared):
        reranker, expanded = self._parts(shared)
        return reranker.rerank(expanded)

    def _parts(self, shared):
        params = self.resolved(shared.fs)
        k, alpha = params["k"], params["alpha"]
        reranker = KReciprocal(**{key: params[key] for key in KReciprocal.defaults})
        reranker.resolved(shared.fs)  # check the parameters before any work

        def alpha_qe(parent):
            return expand(parent.features, parent.knn_graph(k), k, lambda _, s: s.clamp(min=0) ** alpha)
        return reranker, shared.derived(f"alpha_qe-k{k}-alpha{alpha:g}", alpha_qe)
