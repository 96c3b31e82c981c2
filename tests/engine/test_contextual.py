"""OverlapDistances finishes a block pair by pair where few pairs overlap and whole where most do:
both give every method the same distances to the bit."""
from __future__ import annotations

import numpy as np
import pytest

import rerankbench.engine.contextual as contextual
from rerankbench.engine.registry import datasets, method
from rerankbench.engine.shared import SharedSteps


@pytest.mark.parametrize("name", ["k_reciprocal", "sca", "ecn", "gnn"])
def test_whole_block_and_pair_by_pair_finish_agree_to_the_bit(name, monkeypatch):
    fs = datasets()["market1501"].load(0.02, dim=32)
    m, n = fs.num_query, fs.num_gallery

    def distances(dense_share):
        monkeypatch.setattr(contextual, "DENSE_SHARE", dense_share)
        shared = SharedSteps(fs)
        reranker = method(name)
        reranker.prepare(shared)
        return np.concatenate([block for _, block in reranker.rerank(shared).blocks(np.arange(m), np.arange(m, m + n))])

    whole, pairs = distances(-1.0), distances(2.0)  # every block whole; every block pair by pair
    assert whole.shape == (m, n)
    np.testing.assert_array_equal(whole, pairs)
