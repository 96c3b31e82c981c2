"""The feature-set record every method and protocol works on.

A FeatureSet holds the query and gallery splits of one test set (and optionally the train
split), the evaluation protocol that applies to it and where it came from. Features are
stored as given; methods L2-normalise them (spec/methods.md: "features are L2-normalised
before anything else").
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np


class FeatureError(ValueError):
    """Bad input features: the message names the source and the problem."""


@dataclass(frozen=True, eq=False)
class Split:
    """Rows of one split: features (n x D), identities, cameras (None: no camera ids).

    `blocks` holds optional extra feature blocks of the same rows (e.g. pooled C3 and C4,
    which ACP's multi-block fusion uses), each (n x D_block).
    """

    features: np.ndarray
    ids: np.ndarray
    cams: np.ndarray | None = None
    blocks: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def hash_into(self, digest, with_blocks: bool = False) -> None:
        """Feed the arrays (shape and bytes of features, ids, cameras; optionally the blocks) to `digest`."""
        blocks = [self.blocks[name] for name in sorted(self.blocks)] if with_blocks else []
        for array in (self.features, self.ids, self.cams, *blocks):
            if array is not None:
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).view(np.uint8).data)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-1 of every array of the split, blocks included (names a train split in ACP's checkpoints)."""
        digest = hashlib.sha1()
        self.hash_into(digest, with_blocks=True)
        return digest.hexdigest()[:16]

    def validate(self, where: str) -> None:
        f = self.features
        if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
            raise FeatureError(f"{where}: features must be a non-empty 2-D array (n x D), got shape {f.shape}")
        if not np.issubdtype(f.dtype, np.floating):
            raise FeatureError(f"{where}: features must be floating point, got {f.dtype}")
        if self.ids.shape != (f.shape[0],):
            raise FeatureError(f"{where}: {f.shape[0]} feature rows but ids of shape {self.ids.shape}")
        if self.cams is not None and self.cams.shape != (f.shape[0],):
            raise FeatureError(f"{where}: {f.shape[0]} feature rows but cameras of shape {self.cams.shape}")
        for name, block in self.blocks.items():
            if block.ndim != 2 or block.shape[0] != f.shape[0]:
                raise FeatureError(f"{where}: block {name!r} has shape {block.shape}, expected ({f.shape[0]}, D)")
        for name, array in {"features": f, **self.blocks}.items():
            bad = ~np.isfinite(array)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise FeatureError(f"{where}: {name} hold {int(bad.sum())} NaN/inf values (first in row {row})")
        norms = np.linalg.norm(f, axis=1)
        if (norms == 0).any():
            raise FeatureError(f"{where}: {int((norms == 0).sum())} feature rows are all zero")


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """One test set: query and gallery splits, optional train split, protocol and origin.

    protocol: "market" (canonical fast-reid/torchreid protocol), "market-official" (the
    Market-1501 MATLAB code) or "vehicleid" (10 seeded gallery draws); see trials.py and evaluation/protocols.py.
    source: where it came from, e.g. {"kind": "synthetic", "scale": 0.1, "seed": 0} or
    {"kind": "file", "path": "feats.npz"}; stored in every result record.
    default_k: the paper's k1 = round(N/C) unless the dataset overrides it (Table IV).
    """

    name: str
    query: Split
    gallery: Split
    protocol: str = "market"
    source: Mapping[str, object] = field(default_factory=dict)
    train: Split | None = None
    k_override: int | None = None

    def __post_init__(self) -> None:
        where = f"feature set {self.name!r}"
        self.query.validate(f"{where}, query")
        self.gallery.validate(f"{where}, gallery")
        if self.train is not None:
            self.train.validate(f"{where}, train")
        if self.query.features.shape[1] != self.gallery.features.shape[1]:
            raise FeatureError(
                f"{where}: query features are {self.query.features.shape[1]}-d but gallery features "
                f"are {self.gallery.features.shape[1]}-d")
        if (self.query.cams is None) != (self.gallery.cams is None):
            raise FeatureError(f"{where}: cameras given for only one of query and gallery")

    @property
    def num_query(self) -> int:
        return len(self.query)

    @property
    def num_gallery(self) -> int:
        return len(self.gallery)

    @property
    def dim(self) -> int:
        return self.query.features.shape[1]

    @property
    def synthetic(self) -> bool:
        return self.source.get("kind") == "synthetic"

    @property
    def default_k(self) -> int:
        """k1 = round(N / C): gallery images per gallery identity (paper, Table IV)."""
        if self.k_override is not None:
            return self.k_override
        identities = len(np.unique(self.gallery.ids[self.gallery.ids >= 0]))
        return max(1, int(round(self.num_gallery / max(identities, 1))))

    def stacked(self) -> np.ndarray:
        """X = [Q; G] as one float32 array (T x D)."""
        return np.concatenate([self.query.features, self.gallery.features]).astype(np.float32, copy=False)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-1 of the query/gallery arrays: the dataset identity stored in records and cache keys."""
        digest = hashlib.sha1()
        for split in (self.query, self.gallery):
            split.hash_into(digest)
        digest.update(self.protocol.encode())
        return digest.hexdigest()[:16]

    def with_protocol(self, protocol: str) -> "FeatureSet":
        return dataclasses.replace(self, protocol=protocol)

    def summary(self) -> str:
        """One line: sizes and feature blocks, e.g. "market1501: 3368 query, 15913 gallery, 12936 train
        images; c5 2048-d, c3 512-d, c4 1024-d"."""
        train = f", {len(self.train)} train" if self.train is not None else ""
        blocks = "".join(f", {block} {array.shape[1]}-d" for block, array in self.query.blocks.items())
        return f"{self.name}: {self.num_query} query, {self.num_gallery} gallery{train} images; c5 {self.dim}-d{blocks}"

    def describe(self) -> dict:
        """The dataset identity stored in result records."""
        return {"name": self.name, "fingerprint": self.fingerprint, "protocol": self.protocol,
                "num_query": self.num_query, "num_gallery": self.num_gallery, "dim": self.dim,
                "synthetic": self.synthetic, **{f"source_{k}": v for k, v in self.source.items()}}
