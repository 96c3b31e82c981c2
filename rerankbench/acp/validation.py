"""Validation of ACP on training identities kept out of training (issue 16; the paper has none).

A seeded share of the train split's identities is held out, whole: their images never appear in
a training sequence. After every epoch the model scores sequences drawn as at test time: each
held-out probe (up to `probes` of them, seeded) with its k1 - 1 nearest other held-out images
(cosine of the L2-normalised C5 features, the probe first), refinement over the first k2. Over
every (probe, neighbour) pair of those sequences, probe excluded:

    AUC(s)      = P(s of a true match > s of a false match), ties counting 1/2   (Mann-Whitney U / n1 n0)
    AUC(cosine) = the same for the neighbour's cosine to the probe

AUC(cosine) is the bar a learnt s has to clear: the baseline ranking already orders neighbours
by it. The training keeps the epoch whose AUC(s) is highest (training.py). Where the sequences
hold no false match (or no true one) the AUC means nothing and is None: an easy train split, as
the person twins' are, can do that at small k1, and then no epoch is chosen (the last one stays).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit
from scipy.stats import rankdata

from ..engine.neighbours import build_knn_graph
from ..features.featureset import Split, unit_rows


def held_out_identities(ids: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Boolean mask of the images whose identity is among round(share x identities) drawn with `seed`
    (at least one, and at least one identity left to train on)."""
    identities = np.unique(ids)
    count = min(max(1, round(share * len(identities))), len(identities) - 1)
    if count < 1:
        raise ValueError(f"validation needs at least two identities in the train split, it has {len(identities)}")
    chosen = np.random.default_rng([seed, 1_000_003]).choice(identities, count, replace=False)
    return np.isin(ids, chosen)


def pair_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """AUC = (sum of the true pairs' ranks - n1 (n1 + 1) / 2) / (n1 n0), average ranks for ties;
    None without both true and false pairs."""
    scores, labels = np.ravel(scores), np.ravel(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


@dataclass(frozen=True)
class ValidationSequences:
    """rows (P, k1) into the model's inputs, probe first; labels (P, k1); cosines (P, k1) to the
    probe. `draw` makes them from held-out training identities; the acp method makes the test
    split's (methods/acp.py, separation)."""

    rows: np.ndarray
    labels: np.ndarray
    cosines: np.ndarray

    @classmethod
    def draw(cls, split: Split, held_out: np.ndarray, length: int, probes: int, seed: int) -> "ValidationSequences":
        members = np.flatnonzero(held_out)
        if len(members) < length:
            raise ValueError(f"the held-out identities have {len(members)} images, fewer than a sequence of {length}: "
                             "hold out a larger share")
        features = unit_rows(torch.tensor(np.asarray(split.features[members], np.float32)))
        knn = build_knn_graph(features, length)
        chosen = np.sort(np.random.default_rng([seed, 2_000_003]).permutation(len(members))[:probes])
        local = knn.indices[chosen].astype(np.int64)
        rows = members[local]
        cosines = torch.einsum("pd,pld->pl", features[chosen], features[local]).numpy()
        return cls(rows, split.ids[rows] == split.ids[rows[:, :1]], cosines)

    def cosine_auc(self) -> float | None:
        return pair_auc(self.cosines[:, 1:], self.labels[:, 1:])

    def model_auc(self, model, inputs: torch.Tensor, refine_length: int) -> float | None:
        """AUC of the model's s (its logits order the pairs alike)."""
        return pair_auc(self._logits(model, inputs, refine_length)[:, 1:], self.labels[:, 1:])

    def separation(self, model, inputs: torch.Tensor, refine_length: int) -> dict:
        """AUC of s and of the cosine, and the mean s of the true and of the false neighbours
        (probe excluded): how far apart eq. 1's weights are, not only how they are ordered."""
        s = expit(self._logits(model, inputs, refine_length)[:, 1:].astype(np.float64))
        labels = self.labels[:, 1:]
        return {"auc": pair_auc(s, labels), "cosine_auc": self.cosine_auc(), "sequences": len(self.rows),
                "s_true": float(s[labels].mean()) if labels.any() else None,
                "s_false": float(s[~labels].mean()) if (~labels).any() else None}

    def _logits(self, model, inputs: torch.Tensor, refine_length: int, batch: int = 256) -> np.ndarray:
        """The model's logits of every sequence, in eval mode (the mode is restored)."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            rows = torch.as_tensor(self.rows, device=inputs.device)
            logits = torch.cat([model(inputs[part], min(refine_length, self.rows.shape[1]))
                                for part in rows.split(batch)]).cpu().numpy()
        model.train(was_training)
        return logits
