"""Binary focal loss (paper eq. 12-13; Lin et al., ICCV 2017), and a pairwise ranking term.

p_i = s_i if y_i = 1 else 1 - s_i, FL = sum_i -(1 - p_i)^gamma log p_i over the k1 positions of a
sequence, averaged over the sequences of a batch. Computed from the logits (log p_i =
logsigmoid(+-logit_i)), so that it stays finite for confident predictions.

Not in the paper (issue 16, off by default): the focal loss scores each position alone, so a
model that cannot tell a sequence's images apart settles every s near the share of true
matches, and eq. 1 then weighs them alike (ACP = AQE). The ranking term (RankNet; Burges et al.,
ICML 2005) compares the images of one sequence,

    R = mean over sequences with both kinds of mean over pairs (i true, j false) of log(1 + exp(z_j - z_i)),

with z the logits: the smooth surrogate of 1 - AUC within the sequence, which spreads s where
the model can order the sequence.
"""
from __future__ import annotations

import torch
from torch.nn.functional import logsigmoid, softplus


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    """logits, labels (B, L) -> the batch's mean over sequences of the summed focal loss."""
    signed = torch.where(labels.bool(), logits, -logits)
    log_p = logsigmoid(signed)
    return (-(1 - log_p.exp()) ** gamma * log_p).sum(dim=-1).mean()


def ranking_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits, labels (B, L) -> R above (0 when no sequence of the batch has both kinds)."""
    true = labels.bool()
    pairs = true[:, :, None] & ~true[:, None, :]  # (B, i, j): i a true match, j a false one
    margins = softplus(logits[:, None, :] - logits[:, :, None])  # log(1 + exp(z_j - z_i))
    counts = pairs.sum(dim=(1, 2))
    used = counts > 0
    if not used.any():
        return logits.sum() * 0.0
    per_sequence = (margins * pairs).sum(dim=(1, 2))[used] / counts[used]
    return per_sequence.mean()
