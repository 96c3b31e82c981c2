"""The feature-set record every method and protocol works on.

A FeatureSet holds the query and gallery splits of one test set (and optionally the train
split), the evaluation protocol that applies to it and where it came from. Features are
stored as given; methods L2-normalise them (spec/methods.md: "features are L2-normalised
before anything else") with `unit_rows`, which does not depend on the rows' scale: only their
directions count.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Mapping

import numpy as np

if TYPE_CHECKING:
    import torch


class FeatureError(ValueError):
    """Bad input features: the message names the source and the problem."""


def largest_magnitudes(rows: np.ndarray) -> np.ndarray:
    """max_j |x_ij| for every row i of a 2-D array (as max(max_j x_ij, -min_j x_ij): no copy of it)."""
    return np.maximum(rows.max(axis=1), -rows.min(axis=1))


def outside_float32(largest: np.ndarray) -> np.ndarray:
    """Which finite rows float32 cannot hold as they are, by their largest |x|: above float32's
    largest value (they would become inf), or above 0 but below its smallest normal one (they would
    lose digits or become 0)."""
    limits = np.finfo(np.float32)
    return ((largest > limits.max) & np.isfinite(largest)) | ((largest > 0) & (largest < limits.tiny))


def scale_free_rows(x: torch.Tensor) -> torch.Tensor:
    """x_i <- x_i * 2^-e_i in place for every row i of a float tensor, where max_j |x_ij| = m * 2^e_i
    with m in [0.5, 1) (frexp): every row's largest |x| is then in [0.5, 1), so neither its squares
    nor their sum can overflow or underflow. Only exponents change (exactly, but for entries pushed
    below the normal range): each row keeps its direction."""
    import torch
    exponent = torch.frexp(torch.maximum(x.amax(dim=1), -x.amin(dim=1))).exponent.unsqueeze(1).to(x.dtype)
    half = torch.floor(exponent / 2)  # two factors: 2^-e alone may be beyond the dtype's range (float32: e down to -148)
    return x.mul_(torch.exp2(-half)).mul_(torch.exp2(half - exponent))


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """x_i <- x_i / ||x_i||_2 in place for every row of a float tensor, at any scale: each row is
    first brought to a largest |x| in [0.5, 1) by a power of two (scale_free_rows), so that the norm
    neither overflows (|x| from ~1e19 in float32) nor underflows (|x| to ~1e-19). For rows between,
    the result is x_i / ||x_i|| bit for bit. Rows must not be all zero (FeatureSet refuses them)."""
    return scale_free_rows(x).div_(x.norm(dim=1, keepdim=True))


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

    def take(self, rows: np.ndarray) -> "Split":
        """The split of these rows (every array indexed alike)."""
        return Split(np.asarray(self.features)[rows], self.ids[rows], None if self.cams is None else self.cams[rows],
                     {name: np.asarray(block)[rows] for name, block in self.blocks.items()})

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
        largest = largest_magnitudes(f)
        if (largest == 0).any():
            raise FeatureError(f"{where}: {int((largest == 0).sum())} feature rows are all zero "
                               f"(first in row {int(np.argmax(largest == 0))})")
        outside = np.flatnonzero(outside_float32(largest)) if f.dtype.itemsize > 4 else []
        if len(outside):
            row = int(outside[0])
            raise FeatureError(f"{where}: {len(outside)} {f.dtype} feature rows are outside float32's range, in "
                               f"which features are used (first in row {row}, largest |x| {largest[row]:.3g}); divide each "
                               f"row by its largest |x| first")


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
