"""A dataset's synthetic twin: Table I counts, a calibrated TwinModel, generated once and cached.

Scaling keeps images per identity (so k1 = N/C is unchanged) and shrinks identity counts.
The cache key holds every generator input, so a recalibrated model never reuses old files.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..features.featureset import FeatureSet, Split
from ..features.released import ReleasedLayout
from ..features.trials import one_per_identity
from ..runtime.files import folder_lock
from .cache import read_split, write_split
from .synthetic import Layout, SplitCounts, TwinModel, split_layout

GENERATOR_VERSION = 1


@dataclass(frozen=True)
class TwinDataset:
    """A registered test set, how to make its twin and how to read its released folder.

    protocol "vehicleid": query and gallery come from one pool of `query.images +
    gallery.images` images; the gallery is one seeded random image per identity (the
    protocol then makes its own 10 draws over the pool).
    """

    name: str
    title: str
    reference: str
    train: SplitCounts
    query: SplitCounts
    gallery: SplitCounts
    model: TwinModel
    protocol: str = "market"
    distractors: int = 0
    k_override: int | None = None
    train_model: TwinModel | None = None  # default: model.for_train(); one per family where test sets share a train split
    released: ReleasedLayout | None = None  # reading the real dataset (features/released.py); not an input of the twin

    def load(self, scale: float = 1.0, seed: int = 0, dim: int = 2048, with_train: bool = False,
             cache_dir: str | Path | None = None, show_progress: bool = False) -> FeatureSet:
        """The twin at `scale` (a fraction of the full Table I counts), from cache when there."""
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        source = {"kind": "synthetic", "twin_of": self.title, "scale": scale, "seed": seed,
                  "generator": GENERATOR_VERSION, "model": dataclasses.asdict(self.model)}
        names = ("query", "gallery", "train") if with_train else ("query", "gallery")
        inputs = dataclasses.asdict(dataclasses.replace(self, released=None))
        del inputs["released"]  # not an input of the twin, so its cache keys stay as they were
        key = _key({**inputs, "scale": scale, "seed": seed, "dim": dim, "generator": GENERATOR_VERSION})
        if cache_dir is None:
            splits = self._generate(scale, seed, dim, names, show_progress)
        else:
            folder = Path(cache_dir) / "twins" / f"{self.name}-{key}"
            with folder_lock(folder):  # one process generates, the others wait and read it
                splits = {name: read_split(folder, name) for name in names}
                missing = [name for name, split in splits.items() if split is None]
                for name, split in self._generate(scale, seed, dim, missing, show_progress).items():
                    write_split(folder, name, split)
                    splits[name] = split
        return FeatureSet(self.name, splits["query"], splits["gallery"], self.protocol, source,
                          splits.get("train"), self.k_override)

    @property
    def family(self) -> str:
        """The dataset a test set belongs to ("veriwild" for veriwild_small): they share its train split."""
        return self.name.partition("_")[0]

    def test_layout(self, scale: float, seed: int) -> tuple[Layout, np.ndarray, np.ndarray]:
        """The test split's layout and which of its rows are queries and which gallery."""
        query, gallery = self.query.scaled(scale), self.gallery.scaled(scale)
        if self.protocol == "vehicleid":
            pool = split_layout(SplitCounts(gallery.ids, query.images + gallery.ids), seed, f"{self.name}/test")
            gallery_rows = one_per_identity(pool.ids, np.random.default_rng(seed))
            return pool, np.setdiff1d(np.arange(len(pool.ids)), gallery_rows), gallery_rows
        distractors = round(self.distractors * scale)
        test = split_layout(SplitCounts(gallery.ids, query.images + gallery.images - distractors,
                                        max(query.cameras, gallery.cameras)),
                            seed, f"{self.name}/test", distractors=distractors)
        query_rows = _pick_queries(test.ids, query, np.random.default_rng(seed))
        return test, query_rows, np.setdiff1d(np.arange(len(test.ids)), query_rows)

    def _generate(self, scale: float, seed: int, dim: int, splits: list[str], show_progress: bool) -> dict[str, Split]:
        """The named splits ("query", "gallery", "train"), freshly generated."""
        made = {}
        if "query" in splits or "gallery" in splits:
            test, query_rows, gallery_rows = self.test_layout(scale, seed)
            features = test.features(self.model, seed, dim, show_progress)
            for split, rows in (("query", query_rows), ("gallery", gallery_rows)):
                made[split] = Split(features[rows], test.ids[rows], None if test.cams[0] < 0 else test.cams[rows])
        if "train" in splits:
            train = split_layout(self.train.scaled(scale), seed, f"{self.family}/train")
            model = self.train_model or self.model.for_train()
            made["train"] = Split(train.features(model, seed, dim, show_progress),
                                  train.ids, None if train.cams[0] < 0 else train.cams)
        return made


def _pick_queries(ids: np.ndarray, query: SplitCounts, rng: np.random.Generator) -> np.ndarray:
    """Rows of `query.images` queries from identities 1..query.ids: each identity at least
    one, and each keeps at least two images for the gallery where it has them."""
    candidates = np.flatnonzero((ids >= 1) & (ids <= query.ids))
    first = candidates[one_per_identity(ids[candidates], rng)]
    counts = np.bincount(ids, minlength=query.ids + 1)
    taken = np.zeros(query.ids + 1, np.int64)
    chosen = []
    for row in rng.permutation(np.setdiff1d(candidates, first)):
        if len(chosen) + len(first) >= query.images:
            break
        if taken[ids[row]] + 3 < counts[ids[row]]:
            taken[ids[row]] += 1
            chosen.append(row)
    return np.sort(np.concatenate([first, np.asarray(chosen, np.int64)]))


def _key(inputs: dict) -> str:
    return hashlib.sha1(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
