"""The sparse-row building blocks against dense numpy on small random matrices."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rerankbench.engine.neighbours import build_knn_graph, lookup_distances
from rerankbench.engine.sparse_rows import CombinedRows, SparseRows, add_inner_products, add_min_overlap, ragged_range


def random_sparse(rows=40, cols=30, density=0.15, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.random((rows, cols)) * (rng.random((rows, cols)) < density)
    r, c = np.nonzero(dense)
    return dense, SparseRows.from_entries(torch.as_tensor(r), torch.as_tensor(c), torch.as_tensor(dense[r, c]), dense.shape)


def to_dense(a: SparseRows) -> np.ndarray:
    out = np.zeros((a.rows, a.columns))
    np.add.at(out, (a.row_of_entries().numpy(), a.indices.numpy()), a.values.numpy())
    return out


def test_from_entries_sums_duplicates_and_sorts_columns():
    rows = torch.tensor([2, 0, 2, 2, 1])
    cols = torch.tensor([3, 1, 0, 3, 1])
    a = SparseRows.from_entries(rows, cols, torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0]), (4, 5))
    assert a.indptr.tolist() == [0, 1, 2, 4, 4]
    assert a.indices.tolist() == [1, 1, 0, 3]
    assert a.values.tolist() == [2.0, 5.0, 3.0, 5.0]


def test_ragged_range():
    got = ragged_range(torch.tensor([5, 0, 9]), torch.tensor([2, 0, 3]))
    assert got.tolist() == [5, 6, 9, 10, 11]


def test_transpose_select_scale_and_row_sums():
    dense, a = random_sparse()
    np.testing.assert_allclose(to_dense(a.transpose()), dense.T)
    rows = torch.tensor([7, 3, 3, 0])
    np.testing.assert_allclose(to_dense(a.select(rows)), dense[[7, 3, 3, 0]])
    factors = torch.arange(1.0, 41.0, dtype=torch.float64)
    np.testing.assert_allclose(to_dense(a.scale_rows(factors)), dense * factors.numpy()[:, None])
    np.testing.assert_allclose(a.row_sums().numpy(), dense.sum(1))


def test_transpose_keeps_each_columns_rows_in_increasing_order():
    _, a = random_sparse(50, 20, density=0.4, seed=4)
    t = a.transpose()
    rows = t.row_of_entries()
    assert torch.all((rows[1:] > rows[:-1]) | (t.indices[1:] > t.indices[:-1]))
    # the inverted index is the matrix built from the swapped triples
    want = SparseRows.from_entries(a.indices, a.row_of_entries(), a.values, (a.columns, a.rows))
    assert torch.equal(to_torch_rows(t), to_torch_rows(want))


@pytest.mark.parametrize("budget", [1 << 23, 9])
def test_sum_equals_from_entries_over_every_term(budget, monkeypatch):
    # A + A^T + C in row pieces (a tiny budget: a few rows a piece) is, to the bit, the matrix
    # from_entries builds from all their entries at once, duplicates added in term order
    import rerankbench.engine.sparse_rows
    monkeypatch.setattr(rerankbench.engine.sparse_rows, "BUDGET", budget)
    dense, a = random_sparse(30, 30, density=0.3, seed=5)
    c_dense, c = random_sparse(30, 30, density=0.1, seed=6)
    terms = [a, a.transpose(), c]
    got = SparseRows.sum(terms)
    np.testing.assert_allclose(to_dense(got), dense + dense.T + c_dense)
    want = SparseRows.from_entries(torch.cat([t.row_of_entries() for t in terms]), torch.cat([t.indices for t in terms]),
                                   torch.cat([t.values for t in terms]), (30, 30))
    assert torch.equal(to_torch_rows(got), to_torch_rows(want))


def test_keep_drops_entries_and_keeps_rows():
    dense, a = random_sparse(25, 25, density=0.3, seed=7)
    mask = a.indices % 3 != 0
    kept = a.keep(mask)
    want = dense * (np.arange(25) % 3 != 0)[None, :]
    np.testing.assert_allclose(to_dense(kept), want)
    assert kept.rows == 25 and kept.nnz == int(mask.sum())


@pytest.mark.parametrize("budget", [1 << 23, 5])
def test_combine_rows(budget, monkeypatch):
    # out[i] = sum_j w_ij A[n_ij]; a tiny budget forces one row per piece
    import rerankbench.engine.sparse_rows
    monkeypatch.setattr(rerankbench.engine.sparse_rows, "BUDGET", budget)
    dense, a = random_sparse(40, 40)
    rng = np.random.default_rng(1)
    neighbours = rng.integers(0, 40, (40, 3))
    weights = rng.random((40, 3))
    got = a.combine_rows(torch.as_tensor(neighbours), torch.as_tensor(weights))
    want = np.einsum("ik,ikc->ic", weights, dense[neighbours])
    np.testing.assert_allclose(to_dense(got), want)


def test_combined_rows_are_built_on_demand_and_the_same_whichever_rows_come_with_them():
    # row i of normalise(combine(A)) is the row of the whole matrix, to the bit, in any company
    dense, a = random_sparse(40, 40, density=0.3)
    rng = np.random.default_rng(2)
    neighbours = torch.as_tensor(rng.integers(0, 40, (40, 4)))
    weights = torch.as_tensor(rng.random((40, 4)), dtype=torch.float32)
    a = SparseRows(a.indptr, a.indices, a.values.float(), a.columns)
    lazy = CombinedRows(a, neighbours, weights)
    whole = lazy.select(torch.arange(40))
    want = np.einsum("ik,ikc->ic", weights.numpy(), dense[neighbours.numpy()])
    np.testing.assert_allclose(to_dense(whole), want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-5)
    for rows in (torch.tensor([5]), torch.tensor([39, 5, 0]), torch.arange(0, 40, 3)):
        part = lazy.select(rows)
        assert torch.equal(to_torch_rows(part), to_torch_rows(whole.select(rows)))
        owner, cols, values = lazy.take(rows)
        assert torch.equal(owner, part.row_of_entries()) and torch.equal(cols, part.indices)
        assert torch.equal(values, part.values)


def to_torch_rows(a: SparseRows) -> torch.Tensor:
    return torch.cat([a.indptr.double(), a.indices.double(), a.values.double()])


@pytest.mark.parametrize("budget", [1 << 23, 7])
def test_overlaps(budget, monkeypatch):
    import rerankbench.engine.sparse_rows
    monkeypatch.setattr(rerankbench.engine.sparse_rows, "BUDGET", budget)
    a_dense, a = random_sparse(20, 30, seed=2)
    b_dense, b = random_sparse(25, 30, seed=3)
    rows = torch.tensor([4, 0, 19, 4])
    out = torch.zeros(4 * 25, dtype=torch.float64)
    add_min_overlap(a, rows, b.transpose(), out)
    want = np.minimum(a_dense[[4, 0, 19, 4], None, :], b_dense[None]).sum(-1)
    np.testing.assert_allclose(out.view(4, 25).numpy(), want)
    out = torch.zeros(4 * 25, dtype=torch.float64)
    add_inner_products(a, rows, b.transpose(), out, rows_per_product=3)
    np.testing.assert_allclose(out.view(4, 25).numpy(), a_dense[[4, 0, 19, 4]] @ b_dense.T)


def test_lookup_distances_reads_the_graph_and_computes_the_rest():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    features = torch.from_numpy(x)
    graph = build_knn_graph(features, 5)
    knn, distance, _ = graph.tensors("cpu")
    rows = torch.as_tensor(rng.integers(0, 80, 500))
    cols = torch.cat([knn[rows[:250], 2], torch.as_tensor(rng.integers(0, 80, 250))])  # half in the graph
    got = lookup_distances(features, knn, distance, rows, cols)
    x64 = x.astype(np.float64)
    want = np.linalg.norm(x64[rows.numpy()] - x64[cols.numpy()], axis=1)
    np.testing.assert_allclose(got.numpy(), want, atol=2e-6)
    # the pairs found in the graph carry the graph's own numbers
    np.testing.assert_array_equal(got[:250].numpy(), distance[rows[:250], 2].numpy())
