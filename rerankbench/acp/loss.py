"""Binary focal loss (paper eq. 12-13; Lin et al., ICCV 2017).

p_i = s_i if y_i = 1 else 1 - s_i, FL = sum_i -(1 - p_i)^gamma log p_i over the k1 positions of a
sequence, averaged over the sequences of a batch. Computed from the logits (log p_i =
logsigmoid(+-logit_i)), so that it stays finite for confident predictions.
"""
from __future__ import annotations

import torch
from torch.nn.functional import logsigmoid


def focal_loss(logits: torch.Tensor, labels: torch.Tensor, gamma: float) -> torch.Tensor:
    """logits, labels (B, L) -> the batch's mean over sequences of the summed focal loss."""
    signed = torch.where(labels.bool(), logits, -logits)
    log_p = logsigmoid(signed)
    return (-(1 - log_p.exp()) ** gamma * log_p).sum(dim=-1).mean()
