"""Every registered method meets the Reranker interface."""
from __future__ import annotations

import numpy as np
import pytest

from rerankbench.engine import registry
from rerankbench.engine.distances import materialise
from rerankbench.engine.reranker import DATA_DEPENDENT, Reranker
from rerankbench.engine.shared import SharedSteps
from rerankbench.features.trials import trials

METHODS = list(registry.methods())
QUICK = {"acp": {"layers": 1, "heads": 2, "slots": 2, "d_memory": 4, "d": 8, "epochs": 1, "epoch_size": 32}}


def quick(name: str):
    """The method with its defaults, but a learned one small and briefly trained."""
    return registry.method(name, **QUICK.get(name, {}))


def test_registry_lists_the_methods_in_the_papers_order_with_their_defaults():
    assert METHODS == ["baseline", "aqe", "alpha_qe", "k_reciprocal", "alpha_qe_k_reciprocal", "sca", "ecn", "gnn", "acp"]
    defaults = {name: cls.defaults for name, cls in registry.methods().items()}
    nc = DATA_DEPENDENT
    assert defaults == {
        "baseline": {},
        "aqe": {"k": nc},
        "alpha_qe": {"k": nc, "alpha": 3.0},
        "k_reciprocal": {"k1": nc, "k2": 6, "lambda": 0.3, "distance": "euclidean"},
        "alpha_qe_k_reciprocal": {"k": nc, "alpha": 3.0, "k1": nc, "k2": 6, "lambda": 0.3, "distance": "euclidean"},
        "sca": {"k1": nc, "k2": 2},
        "ecn": {"k": 25, "t": 3, "q": 8},
        "gnn": {"k1": nc, "k2": 7},
        "acp": {"k1": nc, "k2": 6, "preset": "auto", "layers": "preset", "slots": "preset", "heads": "preset",
                "d_memory": "preset", "d": "preset", "dropout": "preset", "gamma": "preset", "fusion": True,
                "encoder": True, "memory": True, "refinement": True, "relations": False, "epochs": 20,
                "epoch_size": "auto", "sequences": "paper", "ranking": 0.0, "validation": 0.0, "seed": 0},
    }


def _example_value(cls, key):
    """A non-default value of the parameter's type and within its range, given as it would come from the CLI."""
    default = cls.defaults[key]
    if isinstance(default, bool):
        return "true" if not default else "false"
    if default == DATA_DEPENDENT or isinstance(default, int):
        return "5"
    if isinstance(default, float):  # 2.5, or 0.5 in [0, 1]
        bounds = cls.ranges[key]
        return f"{(bounds.low + min(bounds.high, bounds.low + 5)) / 2:g}"
    return default


@pytest.mark.parametrize("name", METHODS)
def test_constructor_stores_params_only(name, monkeypatch):
    cls = registry.methods()[name]
    assert issubclass(cls, Reranker) and cls.name == name

    # no work in the constructor: the shared steps and the kNN graph may not be touched
    def forbidden(*args, **kwargs):
        raise AssertionError("the constructor did work")
    import rerankbench.engine.neighbours
    import rerankbench.engine.shared
    monkeypatch.setattr(rerankbench.engine.shared.SharedSteps, "knn_graph", forbidden)
    monkeypatch.setattr(rerankbench.engine.shared.SharedSteps, "query_gallery_distances", forbidden)
    monkeypatch.setattr(rerankbench.engine.neighbours, "build_knn_graph", forbidden)

    assert cls().params == cls.defaults
    assert cls().params is not cls.defaults  # a copy: changing one instance's params leaves the class alone
    for key in cls.defaults:
        given = {key: _example_value(cls, key)}
        m = cls(**given)
        assert m.params == {**cls.defaults, **given}
        if key in cls.ranges:  # a number is checked against its range here, before any work
            with pytest.raises(ValueError, match=f"parameter {name}.{key} must be a number, got 'not-a-number'"):
                cls(**{key: "not-a-number"})
        else:  # a text choice is stored as given, and fails only when resolved
            assert cls(**{key: "not-a-number"}).params[key] == "not-a-number"
    m = registry.method(name, **{k: _example_value(cls, k) for k in cls.defaults})
    assert type(m) is cls


@pytest.mark.parametrize("name", METHODS)
def test_unknown_parameter_raises_naming_it(name):
    cls = registry.methods()[name]
    with pytest.raises(ValueError, match="bogus_param"):
        cls(bogus_param=1)
    with pytest.raises(ValueError, match="bogus_param"):
        registry.method(name, bogus_param=1)


@pytest.mark.parametrize("name", METHODS)
def test_title_and_aliases(name):
    """Every method has a title for the tables; an alias or another spelling names one of its parameters."""
    cls = registry.methods()[name]
    assert cls.title
    assert not set(cls.aliases) & set(cls.spellings)
    for alias, own in {**cls.aliases, **cls.spellings}.items():
        assert own in cls.defaults and alias not in cls.defaults
        value = _example_value(cls, own)
        assert cls.parameter(alias) == own and cls(**{alias: value}).overrides == {own: value}
        with pytest.raises(ValueError, match="twice"):
            cls(**{alias: value, own: value})
    assert cls.parameter("no_such_parameter") is None


def test_unknown_method_raises():
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        registry.method("nope")


@pytest.mark.parametrize("name", METHODS)
def test_resolved_casts_and_resolves_nc(name, market_twin):
    cls = registry.methods()[name]
    fs = market_twin
    defaults = cls().resolved(fs)
    assert set(defaults) == set(cls.defaults)
    for key, default in cls.defaults.items():
        if default == DATA_DEPENDENT:
            assert defaults[key] == fs.default_k and type(defaults[key]) is int
            assert cls(**{key: "5"}).resolved(fs)[key] == 5
            assert type(cls(**{key: "5"}).resolved(fs)[key]) is int
            assert cls(**{key: 7.0}).resolved(fs)[key] == 7
            for bad in ("abc", "0", "2.5", "-3"):
                with pytest.raises(ValueError, match=key):
                    cls(**{key: bad}).resolved(fs)
        elif isinstance(default, float):
            assert defaults[key] == default
            example = _example_value(cls, key)
            resolved = cls(**{key: example}).resolved(fs)[key]
            assert resolved == float(example) and type(resolved) is float
            assert type(cls(**{key: 1}).resolved(fs)[key]) is float
            with pytest.raises(ValueError, match=key):
                cls(**{key: "abc"}).resolved(fs)


@pytest.mark.parametrize("name", METHODS)
def test_every_numeric_parameter_declares_its_range(name, market_twin):
    """Every number (or "N/C") has a Range, whole for the whole numbers as they resolve (ACP's
    from its preset), and an "N/C" default is a neighbourhood size, checked against the rows of X."""
    cls = registry.methods()[name]
    numeric = {key for key, default in cls.defaults.items()
               if default == DATA_DEPENDENT or (isinstance(default, (int, float)) and not isinstance(default, bool))}
    assert numeric <= set(cls.ranges) <= set(cls.defaults)
    resolved = cls().resolved(market_twin)
    for key, bounds in cls.ranges.items():
        assert type(resolved[key]) is (int if bounds.whole else float), key
        assert bounds.whole or not bounds.neighbourhood
        assert bounds.neighbourhood or cls.defaults[key] != DATA_DEPENDENT


def test_resolved_rejects_infinite_whole_number(market_twin):
    with pytest.raises(ValueError, match="k"):
        registry.method("aqe", k="inf").resolved(market_twin)


def test_nc_default_k_values(market_twin, vehicleid_twin):
    # N/C = round(gallery images / gallery identities) (label 0 counted as one); VehicleID: 4
    ids = market_twin.gallery.ids
    assert market_twin.default_k == round(len(ids) / len(np.unique(ids[ids >= 0])))
    assert registry.method("aqe").resolved(market_twin) == {"k": market_twin.default_k}
    assert registry.method("alpha_qe").resolved(vehicleid_twin) == {"k": 4, "alpha": 3.0}


def _check_blocks(distances, query_rows, gallery_rows):
    offsets, rows = [], 0
    for offset, block in distances.blocks(query_rows, gallery_rows):
        assert offset == rows, "blocks must come in order, without gaps"
        assert isinstance(block, np.ndarray) and block.dtype == np.float32
        assert block.ndim == 2 and block.shape[1] == len(gallery_rows) and len(block) > 0
        assert np.isfinite(block).all()
        offsets.append(offset)
        rows += len(block)
    assert rows == len(query_rows)


@pytest.mark.parametrize("name", METHODS)
def test_rerank_blocks_cover_query_by_gallery(name, market_twin):
    fs = market_twin
    m, n = fs.num_query, fs.num_gallery
    q, g = np.arange(m), np.arange(m, m + n)
    method = quick(name)
    assert method.neighbours_needed(fs) >= 0
    if method.neighbours_needed(fs):  # every method but ECN (k = 25) reads at least the paper's k1 = N/C
        assert method.neighbours_needed(fs) >= (25 if name == "ecn" else fs.default_k)
    result = method.rerank(SharedSteps(fs))
    _check_blocks(result, q, g)
    first = materialise(result, q, g)
    again = materialise(quick(name).rerank(SharedSteps(fs)), q, g)
    np.testing.assert_array_equal(first, again)  # deterministic
    assert first.shape == (m, n)
    if name != "ecn":  # ECN's distances are negated rank-list overlaps
        assert (first >= -1e-6).all() and (first <= 2 + 1e-6).all()


@pytest.mark.parametrize("name", METHODS)
def test_one_result_serves_every_vehicleid_draw(name, vehicleid_twin):
    fs = vehicleid_twin
    t = fs.num_query + fs.num_gallery
    result = quick(name).rerank(SharedSteps(fs))
    full = materialise(result, np.arange(t), np.arange(t))
    for query_rows, gallery_rows in trials(fs)[:3]:
        _check_blocks(result, query_rows, gallery_rows)
        np.testing.assert_array_equal(materialise(result, query_rows, gallery_rows),
                                      full[np.ix_(query_rows, gallery_rows)])


@pytest.mark.parametrize("name", METHODS)
def test_repr_names_the_params(name):
    m = registry.method(name)
    assert repr(m).startswith(type(m).__name__ + "(")
    for key in m.params:
        assert key in repr(m)


def test_select_names_and_families():
    datasets = registry.datasets()
    assert registry.select("veriwild", datasets, "dataset") == ["veriwild_small", "veriwild_medium", "veriwild_large"]
    assert registry.select("market1501, vehicleid_small", datasets, "dataset") == ["market1501", "vehicleid_small"]
    assert registry.select("all", registry.methods(), "method") == METHODS
    assert registry.select(["aqe", "aqe", "baseline"], registry.methods(), "method") == ["aqe", "baseline"]
    with pytest.raises(ValueError, match="unknown dataset 'veri'"):
        registry.select("veri", datasets, "dataset")


def test_select_exact_name_is_not_a_family():
    known = {"alpha_qe": object, "alpha_qe_k_reciprocal": object, "k_reciprocal": object}
    assert registry.select("alpha_qe", known, "method") == ["alpha_qe"]
