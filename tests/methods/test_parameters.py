"""Parameters: each number is checked against its declared range when the method is made, and a
neighbourhood size against the rows of X when it is resolved on a feature set, the same way for
every method; k-reciprocal's lambda may be named lam (issue 14: nothing lost, nothing silently wrong)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import rerankbench
from conftest import clustered_set
from rerankbench.engine import registry
from rerankbench.harness.sweep import sweep_cells

POSITIVE_WHOLE = {"aqe": ["k"], "alpha_qe": ["k"], "k_reciprocal": ["k1", "k2"],
                  "alpha_qe_k_reciprocal": ["k", "k1", "k2"], "sca": ["k1", "k2"], "ecn": ["k", "t", "q"],
                  "gnn": ["k1", "k2"], "acp": ["k1", "k2", "layers", "slots", "heads", "d_memory", "d", "epochs",
                                               "epoch_size"]}
RANGES = [  # (method, parameter, values inside, values outside, the range as the message words it)
    ("k_reciprocal", "lambda", [0, "0.3", 1], ["2", -1, 1.01], "in [0, 1]"),
    ("alpha_qe_k_reciprocal", "lambda", [0, 1.0], [-0.5, "2"], "in [0, 1]"),
    ("alpha_qe", "alpha", [0, "3", 10.5], ["-3", -0.01], ">= 0"),
    ("alpha_qe_k_reciprocal", "alpha", ["0", 3], [-3], ">= 0"),
    ("acp", "dropout", [0, "0.4", 0.99], ["1", -0.1], "in [0, 1)"),
    ("acp", "gamma", [0, "2"], [-1], ">= 0"),
    ("acp", "seed", [0, "7"], [-1, "0.5"], "a whole number >= 0"),
    *[(method, key, [1, "7", 8.0], [0, "-2", "2.5"], "a positive whole number")
      for method, keys in POSITIVE_WHOLE.items() for key in keys],
]
NEIGHBOURHOODS = {  # the parameters that count rows of X: True where the row itself is not counted
    ("aqe", "k"): False, ("alpha_qe", "k"): False, ("k_reciprocal", "k1"): True, ("k_reciprocal", "k2"): False,
    ("alpha_qe_k_reciprocal", "k"): False, ("alpha_qe_k_reciprocal", "k1"): True,
    ("alpha_qe_k_reciprocal", "k2"): False, ("sca", "k1"): False, ("sca", "k2"): False, ("ecn", "k"): False,
    ("ecn", "t"): True, ("ecn", "q"): True, ("gnn", "k1"): False, ("gnn", "k2"): False, ("acp", "k1"): False, ("acp", "k2"): False,
}


@pytest.mark.parametrize("method, key, inside, outside, wording", RANGES,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_a_value_outside_its_range_is_refused_when_made(method, key, inside, outside, wording, market_twin):
    cls = registry.methods()[method]
    for value in inside:
        assert cls(**{key: value}).resolved(market_twin)[key] == float(value)
    for value in outside:
        message = re.escape(f"parameter {method}.{key} must be {wording}, got {value}") + "$"
        with pytest.raises(ValueError, match=message):
            cls(**{key: value})
        with pytest.raises(ValueError, match=message):
            registry.method(method, **{key: value})


def test_the_api_refuses_lambda_and_alpha_out_of_range_before_any_work(market_twin, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("work was done before the parameters were checked")
    monkeypatch.setattr("rerankbench.engine.shared.SharedSteps.__init__", forbidden)
    for method, params, message in [
        ("k_reciprocal", {"lambda": 2}, "parameter k_reciprocal.lambda must be in [0, 1], got 2"),
        ("k_reciprocal", {"lambda": -1}, "parameter k_reciprocal.lambda must be in [0, 1], got -1"),
        ("alpha_qe_k_reciprocal", {"lambda": 2}, "parameter alpha_qe_k_reciprocal.lambda must be in [0, 1], got 2"),
        ("alpha_qe", {"alpha": -3}, "parameter alpha_qe.alpha must be >= 0, got -3"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            rerankbench.rerank(method, market_twin, **params)


def test_the_neighbourhood_sizes_are_those_declared():
    declared = {(name, key): bounds.self_excluded for name, cls in registry.methods().items()
                for key, bounds in cls.ranges.items() if bounds.neighbourhood}
    assert declared == NEIGHBOURHOODS


@pytest.mark.parametrize("method, key", list(NEIGHBOURHOODS), ids=lambda v: v)
def test_a_neighbourhood_larger_than_the_rows_of_x_is_refused_when_resolved(method, key, market_twin):
    fs = market_twin
    rows = fs.num_query + fs.num_gallery

    def limit(k):
        return rows - 1 if NEIGHBOURHOODS[(method, k)] else rows
    largest = {k: limit(k) for m, k in NEIGHBOURHOODS if m == method}
    assert registry.method(method, **largest).resolved(fs)[key] == limit(key)  # every row: fine
    other = " other than the row itself" if NEIGHBOURHOODS[(method, key)] else ""
    for value in (limit(key) + 1, 100000):
        message = re.escape(f"parameter {method}.{key} = {value} is larger than the {limit(key):,} rows of X "
                            f"(queries + gallery){other}") + "$"
        with pytest.raises(ValueError, match=message):
            registry.method(method, **{key: value}).resolved(fs)
        with pytest.raises(ValueError, match=message):
            rerankbench.rerank(method, fs, **{key: value})


def test_the_rows_of_x_are_counted_in_the_message():
    fs = clustered_set()
    assert fs.num_query + fs.num_gallery == 1050
    with pytest.raises(ValueError, match=re.escape("parameter aqe.k = 100000 is larger than the 1,050 rows of X "
                                                   "(queries + gallery)") + "$"):
        rerankbench.rerank("aqe", fs, k=100000)


# ------------------------------------------------------- lam: lambda, which Python cannot take
@pytest.mark.parametrize("method", ["k_reciprocal", "alpha_qe_k_reciprocal"])
def test_lambda_can_be_given_as_lam_and_is_recorded_as_lambda(method, market_twin):
    fs = market_twin
    by_lam = registry.method(method, lam=0.5)
    assert by_lam.overrides == {"lambda": 0.5}
    assert by_lam.resolved(fs) == registry.method(method, **{"lambda": 0.5}).resolved(fs)
    assert by_lam.resolved(fs)["lambda"] == 0.5 and "lam" not in by_lam.resolved(fs)
    got = rerankbench.rerank(method, fs, lam=0.5)
    np.testing.assert_array_equal(got, rerankbench.rerank(method, fs, **{"lambda": 0.5}))
    assert not np.array_equal(got, rerankbench.rerank(method, fs))  # lambda = 0.3: lam was used
    with pytest.raises(ValueError, match=f"method '{method}': lam, lambda name one parameter twice"):
        registry.method(method, lam=0.5, **{"lambda": 0.5})
    with pytest.raises(ValueError, match=re.escape(f"parameter {method}.lambda must be in [0, 1], got 2") + "$"):
        registry.method(method, lam=2)


@pytest.mark.parametrize("param", ["lam", "lambda"])
def test_a_sweep_over_lam_or_lambda_sets_lambda(param):
    cells = sweep_cells(["baseline", "k_reciprocal", "alpha_qe_k_reciprocal"], param, [0.1, 0.5],
                        {"k_reciprocal": {"k2": "3"}})
    assert cells == [("baseline", {}),
                     ("k_reciprocal", {"k2": "3", "lambda": 0.1}), ("k_reciprocal", {"k2": "3", "lambda": 0.5}),
                     ("alpha_qe_k_reciprocal", {"lambda": 0.1}), ("alpha_qe_k_reciprocal", {"lambda": 0.5})]
    for fixed in ("lam", "lambda"):  # --set k_reciprocal.lam=... and a sweep over lambda (or lam) clash
        with pytest.raises(ValueError, match=f"--set k_reciprocal.lambda conflicts with the swept --param {param}"):
            sweep_cells(["k_reciprocal"], param, [0.1], {"k_reciprocal": {fixed: "0.3"}})
