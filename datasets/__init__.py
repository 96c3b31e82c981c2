"""One dataset per file. Each module lists its test sets in DATASETS (rerankbench/registry.py finds them)."""
