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
from ..runtime.progress import progress
from .cache import read_split, write_split, write_split_streaming
from .distractors import distractor_blocks
from .fitted import adopted_model, train_fit_name
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
    extra_distractors: int = 0  # distractors added to `twin_of`'s gallery (scaled), as Market-1501's 500k
    twin_of: "TwinDataset | None" = None  # the test set whose twin this one extends
    in_all: bool = True  # named by "all" (--datasets all); a large-gallery set is named explicitly

    def load(self, scale: float = 1.0, seed: int = 0, dim: int = 2048, with_train: bool = False,
             cache_dir: str | Path | None = None, show_progress: bool = False, distractors: int = 0,
             model: TwinModel | None = None) -> FeatureSet:
        """The twin at `scale` (a fraction of the full Table I counts), from cache when there, with
        `distractors` more distractor images in its gallery (twins/distractors.py); `model` replaces
        the twin's own (`model_at(scale)`), as a fit tries candidates."""
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale}")
        extra = round(self.extra_distractors * scale) + distractors
        if extra or self.twin_of is not None:
            base = self.twin_of or dataclasses.replace(self, extra_distractors=0)
            model = model or base.model_at(scale)
            return self._with_distractors(base.load(scale, seed, dim, with_train, cache_dir, show_progress, model=model),
                                          extra, model, seed, cache_dir, show_progress)
        model = model or self.model_at(scale)
        source = {"kind": "synthetic", "twin_of": self.title, "scale": scale, "seed": seed,
                  "generator": GENERATOR_VERSION, "model": dataclasses.asdict(model)}
        names = ("query", "gallery", "train") if with_train else ("query", "gallery")
        train_fit = adopted_model(train_fit_name(self.family), scale)
        if train_fit is not None:  # names the train split in a learned method's cells (harness/cell.py)
            source["train_fit"] = _key(dataclasses.asdict(train_fit))
        inputs = dataclasses.asdict(dataclasses.replace(self, released=None, model=model,
                                                        train_model=train_fit or self.train_model))
        train_model = train_fit or self.train_model or model.for_train()  # the one the cache key names
        for name in ("released", "extra_distractors", "twin_of", "in_all"):
            del inputs[name]  # not inputs of this twin (its distractors are added above), so its cache keys stay
        key = _key({**inputs, "scale": scale, "seed": seed, "dim": dim, "generator": GENERATOR_VERSION})
        if cache_dir is None:
            splits = self._generate(model, train_model, scale, seed, dim, names, show_progress)
        else:
            folder = Path(cache_dir) / "twins" / f"{self.name}-{key}"
            with folder_lock(folder):  # one process generates, the others wait and read it
                splits = {name: read_split(folder, name) for name in names}
                missing = [name for name, split in splits.items() if split is None]
                for name, split in self._generate(model, train_model, scale, seed, dim, missing, show_progress).items():
                    write_split(folder, name, split)
                    splits[name] = split
        return FeatureSet(self.name, splits["query"], splits["gallery"], self.protocol, source,
                          splits.get("train"), self.k_override)

    @property
    def default_k(self) -> int:
        """k1 = N/C of the full-size twin (scaling keeps images per identity, up to rounding at
        small scales), or the test set's own value where the paper runs it at another (VehicleID's
        4, VERI-Wild's 25)."""
        return self.k_override or round(self.gallery.images / self.gallery.ids)

    def model_at(self, scale: float) -> TwinModel:
        """The generative model of the twin at `scale`: from its adopted fits where it has any
        (twins/fitted.py), else the registered one."""
        return adopted_model(self.name, scale) or self.model

    def train_model_at(self, scale: float, model: TwinModel | None = None) -> TwinModel:
        """The model of the family's train split at `scale`: its adopted train fits (Table VI) where
        it has any, else the registered train model, else the test model `model` made easier
        (`TwinModel.for_train`)."""
        return (adopted_model(train_fit_name(self.family), scale) or self.train_model
                or (model or self.model_at(scale)).for_train())

    @property
    def family(self) -> str:
        """The dataset a test set belongs to ("veriwild" for veriwild_small): they share its train split."""
        return self.name.partition("_")[0]

    def test_layout(self, scale: float, seed: int,
                    model: TwinModel | None = None) -> tuple[Layout, np.ndarray, np.ndarray]:
        """The test split's layout under `model` (default: the model at `scale`) and which of its
        rows are queries and which gallery."""
        query, gallery = self.query.scaled(scale), self.gallery.scaled(scale)
        model = model or self.model_at(scale)
        if self.protocol == "vehicleid":
            pool = split_layout(SplitCounts(gallery.ids, query.images + gallery.ids), seed, f"{self.name}/test",
                                count_spread=model.count_spread)
            gallery_rows = one_per_identity(pool.ids, np.random.default_rng(seed))
            return pool, np.setdiff1d(np.arange(len(pool.ids)), gallery_rows), gallery_rows
        distractors = round(self.distractors * scale)
        test = split_layout(SplitCounts(gallery.ids, query.images + gallery.images - distractors,
                                        max(query.cameras, gallery.cameras)),
                            seed, f"{self.name}/test", distractors, model.cameras_per_identity, model.count_spread)
        query_rows = _pick_queries(test.ids, query, np.random.default_rng(seed))
        return test, query_rows, np.setdiff1d(np.arange(len(test.ids)), query_rows)

    def _with_distractors(self, base: FeatureSet, extra: int, model: TwinModel, seed: int, cache_dir,
                          show_progress: bool) -> FeatureSet:
        """`base` with `extra` distractors (identity 0) after its gallery, generated block by block into
        the cache (`<cache>/twins/<name>-<key>/gallery.*`); k1 = N/C stays the base's."""
        gallery, dim = base.gallery, base.dim
        cameras = 0 if gallery.cams is None else int(gallery.cams.max()) + 1
        tag = f"{(self.twin_of or self).name}/extra-distractors"
        rows = len(gallery) + extra
        ids = np.concatenate([gallery.ids, np.zeros(extra, np.int64)])
        cams = None
        if gallery.cams is not None:
            cams = np.concatenate([gallery.cams, np.empty(extra, np.int64)])

        def fill(out: np.ndarray) -> None:
            out[:len(gallery)] = gallery.features
            for lo, hi, features, camera in progress(distractor_blocks(model, seed, tag, extra, dim, cameras),
                                                       "distractors", show_progress):
                out[len(gallery) + lo:len(gallery) + hi] = features
                if cams is not None:
                    cams[len(gallery) + lo:len(gallery) + hi] = camera
        if cache_dir is None:
            features = np.empty((rows, dim), dtype=np.float32)
            fill(features)
            split = Split(features, ids, cams)
        else:
            key = _key({"base": base.fingerprint, "extra": extra, "seed": seed, "tag": tag, "generator": GENERATOR_VERSION,
                        "model": dataclasses.asdict(model)})
            folder = Path(cache_dir) / "twins" / f"{self.name}-{key}"
            with folder_lock(folder):
                split = read_split(folder, "gallery")
                if split is None:
                    write_split_streaming(folder, "gallery", rows, dim, fill, ids, cams)
                    split = read_split(folder, "gallery")
        source = {**base.source, "twin_of": self.title, "distractors_added": extra}
        return FeatureSet(self.name, base.query, split, base.protocol, source, base.train, base.default_k)

    def _generate(self, model: TwinModel, train_model: TwinModel, scale: float, seed: int, dim: int, splits: list[str],
                  show_progress: bool) -> dict[str, Split]:
        """The named splits ("query", "gallery", "train"), freshly generated."""
        made = {}
        if "query" in splits or "gallery" in splits:
            test, query_rows, gallery_rows = self.test_layout(scale, seed, model)
            features = test.features(model, seed, dim, show_progress)
            for split, rows in (("query", query_rows), ("gallery", gallery_rows)):
                made[split] = Split(features[rows], test.ids[rows], None if test.cams[0] < 0 else test.cams[rows])
        if "train" in splits:
            made["train"] = self.train_split(scale, seed, dim, train_model, show_progress)
        return made

    def train_split(self, scale: float, seed: int, dim: int, model: TwinModel, show_progress: bool = False) -> Split:
        """The family's train split at `scale`, generated afresh from `model` (uncached)."""
        train = split_layout(self.train.scaled(scale), seed, f"{self.family}/train",
                             cameras_per_identity=model.cameras_per_identity, count_spread=model.count_spread)
        return Split(train.features(model, seed, dim, show_progress), train.ids,
                     None if train.cams[0] < 0 else train.cams)


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
