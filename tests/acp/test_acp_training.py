"""ACP training: sequences from the kNN graph, checkpoints and resuming, the CLI's model figures."""
import numpy as np
import pytest
import torch

from conftest import plain_knn, plain_normalise
from rerankbench.acp.config import AcpConfig
from rerankbench.acp.sequences import SequencePool
from rerankbench.acp.training import TrainingSettings, checkpoint_folder, input_blocks, latest_checkpoint, train
from rerankbench.cli import main
from rerankbench.engine import registry
from rerankbench.features.featureset import Split

TINY = AcpConfig(layers=1, slots=2, heads=2, d_memory=4, d=8, dropout=0.2)
QUICK = TrainingSettings(neighbours=40, sequence_length=8, false_matches=7, refine_length=3, epochs=2)


@pytest.fixture(scope="module")
def train_split():
    return registry.datasets()["market1501"].load(scale=0.02, seed=0, dim=32, with_train=True).train


def test_sequences_start_with_the_probe_and_draw_matches_and_first_false_ones(train_split):
    pool = SequencePool.from_split(train_split, 40)
    knn = plain_knn(plain_normalise(train_split.features), 40)
    assert np.array_equal(pool.neighbours, knn)
    probes = np.arange(len(train_split))
    rows, labels = pool.draw(probes, 8, 5, np.random.default_rng(0))
    assert rows.shape == labels.shape == (len(probes), 8)
    assert np.array_equal(rows[:, 0], probes) and labels[:, 0].all()
    assert np.array_equal(labels, train_split.ids[rows] == train_split.ids[probes, None])
    for probe, row in zip(probes, rows):
        ranks = np.flatnonzero(np.isin(knn[probe], row))
        assert np.array_equal(knn[probe, ranks], row)  # in rank order
        allowed = knn[probe][(train_split.ids[knn[probe]] == train_split.ids[probe])
                             | (np.cumsum(train_split.ids[knn[probe]] != train_split.ids[probe]) <= 5)]
        assert np.isin(row, allowed).all()
    assert not labels[:, 1:].all() and labels[:, 1:].any()


def test_test_like_sequences_are_each_probes_first_neighbours(train_split):
    pool = SequencePool.from_split(train_split, 40)
    knn = plain_knn(plain_normalise(train_split.features), 40)
    rows, labels = pool.nearest(np.array([5, 0, 17]), 8)
    assert np.array_equal(rows, knn[[5, 0, 17], :8])
    assert np.array_equal(labels, train_split.ids[rows] == train_split.ids[[5, 0, 17], None])
    with pytest.raises(ValueError, match="need K >= 41"):
        pool.nearest(np.array([0]), 41)


@pytest.mark.parametrize("sequences,test_like", [("paper", [False, False]), ("knn", [True, True]),
                                                 ("mixed", [False, True])])
def test_training_takes_the_sequences_asked_for_batch_by_batch(train_split, sequences, test_like, monkeypatch):
    calls = []
    draw, nearest = SequencePool.draw, SequencePool.nearest
    monkeypatch.setattr(SequencePool, "draw", lambda self, *a: calls.append(False) or draw(self, *a))
    monkeypatch.setattr(SequencePool, "nearest", lambda self, *a: calls.append(True) or nearest(self, *a))
    train(train_split, TINY, TrainingSettings(**{**QUICK.__dict__, "epochs": 1, "epoch_size": 32,
                                                 "sequences": sequences}), None, seed=0)
    assert calls == test_like


def test_the_papers_sequences_keep_the_models_name(train_split, tmp_path):
    paper = checkpoint_folder(tmp_path, "market1501", train_split, TINY, QUICK, 0)
    assert "sequences" not in QUICK.recipe()
    knn = TrainingSettings(**{**QUICK.__dict__, "sequences": "knn"})
    assert knn.recipe() == {**QUICK.recipe(), "sequences": "knn"}
    assert checkpoint_folder(tmp_path, "market1501", train_split, TINY, knn, 0) != paper
    assert "ranking" not in QUICK.recipe()  # the paper's loss keeps the name too
    ranked = TrainingSettings(**{**QUICK.__dict__, "ranking": 1.0})
    assert ranked.recipe() == {**QUICK.recipe(), "ranking": 1.0}
    assert checkpoint_folder(tmp_path, "market1501", train_split, TINY, ranked, 0) != paper


def test_the_ranking_term_is_added_to_the_focal_loss(train_split, monkeypatch):
    import rerankbench.acp.training as training
    seen = []
    monkeypatch.setattr(training, "ranking_loss", lambda logits, labels: seen.append(labels.shape) or logits.sum() * 0.0)
    train(train_split, TINY, TrainingSettings(**{**QUICK.__dict__, "epochs": 1, "epoch_size": 32}), None, seed=0)
    assert seen == []  # off by default: the paper's loss alone
    train(train_split, TINY, TrainingSettings(**{**QUICK.__dict__, "epochs": 1, "epoch_size": 32, "ranking": 0.5}),
          None, seed=0)
    assert len(seen) == 2  # once per batch of 16


def test_fusion_uses_c3_and_c4_where_the_split_has_them():
    split = Split(np.ones((3, 4), np.float32), np.arange(3), blocks={"c3": np.ones((3, 2)), "c4": np.ones((3, 3))})
    assert input_blocks(split, TINY) == ("c3", "c4", "features")
    assert input_blocks(split, AcpConfig(fusion=False)) == ("features",)
    assert input_blocks(Split(split.features, split.ids), TINY) == ("features",)


def test_resuming_ends_where_an_uninterrupted_run_does(train_split, tmp_path):
    whole = train(train_split, TINY, QUICK, tmp_path / "whole", seed=3)
    halted = train(train_split, TINY, TrainingSettings(**{**QUICK.__dict__, "epochs": 1}), tmp_path / "halves", seed=3)
    assert len(halted.losses) == 1 and latest_checkpoint(tmp_path / "halves").name == "epoch-0001.pt"
    lines = []
    resumed = train(train_split, TINY, QUICK, tmp_path / "halves", seed=3, log=lines.append)
    assert lines[0].startswith("resuming after epoch 1")
    assert resumed.losses == whole.losses and len(whole.losses) == 2
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    assert [p.name for p in (tmp_path / "halves").iterdir()] == ["epoch-0002.pt"]
    with pytest.raises(ValueError, match="other seed"):
        train(train_split, TINY, QUICK, tmp_path / "halves", seed=4)


def test_training_lowers_the_loss_with_a_warm_up(train_split, tmp_path):
    settings = TrainingSettings(**{**QUICK.__dict__, "epochs": 6, "warmup_epochs": 2})
    assert [settings.lr_at(e) for e in range(3)] == pytest.approx([2e-5, 1.1e-4, 2e-4])
    trained = train(train_split, AcpConfig(**{**TINY.__dict__, "dropout": 0.0}),
                    TrainingSettings(**{**settings.__dict__, "lr": 3e-3}), tmp_path, seed=0)
    assert trained.losses[-1] < 0.8 * trained.losses[0]


def test_checkpoints_are_keyed_by_train_split_recipe_and_seed(train_split, tmp_path):
    folder = checkpoint_folder(tmp_path, "market1501", train_split, TINY, QUICK, 2)
    assert folder.parent == tmp_path / "acp" and folder.name.startswith(f"market1501-{train_split.fingerprint[:10]}-")
    assert folder.name.endswith("-seed2")
    assert checkpoint_folder(tmp_path, "market1501", train_split, TINY, QUICK, 2) == folder
    other_split = Split(train_split.features[1:], train_split.ids[1:])
    others = [checkpoint_folder(tmp_path, "market1501", other_split, TINY, QUICK, 2),
              checkpoint_folder(tmp_path, "market1501", train_split, AcpConfig(**{**TINY.__dict__, "heads": 4}), QUICK, 2),
              checkpoint_folder(tmp_path, "market1501", train_split, TINY, TrainingSettings(epoch_size=32), 2),
              checkpoint_folder(tmp_path, "market1501", train_split, TINY, QUICK, 3)]
    assert len({folder, *others}) == 5
    # more epochs continue the same model: the epoch count is not in the key
    assert checkpoint_folder(tmp_path, "market1501", train_split, TINY,
                             TrainingSettings(**{**QUICK.__dict__, "epochs": 9}), 2) == folder


def test_epoch_size_draws_that_many_probes_per_epoch(train_split, tmp_path):
    settings = TrainingSettings(**{**QUICK.__dict__, "epochs": 1, "epoch_size": 32})
    trained = train(train_split, TINY, settings, None, seed=0)
    assert trained.checkpoint is None and len(trained.losses) == 1  # no folder: nothing written
    calls = []
    original = SequencePool.draw
    SequencePool.draw = lambda self, probes, *a: calls.append(len(probes)) or original(self, probes, *a)
    try:
        train(train_split, TINY, settings, None, seed=0)
    finally:
        SequencePool.draw = original
    assert calls == [16, 16]


def test_a_pool_of_some_probes_holds_the_whole_graphs_lists_of_them(train_split):
    whole = SequencePool.from_split(train_split, 40)
    probes = np.array([17, 3, 90, 3])
    some = SequencePool.from_split(train_split, 40, probes=probes)
    assert some.neighbours.shape == (3, 40)  # each probe's list once
    for method in (lambda pool: pool.lists(probes), lambda pool: pool.nearest(probes, 8),
                   lambda pool: pool.draw(probes, 8, 5, np.random.default_rng(1))):
        for ours, theirs in zip(method(some), method(whole)):
            assert np.array_equal(ours, theirs)
    with pytest.raises(ValueError, match="no list for row 4"):
        some.lists(np.array([3, 4]))
    half = np.arange((len(train_split) + 1) // 2)  # half the rows or more: the whole graph, built symmetric
    assert SequencePool.from_split(train_split, 40, probes=half).position is None


def test_training_builds_the_lists_of_the_probes_it_draws_alone_and_trains_as_on_the_whole_pool(
        train_split, tmp_path, monkeypatch):
    settings = TrainingSettings(**{**QUICK.__dict__, "epochs": 3, "epoch_size": 32})
    pools, drawn = [], []
    build, lists = SequencePool.from_split.__func__, SequencePool.lists
    monkeypatch.setattr(SequencePool, "from_split", classmethod(
        lambda cls, *a, **kw: pools.append(build(cls, *a, **kw)) or pools[-1]))
    monkeypatch.setattr(SequencePool, "lists", lambda self, probes: drawn.extend(probes) or lists(self, probes))
    sampled = train(train_split, TINY, settings, None, seed=5)
    assert len(np.unique(drawn)) == len(pools[0].neighbours) < len(train_split) / 2  # every list built is drawn
    monkeypatch.setattr(SequencePool, "from_split", classmethod(lambda cls, split, k, show, probes: build(cls, split, k)))
    whole = train(train_split, TINY, settings, None, seed=5)
    assert sampled.losses == whole.losses
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(sampled.model.state_dict()[name], tensor), name


def test_model_figures_command_prints_ours_beside_the_paper(capsys):
    assert main(["model-figures"]) == 0
    out = capsys.readouterr().out
    assert "| ACP-Basic | 4.61 | 4.61 |" in out and "| ACP-XL | 62.48 | 62.48 |" in out


def test_an_epoch_is_full_batches_so_a_lone_sequence_never_meets_batch_norm(train_split, tmp_path):
    """A split of 16 k + 1 images: the one left over by the shuffle waits (BatchNorm cannot train on one)."""
    rows = np.arange(16 * (len(train_split) // 16) - 15)  # 16 (k - 1) + 1 images
    part = Split(train_split.features[rows], train_split.ids[rows], train_split.cams[rows])
    state = train(part, TINY, TrainingSettings(**{**QUICK.__dict__, "epochs": 1}), tmp_path, seed=0)
    assert state is not None
    with pytest.raises(ValueError, match="fewer than one batch"):
        train(Split(part.features[:5], part.ids[:5], part.cams[:5]), TINY, QUICK, tmp_path / "small", seed=0)
