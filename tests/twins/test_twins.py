"""Synthetic twins: structure only (the generator's numbers are being recalibrated)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rerankbench.engine import registry
from rerankbench.twins.synthetic import SplitCounts

SCALE, DIM = 0.02, 32
ALL = ["market1501", "dukemtmc", "msmt17", "veri776", "veriwild_small", "veriwild_medium", "veriwild_large",
       "vehicleid_small", "vehicleid_medium", "vehicleid_large"]


def test_all_ten_test_sets_registered_in_order():
    assert list(registry.datasets()) == ALL + ["market1501_500k"]  # the large-gallery set after the paper's ten
    assert registry.select("all", registry.datasets(), "dataset") == ALL


def test_split_counts_scaled_hand_worked():
    # ids = max(2, round(ids * s)), images = max(ids, round(images * s))
    assert SplitCounts(750, 3368, 6).scaled(0.02) == SplitCounts(15, 67, 6)  # 15.0, 67.36
    assert SplitCounts(750, 15913, 6).scaled(0.02) == SplitCounts(15, 318, 6)  # 318.26
    assert SplitCounts(200, 1678, 19).scaled(0.02) == SplitCounts(4, 34, 19)
    assert SplitCounts(800, 800).scaled(0.02) == SplitCounts(16, 16, 0)
    assert SplitCounts(10, 12).scaled(0.01) == SplitCounts(2, 2, 0)  # at least two identities


@pytest.fixture(scope="module")
def twins():
    return {name: registry.datasets()[name].load(scale=SCALE, seed=0, dim=DIM) for name in ALL}


@pytest.mark.parametrize("name", ALL)
def test_counts(name, twins):
    dataset, fs = registry.datasets()[name], twins[name]
    q, g = dataset.query.scaled(SCALE), dataset.gallery.scaled(SCALE)
    assert fs.name == name
    assert fs.num_query == q.images
    assert fs.num_gallery == g.images
    assert fs.dim == DIM
    assert fs.query.features.dtype == np.float32
    assert len(np.unique(fs.query.ids)) == q.ids
    assert len(np.unique(fs.gallery.ids[fs.gallery.ids > 0])) == g.ids
    assert fs.query.features.shape == (q.images, DIM) and fs.gallery.features.shape == (g.images, DIM)
    np.testing.assert_allclose(np.linalg.norm(fs.stacked(), axis=1), 1.0, atol=1e-5)
    assert fs.protocol == dataset.protocol
    assert (fs.query.ids >= 1).all() and (fs.gallery.ids >= 0).all()  # no junk (-1) in the twins


@pytest.mark.parametrize("name", ALL)
def test_every_query_identity_in_gallery(name, twins):
    fs = twins[name]
    assert set(fs.query.ids.tolist()) <= set(fs.gallery.ids.tolist())
    if fs.query.cams is not None:
        # and each query has a match under the camera filter (a gallery image from another camera)
        for qid, qcam in zip(fs.query.ids, fs.query.cams):
            assert ((fs.gallery.ids == qid) & (fs.gallery.cams != qcam)).any()


@pytest.mark.parametrize("name", ALL)
def test_source_and_labels(name, twins):
    fs = twins[name]
    assert fs.source["kind"] == "synthetic"
    assert fs.synthetic is True
    assert fs.source["scale"] == SCALE and fs.source["seed"] == 0
    assert fs.describe()["synthetic"] is True
    assert fs.describe()["num_query"] == fs.num_query
    assert fs.train is None


@pytest.mark.parametrize("name", ["market1501", "veri776", "vehicleid_small"])
def test_deterministic(name):
    dataset = registry.datasets()[name]
    a = dataset.load(scale=SCALE, seed=0, dim=DIM)
    b = dataset.load(scale=SCALE, seed=0, dim=DIM)
    for split in ("query", "gallery"):
        np.testing.assert_array_equal(getattr(a, split).features, getattr(b, split).features)
        np.testing.assert_array_equal(getattr(a, split).ids, getattr(b, split).ids)
        if getattr(a, split).cams is not None:
            np.testing.assert_array_equal(getattr(a, split).cams, getattr(b, split).cams)
    assert a.fingerprint == b.fingerprint
    c = dataset.load(scale=SCALE, seed=1, dim=DIM)
    assert c.fingerprint != a.fingerprint  # another seed, another twin


@pytest.mark.parametrize("name", ["market1501", "vehicleid_small"])
def test_cache_round_trip(name, tmp_path):
    dataset = registry.datasets()[name]
    fresh = dataset.load(scale=SCALE, seed=0, dim=DIM)
    first = dataset.load(scale=SCALE, seed=0, dim=DIM, cache_dir=tmp_path)
    stored = sorted(p.name for p in tmp_path.rglob("*.npy"))
    assert any(p.startswith("query.features") for p in stored) and any(p.startswith("gallery.ids") for p in stored)
    second = dataset.load(scale=SCALE, seed=0, dim=DIM, cache_dir=tmp_path)
    for fs in (first, second):
        assert fs.fingerprint == fresh.fingerprint
        for split in ("query", "gallery"):
            np.testing.assert_array_equal(getattr(fs, split).features, getattr(fresh, split).features)
            np.testing.assert_array_equal(getattr(fs, split).ids, getattr(fresh, split).ids)
            assert (getattr(fs, split).cams is None) == (getattr(fresh, split).cams is None)
    # the second load read the files: they are memory-mapped
    assert isinstance(second.query.features, np.memmap)
    # a train split asked later is generated and added; the test splits are unchanged
    with_train = dataset.load(scale=SCALE, seed=0, dim=DIM, with_train=True, cache_dir=tmp_path)
    assert with_train.train is not None
    np.testing.assert_array_equal(with_train.query.features, fresh.query.features)
    again = dataset.load(scale=SCALE, seed=0, dim=DIM, with_train=True, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.train.features, with_train.train.features)
    np.testing.assert_array_equal(again.train.ids, with_train.train.ids)


def test_cache_key_covers_counts(tmp_path):
    market = registry.datasets()["market1501"]
    market.load(scale=SCALE, seed=0, dim=DIM, cache_dir=tmp_path)
    changed = dataclasses.replace(market, distractors=0)
    fs = changed.load(scale=SCALE, seed=0, dim=DIM, cache_dir=tmp_path)
    assert (fs.gallery.ids == 0).sum() == 0


def test_market_distractors_labelled_zero_in_gallery_only(twins):
    fs = twins["market1501"]
    dataset = registry.datasets()["market1501"]
    assert (fs.gallery.ids == 0).sum() == round(2798 * SCALE) == 56
    assert (fs.query.ids == 0).sum() == 0
    assert fs.query.cams is not None and fs.gallery.cams is not None
    assert set(np.unique(fs.gallery.cams).tolist()) <= set(range(dataset.gallery.cameras))
    for name in ALL[1:]:
        assert (twins[name].gallery.ids == 0).sum() == 0


@pytest.mark.parametrize("name", ["vehicleid_small", "vehicleid_medium", "vehicleid_large"])
def test_vehicleid_structure(name, twins):
    fs = twins[name]
    dataset = registry.datasets()[name]
    assert fs.protocol == "vehicleid"
    assert fs.query.cams is None and fs.gallery.cams is None
    assert fs.k_override == 4 and fs.default_k == 4
    ids = dataset.gallery.scaled(SCALE).ids
    assert sorted(fs.gallery.ids.tolist()) == list(range(1, ids + 1))  # one image per identity


def test_default_k_is_n_over_c_unless_the_paper_runs_another(twins):
    found = registry.datasets()
    # Market-1501's twin gallery at full size: 15,913 images of 750 identities
    assert found["market1501"].default_k == round(15913 / 750) == 21
    # VERI-Wild: N/C = 38,861 / 3,000 = 13, but Table V's cells lie on Fig. 11's curves at 25
    assert [found[f"veriwild_{size}"].default_k for size in ("small", "medium", "large")] == [25, 25, 25]
    assert twins["veriwild_small"].default_k == 25
    assert found["vehicleid_small"].default_k == 4


@pytest.mark.parametrize("name", ["market1501", "veri776", "vehicleid_small"])
def test_train_split_only_when_asked(name):
    dataset = registry.datasets()[name]
    test_only = dataset.load(scale=SCALE, seed=0, dim=DIM)
    fs = dataset.load(scale=SCALE, seed=0, dim=DIM, with_train=True)
    assert test_only.train is None
    counts = dataset.train.scaled(SCALE)
    train = fs.train
    assert train is not None
    assert train.features.shape == (counts.images, DIM)
    assert train.ids.shape == (counts.images,)
    assert sorted(np.unique(train.ids).tolist()) == list(range(1, counts.ids + 1))
    if dataset.train.cameras:
        assert train.cams.shape == (counts.images,)
        assert set(np.unique(train.cams).tolist()) <= set(range(dataset.train.cameras))
    else:
        assert train.cams is None
    # asking for the train split leaves the test splits as they were
    np.testing.assert_array_equal(fs.query.features, test_only.query.features)
    np.testing.assert_array_equal(fs.gallery.features, test_only.gallery.features)
    assert fs.fingerprint == test_only.fingerprint
    # the train split is generated separately (its own tag): no train image equals a test image
    test = np.concatenate([fs.query.features, fs.gallery.features])
    assert np.abs(train.features @ test.T).max() < 0.9999


def test_bad_scale_rejected():
    with pytest.raises(ValueError, match="scale"):
        registry.datasets()["market1501"].load(scale=0, dim=DIM)
    with pytest.raises(ValueError, match="scale"):
        registry.datasets()["market1501"].load(scale=1.5, dim=DIM)
