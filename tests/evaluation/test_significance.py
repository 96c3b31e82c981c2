"""Paired tests: the randomisation test against exhaustive enumeration and under the null
hypothesis, the bootstrap interval's coverage of a planted difference, Holm's correction."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from rerankbench.evaluation.significance import bootstrap_interval, holm, permutation_test


def exact_p(x: np.ndarray) -> float:
    """The two-sided p-value over all 2^n sign patterns."""
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=len(x))))
    return float((np.abs(signs @ x) >= abs(x.sum()) - 1e-12).mean())


@pytest.mark.parametrize("seed, shift", [(0, 0.0), (1, 0.5), (2, 1.0), (3, 0.3)])
def test_randomisation_test_matches_exhaustive_enumeration(seed, shift):
    x = np.random.default_rng(seed).normal(shift, 1.0, 13)  # not a multiple of 8: a padded byte
    want = exact_p(x)
    got = permutation_test(x, rounds=200_000, seed=seed)
    assert abs(got - want) < 4 * np.sqrt(want * (1 - want) / 200_000) + 1e-5, (got, want)


def test_identical_results_give_p_1_and_the_interval_0_0():
    assert permutation_test(np.zeros(1000)) == 1.0
    assert bootstrap_interval(np.zeros(1000), np.zeros(1000, int)) == (0.0, 0.0)


def test_null_hypothesis_p_values_are_uniform_and_a_real_difference_is_found():
    """300 seeded samples of exchangeable pairs: about 5% of p-values fall below 0.05, 10% below 0.1."""
    p_values = np.array([permutation_test(np.random.default_rng(seed).normal(0, 1, 200), rounds=2_000, seed=seed)
                         for seed in range(300)])
    assert 0.025 <= (p_values < 0.05).mean() <= 0.08
    assert 0.06 <= (p_values < 0.10).mean() <= 0.14
    assert permutation_test(np.random.default_rng(0).normal(0.3, 1, 500)) < 1e-3


def test_the_interval_covers_a_planted_difference_in_about_95_percent_of_repetitions():
    """Three draws of different sizes, each with its own planted mean difference: the metric's
    difference is their mean, 0.5. 400 seeded repetitions of the paired bootstrap."""
    sizes, shifts = (150, 90, 200), (0.2, 0.5, 0.8)
    planted = float(np.mean(shifts))
    draws = np.repeat(np.arange(3), sizes)
    covered = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        differences = np.concatenate([rng.exponential(1.0, size) - 1.0 + shift for size, shift in zip(sizes, shifts)])
        low, high = bootstrap_interval(differences, draws, rounds=2_000, seed=seed)
        covered += low <= planted <= high
    assert 0.92 <= covered / 400 <= 0.98, covered



def test_holm_hand_worked():
    # sorted 0.01, 0.03, 0.04, 0.5 -> x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> 0.09 (kept increasing), 0.5
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([]) == []
