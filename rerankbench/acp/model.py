"""ACP's network (paper Sec. III-B, Figs. 4-8): the k1 neighbours of a probe in, one correlation each out.

Input: x (B, L, sum(block_dims)), a sequence of L images per row, the probe first and its
neighbours in rank order; each image's pooled blocks side by side, C5 last (ResNet-50:
C3 512, C4 1024, C5 2048). Features with C5 alone (block_dims = (2048,), e.g. the twins) go
through the same fusion as one normalised block, which is what switching fusion off does.
Output: logits (B, L); the correlations s = sigmoid(logits) (eq. 11). With `relations` on (not
in the paper; config.py), each image's cosines to the probe and to the rest of its sequence
(relations) enter through a linear map added to its fused feature, before the BaseEncoder.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .attention import MultiHeadAttention, TransformerLayer
from .config import AcpConfig


def relations(c5: torch.Tensor) -> torch.Tensor:
    """(B, L, 2) of a sequence's C5 features (B, L, D): for each image i, cos(x_i, x_1) (x_1 the
    probe, so 1 for itself) and the mean of cos(x_i, x_j) over the sequence's other images j."""
    unit = nn.functional.normalize(c5, dim=-1)
    gram = unit @ unit.transpose(1, 2)
    others = (gram.sum(-1) - gram.diagonal(dim1=1, dim2=2)) / max(gram.shape[-1] - 1, 1)
    return torch.stack([gram[..., 0], others], -1)


class MultiBlockFusion(nn.Module):
    """f^_j = gamma_j * f_j / ||f_j||_2 (eq. 2), x = BN(Dropout([f^_3, f^_4, f^_5]) W + b) (eq. 3)."""

    def __init__(self, block_dims: tuple[int, ...], d: int, dropout: float):
        super().__init__()
        self.block_dims = tuple(block_dims)
        self.scales = nn.ParameterList(nn.Parameter(torch.ones(dim)) for dim in self.block_dims)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(sum(self.block_dims), d)
        self.norm = nn.BatchNorm1d(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = x.split(self.block_dims, dim=-1)
        normalised = torch.cat([nn.functional.normalize(f, dim=-1) * gamma for f, gamma in zip(blocks, self.scales)], -1)
        fused = self.fc(self.dropout(normalised))
        return self.norm(fused.reshape(-1, fused.shape[-1])).view_as(fused)


class MemoryInitialisation(nn.Module):
    """Per slot i: q = z_1 W^q, K = Z W^k, V = Z W^v (eq. 8), M'_i = softmax(q K^T / mu) V (eq. 9),
    M_i = ReLU(BN(M'_i W_i + b_i)) (eq. 10); W^q, W^k, W^v: d -> d_m per slot, W_i: d_m -> d.

    Only the probe z_1 makes queries; the softmax normalises over the k1 neighbours.
    """

    def __init__(self, d: int, d_memory: int, slots: int):
        super().__init__()
        self.slots = slots
        self.query, self.key, self.value = (nn.Linear(d, slots * d_memory) for _ in range(3))
        self.mu = nn.Parameter(torch.tensor(math.sqrt(d_memory)))
        self.expand = nn.Parameter(torch.empty(slots, d_memory, d))
        self.expand_bias = nn.Parameter(torch.zeros(slots, d))
        nn.init.kaiming_uniform_(self.expand, a=math.sqrt(5))
        self.norm = nn.BatchNorm1d(slots * d)

    def queries(self, z: torch.Tensor) -> torch.Tensor:
        """(B, N, d_m): the probe's query of each slot."""
        return self.query(z[:, 0]).unflatten(-1, (self.slots, -1))

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, L, d) -> (memory M (B, N, d), weights (B, N, L))."""
        q = self.queries(z)
        k, v = (project(z).unflatten(-1, (self.slots, -1)) for project in (self.key, self.value))
        weights = torch.softmax(torch.einsum("bnm,blnm->bnl", q, k) / self.mu, dim=-1)
        read = torch.einsum("bnl,blnm->bnm", weights, v)
        expanded = torch.einsum("bnm,nmd->bnd", read, self.expand) + self.expand_bias
        return torch.relu(self.norm(expanded.flatten(1))).view_as(expanded), weights


class AcpModel(nn.Module):
    """Fusion -> BaseEncoder (n layers, h heads) -> memory initialisation -> refinement over the
    first k2 neighbours -> reconstruction Z_rcs = MHA(Z, M*, M*) (kept, no residual) -> s = sigmoid(Z_rcs W_c + b_c)."""

    def __init__(self, config: AcpConfig, block_dims: tuple[int, ...]):
        super().__init__()
        self.config = config
        self.block_dims = tuple(block_dims)
        d, ffn_width = config.d, config.ffn_ratio * config.d
        self.fusion = MultiBlockFusion(self.block_dims if config.fusion else self.block_dims[-1:], d, config.dropout)
        self.encoder = nn.ModuleList(TransformerLayer(d, config.heads, ffn_width)
                                     for _ in range(config.layers if config.encoder else 0))
        if config.memory:
            self.memory = MemoryInitialisation(d, config.d_memory, config.slots)
            self.refinement = TransformerLayer(d, config.heads, ffn_width) if config.refinement else None
            self.reconstruction = MultiHeadAttention(d, config.heads)
        self.relate = nn.Linear(2, d) if config.relations else None
        self.classifier = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor, refine_length: int) -> torch.Tensor:
        """x (B, L, sum(block_dims)) -> logits (B, L); refine_length = k2 (l2 in training)."""
        return self.correlate(self.embed(x), refine_length, self.relations_of(x[..., -self.block_dims[-1]:]))

    def relations_of(self, c5: torch.Tensor) -> torch.Tensor | None:
        """relations(c5) where the model takes them, else None (nothing computed)."""
        return relations(c5) if self.relate is not None else None

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The fusion of each image alone: x (..., sum(block_dims)) -> (..., d). In eval mode it
        does not depend on the sequence, so re-ranking embeds every image once, not k1 times."""
        if not self.config.fusion:
            x = x[..., -self.block_dims[-1]:]
        return self.fusion(x)

    def correlate(self, z: torch.Tensor, refine_length: int, related: torch.Tensor | None = None) -> torch.Tensor:
        """Fused sequences z (B, L, d), and their relations (B, L, 2) where the model takes them -> logits (B, L)."""
        if self.relate is not None:
            z = z + self.relate(related)
        for layer in self.encoder:
            z = layer(z)
        if self.config.memory:
            memory = self.memory(z)[0]
            if self.refinement is not None:
                memory = self.refinement(memory, z[:, :refine_length])
            z = self.reconstruction(z, memory)[0]
        return self.classifier(z).squeeze(-1)
