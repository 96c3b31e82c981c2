"""One re-ranking method per file; each defines a `rerankbench.reranker.Reranker` subclass."""
