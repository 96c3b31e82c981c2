"""ACP's validation on held-out training identities (acp/validation.py, issue 16): the AUC against
hand-worked cases and scipy's Mann-Whitney U, the held-out identities, the test-like sequences,
and the training that never sees them and keeps its best epoch."""
import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from conftest import plain_knn, plain_normalise
from rerankbench.acp import sequences
from rerankbench.acp.config import AcpConfig
from rerankbench.acp.training import TrainingSettings, model_name, train
from rerankbench.acp.validation import ValidationSequences, held_out_identities, pair_auc
from rerankbench.engine import registry

TINY = AcpConfig(layers=1, slots=2, heads=2, d_memory=4, d=8, dropout=0.2)
CHECKED = TrainingSettings(neighbours=40, sequence_length=8, false_matches=7, refine_length=3, epochs=4,
                           validation=0.2, validation_length=8, validation_probes=200)


@pytest.fixture(scope="module")
def train_split():
    # VehicleID's train split is hard enough that kNN(8) of a held-out image holds false matches
    return registry.datasets()["vehicleid_small"].load(scale=0.02, seed=0, dim=32, with_train=True).train


def test_pair_auc_counts_ordered_pairs_and_ties_as_half():
    # true {0.9, 0.3} against false {0.8, 0.1}: 0.9 > 0.8, 0.9 > 0.1, 0.3 < 0.8, 0.3 > 0.1
    assert pair_auc(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 0, 1, 0])) == 0.75
    # pooled over sequences: true {0.5, 0.7} against false {0.5, 0.2}: a tie (1/2) and three wins
    assert pair_auc(np.array([[0.5, 0.5], [0.7, 0.2]]), np.array([[1, 0], [1, 0]])) == 0.875
    assert pair_auc(np.array([0.2, 0.4]), np.array([1, 1])) is None
    rng = np.random.default_rng(0)
    scores, labels = rng.integers(0, 5, 300).astype(float), rng.random(300) < 0.3
    u = mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert pair_auc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()), abs=1e-12)


def test_held_out_identities_are_whole_seeded_and_a_share():
    ids = np.repeat(np.arange(50), 3)
    held = held_out_identities(ids, 0.1, seed=0)
    chosen = np.unique(ids[held])
    assert len(chosen) == 5 and held.sum() == 15 and not np.isin(ids[~held], chosen).any()
    assert np.array_equal(held, held_out_identities(ids, 0.1, seed=0))
    assert not np.array_equal(held, held_out_identities(ids, 0.1, seed=1))
    assert held_out_identities(np.array([0, 0, 1]), 0.9, seed=0).sum() in (1, 2)  # one identity always trains


def test_validation_sequences_are_each_probe_and_its_nearest_held_out_images(train_split):
    held = held_out_identities(train_split.ids, 0.2, seed=0)
    checks = ValidationSequences.draw(train_split, held, 8, 50, seed=0)
    members = np.flatnonzero(held)
    unit = plain_normalise(train_split.features[members])
    knn = members[plain_knn(unit, 8)]
    assert checks.rows.shape == (50, 8) and held[checks.rows].all()
    probes = np.searchsorted(members, checks.rows[:, 0])
    assert np.array_equal(checks.rows, knn[probes])
    assert np.array_equal(checks.labels, train_split.ids[checks.rows] == train_split.ids[checks.rows[:, :1]])
    cosines = np.einsum("pd,pld->pl", unit[probes], unit[np.searchsorted(members, checks.rows)])
    np.testing.assert_allclose(checks.cosines, cosines, atol=1e-5)
    assert 0.5 < checks.cosine_auc() < 1.0 and checks.labels[:, 1:].any() and not checks.labels[:, 1:].all()


def test_training_never_sees_held_out_identities_and_keeps_its_best_epoch(train_split, tmp_path, monkeypatch):
    seen = []
    original = sequences.SequencePool.from_split.__func__

    def spy(cls, split, k, show_progress=False, probes=None):
        seen.append(split.ids.copy())
        return original(cls, split, k, show_progress, probes)
    monkeypatch.setattr(sequences.SequencePool, "from_split", classmethod(spy))
    trained = train(train_split, TINY, CHECKED, tmp_path / "whole", seed=0)
    held_ids = np.unique(train_split.ids[held_out_identities(train_split.ids, 0.2, seed=0)])
    assert len(seen) == 1 and not np.isin(seen[0], held_ids).any() and len(seen[0]) + (
        np.isin(train_split.ids, held_ids).sum()) == len(train_split)
    curve = trained.describe()["validation"]["curve"]
    assert [row["epoch"] for row in curve] == [1, 2, 3, 4]
    best = max(curve, key=lambda row: row["auc"])
    assert trained.chosen_epoch == best["epoch"] == trained.describe()["validation"]["chosen_epoch"]
    checks = ValidationSequences.draw(train_split, held_out_identities(train_split.ids, 0.2, 0), 8, 200, 0)
    from rerankbench.acp.training import input_blocks, model_inputs
    inputs = torch.as_tensor(model_inputs([train_split], input_blocks(train_split, TINY)))
    assert checks.model_auc(trained.model, inputs, 3) == pytest.approx(best["auc"], abs=1e-12)  # the chosen model
    assert all(row["cosine_auc"] == checks.cosine_auc() for row in curve)
    # stopped after two epochs and resumed: the same curve, choice and model
    train(train_split, TINY, TrainingSettings(**{**CHECKED.__dict__, "epochs": 2}), tmp_path / "halves", seed=0)
    resumed = train(train_split, TINY, CHECKED, tmp_path / "halves", seed=0)
    assert resumed.validation == trained.validation and resumed.chosen_epoch == trained.chosen_epoch
    for name, tensor in trained.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_without_validation_models_keep_their_names():
    # the digest of ACP-Basic's default recipe in results/default_run (checkpoint .../market1501-ba095a5765-e03ddc6235-seed0/
    # on an Intel host since Market-1501's train fit was adopted)
    fs = registry.datasets()["market1501"].load(scale=0.1, seed=0, with_train=True)
    config, settings, seed = registry.method("acp").recipe(fs)
    assert settings.validation == 0
    # the train split's fingerprint, then the recipe's digest: the train twin's bytes follow the host's
    # MKL code path, the recipe's digest does not
    assert model_name("market1501", fs.train, config, settings, seed) == f"market1501-{fs.train.fingerprint[:10]}-e03ddc6235-seed0"
    config, checked, seed = registry.method("acp", validation=0.1).recipe(fs)
    assert checked.validation == 0.1 and checked.validation_length == 21  # Market-1501's k1 = N/C
    assert model_name("market1501", fs.train, config, checked, seed) != model_name("market1501", fs.train, config,
                                                                                   settings, seed)
