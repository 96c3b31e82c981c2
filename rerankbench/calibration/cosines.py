"""Cosine statistics of a test set: how close an image's own identity and its nearest other
identity lie, the numbers that decide whether averaging a probe's neighbours helps it
(issue 15: in trained re-ID embeddings a probe's nearest false match comes close).

For a seeded sample of rows i of X = [Q; G] (every image a test set holds), over the other rows j:

    same identity  = mean over pairs with id_j = id_i of cos(x_i, x_j)
    nearest true   = mean over i of max_{j: id_j = id_i} cos(x_i, x_j)
    nearest false  = mean over i of max_{j: id_j != id_i} cos(x_i, x_j)
    false first    = share of the sampled rows whose nearest other row is a false match

where a pair of one identity and one camera is neither (the Market-1501 protocol's junk), a
row of identity -1 (junk) is never counted and identity 0 (distractors) is false to everyone.
"""
from __future__ import annotations

import numpy as np
import torch

from ..features.featureset import FeatureSet

BLOCK = 256


def cosine_statistics(fs: FeatureSet, sample: int = 1000, seed: int = 0) -> dict[str, float]:
    """The four statistics above over `sample` seeded rows (all rows when there are fewer)."""
    x = torch.from_numpy(fs.stacked())
    ids = np.concatenate([fs.query.ids, fs.gallery.ids])
    cams = None if fs.query.cams is None else np.concatenate([fs.query.cams, fs.gallery.cams])
    scored = np.flatnonzero(ids > 0)
    rows = np.sort(np.random.default_rng(seed).permutation(scored)[:sample])
    same_sum, same_pairs, nearest_true, nearest_false, false_first = 0.0, 0, [], [], 0
    for lo in range(0, len(rows), BLOCK):
        block = rows[lo:lo + BLOCK]
        cosine = (x[torch.as_tensor(block)] @ x.T).double().numpy()
        same = ids[block][:, None] == ids[None, :]
        junk = np.zeros_like(same) if cams is None else same & (cams[block][:, None] == cams[None, :])
        true = same & ~junk
        false = ~same & (ids[None, :] != -1)
        true[np.arange(len(block)), block] = false[np.arange(len(block)), block] = False  # never itself
        same_sum += float(cosine[true].sum())
        same_pairs += int(true.sum())
        best_true = np.where(true, cosine, -np.inf).max(1)
        best_false = np.where(false, cosine, -np.inf).max(1)
        nearest_true += list(best_true[np.isfinite(best_true)])
        nearest_false += list(best_false[np.isfinite(best_false)])
        false_first += int((best_false > best_true).sum())
    return {"same_identity": same_sum / max(same_pairs, 1), "nearest_true": float(np.mean(nearest_true)),
            "nearest_false": float(np.mean(nearest_false)), "false_first": false_first / len(rows),
            "rows": len(rows)}
