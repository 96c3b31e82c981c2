"""Baseline: no re-ranking. d(q, g) = ||q - g|| for L2-normalised features (= sqrt(2 - 2 cos)).
The same in both contexts (--context all | gallery): it reads no neighbourhood."""
from rerankbench.engine.reranker import Reranker


class Baseline(Reranker):
    name = "baseline"
    title = "Baseline"
    defaults = {}
    uses_distances = True

    def rerank(self, shared):
        return shared.query_gallery_distances()
