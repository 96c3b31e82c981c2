"""The benchmark commands (shared steps, ACP's budgets, the reference k-reciprocal, extraction speed)
and their report files under results/benchmarks/."""
