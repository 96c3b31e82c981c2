"""The pytest-benchmark suite: every method and the shared building blocks, timed on fixed,
seeded twins at two sizes.

    pytest --benchmark-only                        # time them (the normal test run skips them)
    pytest --benchmark-only --benchmark-autosave   # and keep the figures in results/benchmarks/pytest/

Groups put the methods of one size side by side ("methods, large"), and the shared steps
apart ("shared steps, large"). A method is timed from its shared steps (kNN graph, query-gallery
distances: built before timing, as the harness does) to its last query-gallery distance block,
which is what the `wall_s` of a result record measures. RERANKBENCH_BENCHMARK_SMOKE=1 swaps
the sizes for one tiny twin and is how tests/test_benchmark_suite.py checks the suite still runs.
"""
import os

import numpy as np
import pytest

from rerankbench.engine import registry
from rerankbench.engine.neighbours import build_knn_graph
from rerankbench.engine.shared import SharedSteps
from rerankbench.evaluation.protocols import evaluate_all
from rerankbench.evaluation.significance import bootstrap_interval, permutation_test
from rerankbench.features.trials import candidate_rows

SIZES = {"small": ("market1501", 0.1), "large": ("msmt17", 0.1)}  # T = 1,928 and 9,382
SMOKE_SIZES = {"smoke": ("market1501", 0.02)}
ROUNDS = 3


def sizes() -> dict:
    return SMOKE_SIZES if os.environ.get("RERANKBENCH_BENCHMARK_SMOKE") else SIZES


@pytest.fixture(scope="module", params=list(sizes()))
def prepared(request, tmp_path_factory) -> tuple[str, SharedSteps, int]:
    """A size's twin with its shared steps built (and ACP trained) for every method, and the
    graph's k (the largest any method reads)."""
    name, scale = sizes()[request.param]
    cache = tmp_path_factory.mktemp("cache")
    fs = registry.datasets()[name].load(scale=scale, seed=0, dim=2048, with_train=True, cache_dir=cache)
    shared = SharedSteps(fs, cache_dir=cache)  # ACP trains once (not timed), at its defaults
    instances = [cls() for cls in registry.methods().values()]
    k = max(m.neighbours_needed(fs) for m in instances)
    shared.build(k, True)
    for instance in instances:
        instance.prepare(shared)
    return request.param, shared, k


def consume(distances, fs) -> int:
    """Produce every query-gallery block a method yields; returns how many values it made."""
    rows, columns = candidate_rows(fs)
    return sum(block.size for _, block in distances.blocks(rows, columns))


@pytest.mark.parametrize("name", list(registry.methods()))
def test_method(benchmark, prepared, name):
    size, shared, _ = prepared
    method = registry.method(name)
    benchmark.group = f"methods, {size}"
    made = benchmark.pedantic(lambda: consume(method.rerank(shared), shared.fs), rounds=ROUNDS, iterations=1)
    rows, columns = candidate_rows(shared.fs)
    assert made == len(rows) * len(columns)


def test_knn_graph(benchmark, prepared):
    size, shared, k = prepared
    benchmark.group = f"shared steps, {size}"
    graph = benchmark.pedantic(build_knn_graph, args=(shared.features, k), rounds=ROUNDS, iterations=1)
    assert np.array_equal(graph.indices[:, 0], np.arange(len(shared.features)))


def test_evaluation(benchmark, prepared):
    size, shared, _ = prepared
    distances = shared.query_gallery_distances()
    benchmark.group = f"shared steps, {size}"
    metrics = benchmark.pedantic(evaluate_all, args=(distances, shared.fs), rounds=ROUNDS, iterations=1)
    assert 0 < metrics["map"] <= 100


def test_paired_tests(benchmark):
    """compare's two tests, 10,000 rounds each, over as many queries as the full MSMT17 twin has."""
    x = np.random.default_rng(0).normal(0, 1, 11_659)
    benchmark.group = "compare"
    p_value, _ = benchmark.pedantic(lambda: (permutation_test(x), bootstrap_interval(x, np.zeros(len(x), int))),
                                    rounds=ROUNDS, iterations=1)
    assert 0 < p_value <= 1
