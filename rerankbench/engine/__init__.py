"""What every method stands on: the Reranker interface and the registry, the shared steps (kNN graph,
query-gallery distances), query expansion, sparse rows, reciprocal sets and contextual distances."""
