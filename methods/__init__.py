"""One re-ranking method per file; each defines a `rerankbench.engine.reranker.Reranker` subclass."""
