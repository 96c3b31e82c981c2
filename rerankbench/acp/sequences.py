"""ACP's training sequences from a train split's kNN graph (paper Sec. IV-B2).

Each training image is a probe with its K nearest neighbours (K = 1000, itself first, by
Euclidean distance of the L2-normalised C5 features). Say m of them share its identity. A
sequence is the probe followed by l1 - 1 images drawn at random, without replacement, from the
m correct matches and the first F false ones, kept in rank order so that the first l2 form the
refinement sequence. Labels: 1 where an image has the probe's identity (the probe's own is 1).
The paper leaves l1, l2 and F open: we take l1 = 25 (Table VII's k1), F = l1 - 1 and
l2 = 6 (the test k2); see TrainingSettings.

Not in the paper (issue 16): `nearest` gives the sequence a probe has at test time, its first
l1 neighbours in rank order (kNN(k1) with k1 = l1), so that training can see test-like
sequences (TrainingSettings.sequences), whose share of true matches is the data's, not the draw's.

A pool may hold the lists of some probes alone (`probes`, the rows a training run will draw as
probes): they are the whole graph's rows (engine/row_shards.rows_knn), at |P| x T products
against the whole graph's T^2 / 2, so 20 epochs of 1,000 probes (ACP-XL's twin budget) on the
full VehicleID train split (T = 113,346) compute about 18,400 lists, and 20 of 3,000 on the full
VERI-Wild split (T = 277,797) about 54,000, rather than all of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine.neighbours import build_knn_graph
from ..engine.row_shards import rows_knn
from ..features.featureset import Split, unit_rows


@dataclass(frozen=True)
class SequencePool:
    """neighbours (n, K): kNN indices, self first; matches (n, K): same identity as the probe;
    position (T,): each row of the split's place in them, -1 where the pool has no list for it
    (None: the pool holds every row's, in row order)."""

    neighbours: np.ndarray
    matches: np.ndarray
    position: np.ndarray | None = None

    @classmethod
    def from_split(cls, split: Split, k: int, show_progress: bool = False,
                   probes: np.ndarray | None = None) -> "SequencePool":
        """Every row's list, or those of `probes` alone (the whole graph's, where they are under half the rows)."""
        # torch.tensor copies: the split may be a read-only memory map
        features = unit_rows(torch.tensor(np.asarray(split.features, np.float32)))
        if probes is None or 2 * len(np.unique(probes)) >= len(split):
            neighbours = build_knn_graph(features, k, show_progress).indices.astype(np.int32)
            return cls(neighbours, split.ids[neighbours] == split.ids[:, None])
        probes = np.unique(probes)
        neighbours = rows_knn(features, probes, k)[0].astype(np.int32)
        position = np.full(len(split), -1, dtype=np.int64)
        position[probes] = np.arange(len(probes))
        return cls(neighbours, split.ids[neighbours] == split.ids[probes, None], position)

    def lists(self, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(neighbours, matches) of the given rows of the split."""
        if self.position is None:
            return self.neighbours[probes], self.matches[probes]
        at = self.position[probes]
        if (at < 0).any():
            raise ValueError(f"the sequence pool holds no list for row {int(np.asarray(probes)[at < 0][0])}")
        return self.neighbours[at], self.matches[at]

    def draw(self, probes: np.ndarray, length: int, false_matches: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(rows (B, length) into the split, labels (B, length)) for the given probes."""
        if length > self.neighbours.shape[1]:
            raise ValueError(f"sequences of {length} images need K >= {length}, the pool holds {self.neighbours.shape[1]}")
        neighbours, matches = self.lists(probes)
        first_false = np.cumsum(~matches, axis=1) <= false_matches
        candidates = matches | first_false
        candidates[:, 0] = False  # the probe leads every sequence
        if (candidates.sum(axis=1) < length - 1).any():
            raise ValueError(f"some probes have fewer than {length - 1} candidates: raise K or the number of false matches")
        keys = np.where(candidates, rng.random(candidates.shape), np.inf)
        drawn = np.sort(np.argpartition(keys, length - 2, axis=1)[:, :length - 1], axis=1)
        ranks = np.concatenate([np.zeros((len(probes), 1), np.int64), drawn], axis=1)
        return np.take_along_axis(neighbours, ranks, axis=1), np.take_along_axis(matches, ranks, axis=1)

    def nearest(self, probes: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows (B, length), labels (B, length)): each probe and its first length - 1 neighbours."""
        if length > self.neighbours.shape[1]:
            raise ValueError(f"sequences of {length} images need K >= {length}, the pool holds {self.neighbours.shape[1]}")
        neighbours, matches = self.lists(probes)
        return neighbours[:, :length], matches[:, :length]
