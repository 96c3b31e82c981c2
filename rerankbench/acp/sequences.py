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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..engine.neighbours import build_knn_graph
from ..features.featureset import Split, unit_rows


@dataclass(frozen=True)
class SequencePool:
    """neighbours (n, K): kNN indices, self first; matches (n, K): same identity as the probe."""

    neighbours: np.ndarray
    matches: np.ndarray

    @classmethod
    def from_split(cls, split: Split, k: int, show_progress: bool = False) -> "SequencePool":
        # torch.tensor copies: the split may be a read-only memory map
        features = unit_rows(torch.tensor(np.asarray(split.features, np.float32)))
        neighbours = build_knn_graph(features, k, show_progress).indices.astype(np.int32)
        return cls(neighbours, split.ids[neighbours] == split.ids[:, None])

    def draw(self, probes: np.ndarray, length: int, false_matches: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(rows (B, length) into the split, labels (B, length)) for the given probes."""
        if length > self.neighbours.shape[1]:
            raise ValueError(f"sequences of {length} images need K >= {length}, the pool holds {self.neighbours.shape[1]}")
        matches = self.matches[probes]
        first_false = np.cumsum(~matches, axis=1) <= false_matches
        candidates = matches | first_false
        candidates[:, 0] = False  # the probe leads every sequence
        if (candidates.sum(axis=1) < length - 1).any():
            raise ValueError(f"some probes have fewer than {length - 1} candidates: raise K or the number of false matches")
        keys = np.where(candidates, rng.random(candidates.shape), np.inf)
        drawn = np.sort(np.argpartition(keys, length - 2, axis=1)[:, :length - 1], axis=1)
        ranks = np.concatenate([np.zeros((len(probes), 1), np.int64), drawn], axis=1)
        return (np.take_along_axis(self.neighbours[probes], ranks, axis=1),
                np.take_along_axis(matches, ranks, axis=1))

    def nearest(self, probes: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows (B, length), labels (B, length)): each probe and its first length - 1 neighbours."""
        if length > self.neighbours.shape[1]:
            raise ValueError(f"sequences of {length} images need K >= {length}, the pool holds {self.neighbours.shape[1]}")
        return self.neighbours[probes, :length], self.matches[probes, :length]
