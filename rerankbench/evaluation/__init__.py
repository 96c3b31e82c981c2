"""Scoring: per-query CMC, AP and INP, and the metrics under each evaluation protocol."""
