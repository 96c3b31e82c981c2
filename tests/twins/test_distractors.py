"""Large-gallery twins: market1501_500k is the Market-1501 twin plus distractors (identity 0),
generated block by block (the same however many are asked for), cached, k1 unchanged."""
from __future__ import annotations

import numpy as np

from rerankbench.engine.registry import datasets, select
from rerankbench.twins.distractors import distractor_blocks
from rerankbench.twins.synthetic import TwinModel


def test_market1501_500k_is_market1501_plus_distractors(tmp_path):
    base = datasets()["market1501"].load(0.01, cache_dir=tmp_path)
    large = datasets()["market1501_500k"].load(0.01, cache_dir=tmp_path)
    assert large.num_gallery == base.num_gallery + 5000 and large.num_query == base.num_query
    np.testing.assert_array_equal(large.query.features, base.query.features)
    np.testing.assert_array_equal(large.gallery.features[:base.num_gallery], base.gallery.features)
    assert (large.gallery.ids[base.num_gallery:] == 0).all() and large.default_k == base.default_k
    extra = large.gallery.features[base.num_gallery:]
    np.testing.assert_allclose(np.linalg.norm(extra, axis=1), 1.0, atol=1e-5)
    assert np.isin(large.gallery.cams[base.num_gallery:], np.unique(base.gallery.cams)).all()
    again = datasets()["market1501_500k"].load(0.01, cache_dir=tmp_path)  # from the cache, memory-mapped
    assert isinstance(again.gallery.features, np.memmap) and again.fingerprint == large.fingerprint
    uncached = datasets()["market1501_500k"].load(0.01)
    np.testing.assert_array_equal(uncached.gallery.features, large.gallery.features)
    assert "market1501_500k" not in select("all", datasets(), "dataset")  # named, never in "all"


def test_any_twin_takes_distractors_and_they_do_not_depend_on_how_many():
    few = datasets()["dukemtmc"].load(0.01, distractors=300)
    more = datasets()["dukemtmc"].load(0.01, distractors=1000)
    plain = datasets()["dukemtmc"].load(0.01)
    assert few.num_gallery == plain.num_gallery + 300 and few.source["distractors_added"] == 300
    np.testing.assert_array_equal(few.gallery.features, more.gallery.features[:few.num_gallery])
    assert few.fingerprint != plain.fingerprint


def test_blocks_are_seeded_and_chunk_invariant():
    model = TwinModel(noise=0.6, view_share=0.7)
    first = np.concatenate([f for _, _, f, _ in distractor_blocks(model, 0, "t", 700, 16, 6)])
    again = np.concatenate([f for _, _, f, _ in distractor_blocks(model, 0, "t", 700, 16, 6)])
    other = np.concatenate([f for _, _, f, _ in distractor_blocks(model, 1, "t", 700, 16, 6)])
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    sizes = [hi - lo for lo, hi, _, _ in distractor_blocks(model, 0, "t", 700, 16, 6)]
    assert sizes == [256, 256, 188]  # one block at a time
