"""Multi-head attention and the post-LN Transformer layer (paper Sec. III-B2, eqs. 4-7), in plain torch.

Written out (rather than nn.MultiheadAttention) so that the attention weights are returned for
inspection and every product is an ordinary matmul that torch's FLOP counter sees.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    """MHA(Q, K, V) = [softmax(Q_h K_h^T / sqrt(d_s)) V_h]_h W_O (eq. 4), d_s = d / h.

    forward(queries (B, Lq, d), context (B, Lk, d)) -> (output (B, Lq, d), weights (B, h, Lq, Lk));
    the softmax normalises over the context axis (the last one).
    """

    def __init__(self, d: int, heads: int):
        super().__init__()
        if d % heads:
            raise ValueError(f"d = {d} is not divisible by {heads} heads")
        self.heads = heads
        self.query, self.key, self.value, self.output = (nn.Linear(d, d) for _ in range(4))

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = (self._split(project(x)) for project, x in
                   ((self.query, queries), (self.key, context), (self.value, context)))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        out = (weights @ v).transpose(1, 2).flatten(2)
        return self.output(out), weights

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d) -> (B, h, L, d / h)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)


class TransformerLayer(nn.Module):
    """Y = LN(X + MHA(X, C, C)) (eq. 5), Z = LN(Y + FFN(Y)) (eq. 7), FFN(Y) = ReLU(Y W1 + b1) W2 + b2 (eq. 6).

    C = X gives the BaseEncoder's layer; C = the refinement sequence gives memory refinement.
    """

    def __init__(self, d: int, heads: int, ffn_width: int):
        super().__init__()
        self.attention = MultiHeadAttention(d, heads)
        self.ffn = nn.Sequential(nn.Linear(d, ffn_width), nn.ReLU(), nn.Linear(ffn_width, d))
        self.norm_attention, self.norm_ffn = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm_attention(x + self.attention(x, x if context is None else context)[0])
        return self.norm_ffn(y + self.ffn(y))
