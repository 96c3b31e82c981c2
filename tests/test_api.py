"""The notebook API (rerank / evaluate / load_dataset) and FeatureSet validation."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import rerankbench
from conftest import make_featureset, plain_euclidean, plain_normalise
from rerankbench import FeatureError, FeatureSet, Split
from rerankbench.engine import registry
from rerankbench.engine.distances import FeatureDistances, PrecomputedDistances, materialise
from rerankbench.evaluation.protocols import evaluate_all
from rerankbench.features.featureset import unit_rows
from rerankbench.features.trials import check_protocol
from rerankbench.runtime.device import resolve_device


def test_round_trip(tmp_path):
    fs = rerankbench.load_dataset("market1501", scale=0.02, dim=32)
    same = registry.datasets()["market1501"].load(scale=0.02, seed=0, dim=32)
    assert fs.fingerprint == same.fingerprint
    cached = rerankbench.load_dataset("market1501", scale=0.02, dim=32, cache_dir=str(tmp_path))
    assert cached.fingerprint == fs.fingerprint
    d = rerankbench.rerank("baseline", fs)
    assert d.shape == (fs.num_query, fs.num_gallery) and d.dtype == np.float32
    x = plain_normalise(fs.stacked())
    np.testing.assert_allclose(d, plain_euclidean(x[:fs.num_query], x[fs.num_query:]), atol=1e-5)
    metrics = rerankbench.evaluate(d, fs)
    assert set(metrics) == {"cmc1", "cmc5", "cmc10", "map", "minp", "num_queries", "num_invalid_queries"}
    assert metrics["num_queries"] == fs.num_query and metrics["num_invalid_queries"] == 0
    # evaluate on a single trial equals the protocol's evaluation for a market-style set
    assert metrics == evaluate_all(PrecomputedDistances(d, np.arange(fs.num_query),
                                                        np.arange(fs.num_query, fs.num_query + fs.num_gallery)), fs)
    # the list form and float64 input give the same numbers
    assert rerankbench.evaluate(d.astype(np.float64).tolist(), fs) == metrics
    # parameters pass through
    d5 = rerankbench.rerank("aqe", fs, k=5)
    assert not np.allclose(d5, d)
    np.testing.assert_array_equal(d5, rerankbench.rerank("aqe", fs, k="5"))


def test_load_dataset_family_and_errors():
    fs = rerankbench.load_dataset("veriwild_small", scale=0.02, dim=32)
    assert fs.name == "veriwild_small"
    with pytest.raises(ValueError, match="unknown dataset"):
        rerankbench.load_dataset("nowhere", scale=0.02, dim=32)
    with pytest.raises(ValueError, match="unknown method"):
        rerankbench.rerank("nope", fs)
    with pytest.raises(ValueError, match="no parameter"):
        rerankbench.rerank("baseline", fs, k=3)


def test_evaluate_rejects_wrong_shape():
    fs = make_featureset(num_query=5, num_gallery=20, dim=8)
    with pytest.raises(ValueError, match=r"\(5, 20\)"):
        rerankbench.evaluate(np.zeros((5, 19), np.float32), fs)
    with pytest.raises(ValueError):
        rerankbench.evaluate(np.zeros((20, 5), np.float32), fs)
    with pytest.raises(ValueError):
        rerankbench.evaluate(np.zeros(100, np.float32), fs)


def test_evaluate_hand_worked_official_protocol():
    # 2 queries, 3 gallery items, no cameras. q0 id 1: gallery ids [2, 1, 1] at d [.1, .2, .3]
    # -> matches at ranks 2, 3: AP = (1/2 + 2/3)/2 = 7/12; AP_trap = ((0/1+1/2)/2 + (1/2+2/3)/2)/2 = 5/12
    # q1 id 9: no match in the gallery -> invalid.
    fs = FeatureSet("h", Split(np.eye(2, 4, dtype=np.float32), np.array([1, 9])),
                    Split(np.eye(3, 4, dtype=np.float32) + 0.1, np.array([2, 1, 1])))
    d = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]], np.float32)
    canonical = rerankbench.evaluate(d, fs)
    assert canonical["map"] == pytest.approx(100 * 7 / 12, abs=1e-12)
    assert canonical["cmc1"] == 0.0 and canonical["cmc5"] == 100.0
    official = rerankbench.evaluate(d, fs.with_protocol("market-official"))
    assert official["map"] == pytest.approx(100 * (5 / 12) / 2, abs=1e-12)  # averaged over both queries
    assert official["cmc5"] == pytest.approx(50.0, abs=1e-12)
    assert official["minp"] == canonical["minp"] == pytest.approx(100 * 2 / 3, abs=1e-12)


def test_feature_distances_blocks():
    fs = make_featureset(num_query=7, num_gallery=13, dim=8, seed=9)
    x = plain_normalise(fs.stacked())
    import torch
    d = FeatureDistances(torch.from_numpy(x.astype(np.float32)))
    rows, cols = np.array([3, 0, 19]), np.array([7, 8, 1])
    np.testing.assert_allclose(materialise(d, rows, cols), plain_euclidean(x[rows], x[cols]), atol=1e-5)


# ------------------------------------------------------------------------ FeatureSet checks
def _split(n=4, dim=3, **kw):
    rng = np.random.default_rng(n)
    args = dict(features=rng.normal(size=(n, dim)).astype(np.float32), ids=np.arange(n), cams=np.zeros(n, np.int64))
    args.update(kw)
    return Split(**args)


@pytest.mark.parametrize("query, gallery, message", [
    (dict(features=np.zeros((0, 3), np.float32), ids=np.arange(0), cams=np.zeros(0)), {}, "non-empty"),
    (dict(features=np.ones(4, np.float32)), {}, "2-D"),
    (dict(features=np.ones((4, 3), np.int64)), {}, "floating point"),
    (dict(ids=np.arange(5)), {}, "ids of shape"),
    (dict(cams=np.zeros(3)), {}, "cameras of shape"),
    (dict(features=np.array([[1, 0, np.nan]] * 4, np.float32)), {}, "NaN/inf"),
    ({}, dict(features=np.array([[1, 0, np.inf]] * 4, np.float32)), "NaN/inf"),
    (dict(features=np.array([[1, 0, 0]] * 3 + [[0, 0, 0]], np.float32)), {}, "all zero"),
    ({}, dict(features=np.ones((4, 5), np.float32)), "3-d but gallery features are 5-d"),
    (dict(cams=None), {}, "only one of query and gallery"),
    (dict(blocks={"c3": np.ones((3, 2), np.float32)}), {}, "block 'c3'"),
])
def test_featureset_validation(query, gallery, message):
    with pytest.raises(FeatureError, match=message):
        FeatureSet("bad", _split(**query), _split(**gallery))


def test_featureset_properties():
    # gallery of 7 images: ids 1,1,1,2,2,0,-1 -> identities {0, 1, 2} (the -1 is not one) ->
    # default k = round(7 / 3) = 2; with k_override 4 -> 4
    g = _split(7, ids=np.array([1, 1, 1, 2, 2, 0, -1]), cams=np.zeros(7, np.int64))
    q = _split(2, ids=np.array([1, 2]), cams=np.ones(2, np.int64))
    fs = FeatureSet("p", q, g, source={"kind": "synthetic"})
    assert (fs.num_query, fs.num_gallery, fs.dim) == (2, 7, 3)
    assert fs.default_k == 2
    assert FeatureSet("p", q, g, k_override=4).default_k == 4
    assert fs.synthetic and not FeatureSet("p", q, g).synthetic
    stacked = fs.stacked()
    assert stacked.dtype == np.float32 and stacked.shape == (9, 3)
    np.testing.assert_array_equal(stacked[2:], g.features)
    assert fs.with_protocol("vehicleid").protocol == "vehicleid"
    assert fs.with_protocol("vehicleid").fingerprint != fs.fingerprint
    assert fs.fingerprint == FeatureSet("other-name", q, g).fingerprint  # data, not the name
    described = fs.describe()
    assert described["num_gallery"] == 7 and described["source_kind"] == "synthetic"
    with pytest.raises(ValueError, match="unknown protocol"):
        check_protocol("nope")


# ------------------------------------------------------------------------ arguments the API refuses
@pytest.mark.parametrize("name, message", [
    ("all", "load_dataset takes one test set, and 'all' names market1501, dukemtmc, msmt17, veri776, "
            "veriwild_small, veriwild_medium, veriwild_large, vehicleid_small, vehicleid_medium, vehicleid_large"),
    ("market1501,dukemtmc", "load_dataset takes one test set, and 'market1501,dukemtmc' names market1501, dukemtmc"),
    ("veriwild", "load_dataset takes one test set, and 'veriwild' names veriwild_small, veriwild_medium, "
                 "veriwild_large"),
    ("", "load_dataset takes one test set, and '' names none"),
    ("market1501,nowhere", "unknown dataset 'nowhere'"),
])
def test_load_dataset_takes_exactly_one_test_set(name, message):
    with pytest.raises(ValueError) as error:
        rerankbench.load_dataset(name, scale=0.02, dim=32)
    assert str(error.value).startswith(message)


@pytest.fixture(scope="module")
def toy_api():
    fs = make_featureset(num_query=5, num_gallery=20, dim=8)
    return fs, rerankbench.rerank("baseline", fs)


@pytest.mark.parametrize("call, error, message", [
    (lambda fs, d: rerankbench.rerank(fs, "aqe"), TypeError,
     "rerank: method_name must be a method's name (str), e.g. 'aqe', got FeatureSet"),
    (lambda fs, d: rerankbench.rerank("aqe", "market1501"), TypeError,
     "rerank: feature_set must be a FeatureSet, e.g. rerankbench.load_dataset('market1501'), got str 'market1501'"),
    (lambda fs, d: rerankbench.evaluate(d, "market1501"), TypeError,
     "evaluate: feature_set must be a FeatureSet, e.g. rerankbench.load_dataset('market1501'), got str 'market1501'"),
    (lambda fs, d: rerankbench.evaluate(fs, d), TypeError, "evaluate: feature_set must be a FeatureSet, "
                                                           "e.g. rerankbench.load_dataset('market1501'), got ndarray"),
    (lambda fs, d: rerankbench.evaluate([[0.1, 0.2], [0.3]], fs), ValueError,
     "evaluate: distances must be an M x N array of numbers (numpy, torch or nested lists), got list [[0.1, 0.2], "
     "[0.3]] (setting an array element with a sequence"),
    (lambda fs, d: rerankbench.evaluate("far", fs), ValueError,
     "evaluate: distances must be an M x N array of numbers (numpy, torch or nested lists), got str 'far'"),
    (lambda fs, d: rerankbench.evaluate([[object()] * 20] * 5, fs), TypeError,
     "evaluate: distances must be an M x N array of numbers (numpy, torch or nested lists), got list"),
    (lambda fs, d: rerankbench.load_dataset(1501), TypeError, "load_dataset: name must be a test set's name (str), "
                                                              "got int 1501"),
])
def test_wrong_arguments_say_what_was_expected(toy_api, call, error, message):
    with pytest.raises(error) as raised:
        call(*toy_api)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_evaluate_refuses_nan_distances(toy_api):
    fs, d = toy_api
    d = d.copy()
    d[1, 7] = d[3, 0] = d[3, 2] = np.nan
    with pytest.raises(ValueError) as error:
        rerankbench.evaluate(d, fs)
    assert str(error.value) == "evaluate: distances hold 3 NaN values (first at query 1, gallery item 7)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_gives_the_command_lines_message(toy_api):
    fs, _ = toy_api
    with pytest.raises(ValueError) as error:
        rerankbench.rerank("baseline", fs, device="cuda")
    with pytest.raises(ValueError) as from_the_cli:
        resolve_device("cuda")
    assert str(error.value) == str(from_the_cli.value) == "--device cuda was asked for, but torch sees no CUDA device"
    with pytest.raises(ValueError, match="unknown device 'tpu'; use cpu, cuda or auto"):
        rerankbench.rerank("baseline", fs, device="tpu")
    np.testing.assert_array_equal(rerankbench.rerank("baseline", fs, device="auto"), rerankbench.rerank("baseline", fs))



# ------------------------------------------------------------------------ the features' scale
def scaled(fs: FeatureSet, factor: float) -> FeatureSet:
    """`fs` with every feature (train split included) multiplied by `factor`, in float32."""
    def times(split):
        return None if split is None else dataclasses.replace(split, features=(split.features * factor).astype(np.float32))
    return dataclasses.replace(fs, query=times(fs.query), gallery=times(fs.gallery), train=times(fs.train))


EVERY_METHOD_BUT_ACP = ["baseline", "aqe", "alpha_qe", "k_reciprocal", "alpha_qe_k_reciprocal", "sca", "ecn", "gnn"]


@pytest.fixture(scope="module")
def market_twin():
    fs = rerankbench.load_dataset("market1501", scale=0.02, dim=32)
    return fs, {name: rerankbench.evaluate(rerankbench.rerank(name, fs), fs) for name in EVERY_METHOD_BUT_ACP}


@pytest.mark.parametrize("factor", [1e20, 1e-30, 2.0 ** 100, 3e38])
def test_metrics_do_not_depend_on_the_features_scale(market_twin, factor):
    # 1e20: the squares in ||x|| overflowed float32 (every method scored the all-ties 10.00 / 22.36);
    # 1e-30: they underflowed, and the rows were refused as all zero
    fs, at_scale_1 = market_twin
    assert at_scale_1["baseline"]["cmc1"] > 50  # not the all-ties result (10.45)
    big = scaled(fs, factor)
    for name in EVERY_METHOD_BUT_ACP:
        assert rerankbench.evaluate(rerankbench.rerank(name, big), big) == at_scale_1[name], name


def test_unit_rows_is_plain_normalisation_bit_for_bit_at_ordinary_scales():
    fs = make_featureset(num_query=20, num_gallery=50, dim=24, seed=3)
    for factor in (1.0, 0.37, 3.0, 1e3, 1e-3):
        x = torch.from_numpy(fs.stacked() * np.float32(factor))
        assert torch.equal(unit_rows(x.clone()), x / x.norm(dim=1, keepdim=True)), factor


def test_acp_does_not_depend_on_the_features_scale():
    # ACP's model L2-normalises its input blocks (eq. 2): model_inputs scales them first
    fs = rerankbench.load_dataset("market1501", scale=0.02, dim=32, with_train=True)
    tiny = {"layers": 1, "heads": 2, "slots": 2, "d_memory": 4, "d": 8, "epochs": 2, "epoch_size": 48}
    want = rerankbench.evaluate(rerankbench.rerank("acp", fs, **tiny), fs)
    assert want["cmc1"] > 50  # not the all-ties result (10.45)
    for factor in (1e20, 1e-30):
        big = scaled(fs, factor)
        assert rerankbench.evaluate(rerankbench.rerank("acp", big, **tiny), big) == want, factor


@pytest.mark.parametrize("features, message", [
    (np.array([[1e39, 0, 1]] + [[1, 2, 3]] * 3), "query: 1 float64 feature rows are outside float32's range, in "
                                                 "which features are used (first in row 0, largest |x| 1e+39)"),
    (np.array([[1, 2, 3], [1e-300, 0, 0], [2e-40, 1e-41, 0], [1, 2, 3]]), "query: 2 float64 feature rows are outside "
                                                                          "float32's range"),
    (np.array([[1, 2, 3]] * 2 + [[0, 0, 0], [0, 0, 0]], np.float32), "query: 2 feature rows are all zero (first in row 2)"),
])
def test_featureset_refuses_rows_that_float32_cannot_hold(features, message):
    with pytest.raises(FeatureError) as error:
        FeatureSet("big", _split(features=features), _split())
    assert str(error.value).startswith(f"feature set 'big', {message}")


def test_featureset_keeps_tiny_and_huge_float32_rows():
    # a row is all zero only when its largest |x| is 0: 1e-45 (float32's smallest) and 3e38 are not
    features = np.array([[1e-45, 0, 0], [0, -3e38, 1], [1, 2, 3], [1e-30, 1e-30, 0]], np.float32)
    fs = FeatureSet("edges", _split(features=features), _split())
    x = unit_rows(torch.from_numpy(fs.stacked()[:4]))
    np.testing.assert_allclose(x.numpy(), plain_normalise(features.astype(np.float64)), atol=1e-7)
