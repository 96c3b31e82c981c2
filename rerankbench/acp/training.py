"""Training ACP on a train split with the backbone frozen (paper Sec. IV-B2).

Sequences from the train split's kNN graph (sequences.py), batches of 16, focal loss (eq. 13),
Adam (lr 2e-4, weight decay 5e-4), the learning rate warmed up linearly over the first 10
epochs from 0.1 x (as in BoT, per epoch) and constant afterwards (the paper gives no schedule
or epoch count: we take 20 epochs). One epoch = every training image once as a probe, or, with
`epoch_size`, that many probes drawn afresh each epoch (a budget for this CPU machine: one
epoch of ACP-Basic on the full MSMT17 twin's 30,248 images takes about 4 minutes on 2 cores).
The K = 1000 lists are computed for the probes the epochs will draw alone (epoch_probes;
sequences.py), the same lists as the whole graph's, so a budget also bounds that cost.

`sequences` picks the training sequences: "paper" (the draw above, the default), "knn" (each
probe's first l1 neighbours, as at test time; sequences.py) or "mixed" (the two by turns, batch
by batch). Not in the paper (issue 16, which measured the paper's draw at 41% true matches on
the Market-1501 twin where the test's kNN(k1) sequences hold 79%). `ranking` > 0 adds that
weight of a pairwise ranking term to the focal loss (loss.py; not in the paper either).

With `validation` > 0, that share of the training identities is held out and every epoch is
scored on them as at test time (validation.py); the epoch with the highest AUC of s is the model
returned, and the curve and the chosen epoch go into the record.

A checkpoint is written after every epoch (the latest one kept) in `folder`; a new call with
the same folder resumes after the last finished epoch, and one that asks for no more epochs than
are done loads the model without training. Each epoch's shuffle, draws and dropout
come from (seed, epoch) alone, so a resumed run ends in the same state as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..features.featureset import Split, scale_free_rows
from ..runtime.files import DamagedFile, discard, folder_lock, write_atomic
from ..runtime.progress import progress
from .config import AcpConfig
from .loss import focal_loss, ranking_loss
from .model import AcpModel
from .sequences import SequencePool
from .validation import ValidationSequences, held_out_identities

FUSED_BLOCKS = ("c3", "c4")  # before C5, in this order, when the split has them


@dataclass(frozen=True)
class TrainingSettings:
    """K neighbours, l1 (sequence length, probe included), F first false matches, l2, the optimiser, epochs."""

    neighbours: int = 1000
    sequence_length: int = 25
    false_matches: int = 24
    refine_length: int = 6
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 5e-4
    warmup_epochs: int = 10
    warmup_factor: float = 0.1
    epochs: int = 20
    epoch_size: int | None = None  # probes per epoch; None: every training image
    sequences: str = "paper"  # "paper": the paper's draw; "knn": test-like kNN(l1); "mixed": the two by turns
    ranking: float = 0.0  # weight of the pairwise ranking term beside the focal loss (loss.py); 0: the paper's loss
    validation: float = 0.0  # share of the training identities held out for validation; 0: none
    validation_length: int = 25  # k1 of the validation sequences (the method's test k1)
    validation_probes: int = 1000

    def recipe(self) -> dict:
        """The settings that make a model (not `epochs`: asking for more resumes); the validation
        fields only when validation is on, `sequences` only when not the paper's and `ranking`
        only when on, so that models without them keep their names."""
        skipped = ({"epochs"} | ({"validation", "validation_length", "validation_probes"} if not self.validation else set())
                   | ({"sequences"} if self.sequences == "paper" else set()) | ({"ranking"} if not self.ranking else set()))
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skipped}

    def lr_at(self, epoch: int) -> float:
        """lr x (f + (1 - f) e / E_w) for epochs e < E_w (0-based), lr after."""
        progress_ = min(epoch / self.warmup_epochs, 1.0) if self.warmup_epochs else 1.0
        return self.lr * (self.warmup_factor + (1 - self.warmup_factor) * progress_)


@dataclass
class TrainedAcp:
    model: AcpModel
    blocks: tuple[str, ...]  # the feature blocks fed to the model, C5 ("features") last
    losses: list[float] = field(default_factory=list)  # mean training loss of each epoch
    epoch_seconds: list[float] = field(default_factory=list)  # and its wall time
    checkpoint: Path | None = None
    validation: list[dict] = field(default_factory=list)  # per epoch: {"epoch", "auc", "cosine_auc"}
    best_state: dict | None = None  # the model's state at the chosen epoch, with validation

    @property
    def chosen_epoch(self) -> int | None:
        """1-based epoch of the highest validation AUC (the first of equals); None without validation
        or where no epoch's AUC means anything (validation.py)."""
        scored = [row for row in self.validation if row["auc"] is not None]
        return max(scored, key=lambda row: (row["auc"], -row["epoch"]))["epoch"] if scored else None

    def describe(self) -> dict:
        """What a result record keeps of the training."""
        described = {"checkpoint": None if self.checkpoint is None else str(self.checkpoint), "blocks": list(self.blocks),
                     "epochs_done": len(self.losses), "final_loss": self.losses[-1] if self.losses else None,
                     "training_seconds": sum(self.epoch_seconds)}
        if self.validation:
            described["validation"] = {"curve": self.validation, "chosen_epoch": self.chosen_epoch}
        return described


def input_blocks(split: Split, config: AcpConfig) -> tuple[str, ...]:
    """C3, C4 and C5 when fusion is on and the split has them, else C5 alone."""
    if config.fusion and all(name in split.blocks for name in FUSED_BLOCKS):
        return (*FUSED_BLOCKS, "features")
    return ("features",)


def model_inputs(splits: list[Split], blocks: tuple[str, ...]) -> np.ndarray:
    """The rows of `splits`, one after the other, with their `blocks` side by side (float32), each
    block's rows scaled to a largest |x| in [0.5, 1) (scale_free_rows): the model L2-normalises every
    block (eq. 2), which then neither overflows nor underflows at any scale of the features."""
    def block(split: Split, name: str) -> np.ndarray:
        if name != "features" and name not in split.blocks:
            raise ValueError(f"the model was trained on blocks {', '.join(blocks)}, but these features have no {name!r}")
        return np.asarray(split.features if name == "features" else split.blocks[name], np.float32)
    parts = [[block(split, name) for name in blocks] for split in splits]
    inputs = np.concatenate([np.concatenate(row, axis=1) for row in parts])
    start = 0
    for part in parts[0]:
        scale_free_rows(torch.from_numpy(inputs[:, start:start + part.shape[1]]))  # in place, on the new array
        start += part.shape[1]
    return inputs


def train(split: Split, config: AcpConfig, settings: TrainingSettings, folder: str | Path | None, seed: int = 0,
          device: str = "cpu", show_progress: bool = False, log: Callable[[str], None] = lambda line: None) -> TrainedAcp:
    """Train (or resume training) ACP on `split`; checkpoints in `folder` (None: none are kept).
    A process asking for a model another one is training waits for it, then resumes from its checkpoint."""
    with nullcontext() if folder is None else folder_lock(folder):
        return _train(split, config, settings, folder, seed, device, show_progress, log)


def _train(split: Split, config: AcpConfig, settings: TrainingSettings, folder: str | Path | None, seed: int,
           device: str, show_progress: bool, log: Callable[[str], None]) -> TrainedAcp:
    blocks = input_blocks(split, config)
    inputs = torch.as_tensor(model_inputs([split], blocks), device=device)
    held_out = held_out_identities(split.ids, settings.validation, seed) if settings.validation else None
    training = split if held_out is None else split.take(np.flatnonzero(~held_out))
    features = inputs if held_out is None else inputs[torch.as_tensor(np.flatnonzero(~held_out), device=device)]
    block_dims = tuple(split.features.shape[1] if b == "features" else split.blocks[b].shape[1] for b in blocks)
    torch.manual_seed(seed)
    model = AcpModel(config, block_dims).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    trained = TrainedAcp(model, blocks)
    identity = {"config": config.recipe(), "block_dims": block_dims, "seed": seed, "images": len(split),
                "settings": settings.recipe()}
    first_epoch = 0 if folder is None else _resume(Path(folder), identity, trained, optimiser, log)
    if first_epoch > settings.epochs:
        raise ValueError(f"{folder} holds a model trained for {first_epoch} epochs, more than the {settings.epochs} "
                         "asked for: ask for that many, or delete it to train afresh")
    if first_epoch == settings.epochs:
        return _chosen(trained)
    pool = SequencePool.from_split(training, settings.neighbours, show_progress,
                                   epoch_probes(len(training), settings, seed, range(first_epoch, settings.epochs)))
    checks = None if held_out is None else ValidationSequences.draw(split, held_out, settings.validation_length,
                                                                     settings.validation_probes, seed)
    for epoch in range(first_epoch, settings.epochs):
        started = time.perf_counter()
        loss = _epoch(model, optimiser, pool, features, config, settings, seed, epoch, show_progress)
        trained.losses.append(loss)
        trained.epoch_seconds.append(time.perf_counter() - started)
        note = ""
        if checks is not None:
            row = {"epoch": epoch + 1, "auc": checks.model_auc(model, inputs, settings.refine_length),
                   "cosine_auc": checks.cosine_auc()}
            trained.validation.append(row)
            if trained.chosen_epoch == epoch + 1:
                trained.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            note = f", validation AUC {_shown(row['auc'])} (cosine {_shown(row['cosine_auc'])})"
        if folder is not None:
            _save(Path(folder), identity, trained, optimiser, epoch)
        log(f"epoch {epoch + 1}/{settings.epochs}: loss {loss:.4f}, lr {settings.lr_at(epoch):.2e}, "
            f"{trained.epoch_seconds[-1]:.1f} s{note}")
    return _chosen(trained)


def _shown(auc: float | None) -> str:
    return "- (no false or no true match)" if auc is None else f"{auc:.4f}"


def _chosen(trained: TrainedAcp) -> TrainedAcp:
    """With validation, the model at its chosen epoch (the optimiser's state stays the last epoch's)."""
    if trained.best_state is not None:
        trained.model.load_state_dict(trained.best_state)
    return trained


def _epoch(model: AcpModel, optimiser: torch.optim.Optimizer, pool: SequencePool, features: torch.Tensor,
           config: AcpConfig, settings: TrainingSettings, seed: int, epoch: int, show_progress: bool) -> float:
    """One pass over the images as probes, in full batches (the few left over by a shuffle wait
    for the next epoch's: BatchNorm needs more than one sequence); the mean batch loss."""
    rng = np.random.default_rng([seed, epoch])
    torch.manual_seed(seed * 1_000_003 + epoch)  # dropout
    for group in optimiser.param_groups:
        group["lr"] = settings.lr_at(epoch)
    model.train()
    probes = _draw_probes(rng, len(features), settings)
    batches = [probes[i:i + settings.batch_size] for i in range(0, len(probes) - settings.batch_size + 1, settings.batch_size)]
    if not batches:
        raise ValueError(f"the train split has {len(probes)} images, fewer than one batch of {settings.batch_size}")
    total = 0.0
    for number, batch in enumerate(progress(batches, f"ACP epoch {epoch + 1}", show_progress)):
        if settings.sequences == "knn" or (settings.sequences == "mixed" and number % 2):
            rows, labels = pool.nearest(batch, settings.sequence_length)
        else:
            rows, labels = pool.draw(batch, settings.sequence_length, settings.false_matches, rng)
        rows = torch.as_tensor(rows, device=features.device)
        logits = model(features[rows], settings.refine_length)
        labels = torch.as_tensor(labels, device=features.device)
        loss = focal_loss(logits, labels, config.gamma)
        if settings.ranking:
            loss = loss + settings.ranking * ranking_loss(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item()
    return total / len(batches)


def _draw_probes(rng: np.random.Generator, count: int, settings: TrainingSettings) -> np.ndarray:
    """An epoch's probes: the first draw of its generator, a permutation of the rows cut to epoch_size."""
    return rng.permutation(count)[:settings.epoch_size]


def epoch_probes(count: int, settings: TrainingSettings, seed: int, epochs: range) -> np.ndarray:
    """Every row that `epochs` will take as a probe (each epoch's generator is seeded by (seed, epoch))."""
    drawn = [_draw_probes(np.random.default_rng([seed, epoch]), count, settings) for epoch in epochs]
    return np.unique(np.concatenate(drawn)) if drawn else np.empty(0, np.int64)


def _save(folder: Path, identity: dict, trained: TrainedAcp, optimiser: torch.optim.Optimizer, epoch: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    state = {**identity, "epoch": epoch + 1, "blocks": trained.blocks, "losses": trained.losses,
             "epoch_seconds": trained.epoch_seconds, "model": trained.model.state_dict(),
             "optimiser": optimiser.state_dict(), "validation": trained.validation, "best_state": trained.best_state}
    path = write_atomic(folder / f"epoch-{epoch + 1:04d}.pt", lambda tmp: torch.save(state, tmp))
    trained.checkpoint = path
    for older in folder.glob("epoch-*.pt"):
        if older != path:
            older.unlink()


def model_name(family: str, split: Split, config: AcpConfig, settings: TrainingSettings, seed: int) -> str:
    """<family>-<train split's fingerprint>-<digest of the config and settings>-seed<seed>: one name
    per model, so that a sweep over architectures or budgets never mixes checkpoints (the epoch
    count is left out: asking for more epochs resumes)."""
    recipe = {"config": config.recipe(), "settings": settings.recipe()}
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    return f"{family}-{split.fingerprint[:10]}-{digest}-seed{seed}"


def checkpoint_folder(cache_dir: str | Path, family: str, split: Split, config: AcpConfig,
                      settings: TrainingSettings, seed: int) -> Path:
    """<cache>/acp/<model_name>."""
    return Path(cache_dir) / "acp" / model_name(family, split, config, settings, seed)


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = sorted(Path(folder).glob("epoch-*.pt"))
    return found[-1] if found else None


def _resume(folder: Path, identity: dict, trained: TrainedAcp, optimiser: torch.optim.Optimizer,
            log: Callable[[str], None]) -> int:
    """Load the latest checkpoint in `folder` into the model and optimiser; the number of finished epochs."""
    path = latest_checkpoint(folder)
    if path is None:
        return 0
    try:
        state = torch.load(path, map_location=next(trained.model.parameters()).device, weights_only=False)
        missing = [key for key in (*identity, "epoch", "losses", "model", "optimiser") if key not in state]
        if missing:
            raise DamagedFile(f"{path}: no {', '.join(missing)} in it")
    except DamagedFile as error:
        discard(path, error, "training afresh")
        return 0
    except Exception as error:  # torch raises many kinds for a file that is not a whole checkpoint
        discard(path, f"unreadable checkpoint ({str(error).splitlines()[0] if str(error) else type(error).__name__})",
                "training afresh")
        return 0
    differing = [key for key, value in identity.items() if state[key] != value]
    if differing:
        raise ValueError(f"{path} was trained with other {', '.join(differing)}: "
                         "delete it or train into another results folder")
    trained.model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    trained.losses[:] = state["losses"]
    trained.epoch_seconds[:] = state.get("epoch_seconds", [])
    trained.validation[:] = state.get("validation") or []
    trained.best_state = state.get("best_state")
    trained.checkpoint = path
    log(f"resuming after epoch {state['epoch']} from {path}")
    return state["epoch"]
