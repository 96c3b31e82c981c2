"""ACP's architecture settings: the Table II presets and the ablation switches of Table VII.

Where the paper is silent (recorded with every checkpoint):
- FFN width = 4 d (Vaswani et al.'s ratio), in the BaseEncoder and in the refinement layer;
- memory refinement is a post-LN Transformer layer whose keys and values are the first k2
  neighbours (M' = LN(M + MHA(M, R, R)), M* = LN(M' + FFN(M'))), with the model's h heads;
- the reconstruction attention has h heads too; no dropout other than the fusion's p_d;
- gamma_j of eq. (2) is a per-channel vector (eq. 2's element-wise product), mu of eq. (9) one
  scalar, initialised to 1 and sqrt(d_m).
These choices reproduce Table III's parameter counts: 4.61 M (Basic) and 62.48 M (XL).

Beyond the paper, off by default (issue 16: a model that learns how neighbours relate to the
probe, not who the training identities are): `relations` adds to each image's fused feature a
linear map of two numbers, its cosine to the probe and its mean cosine to the sequence's other
images (model.relations). A config with it off is the paper's model, named as before (recipe).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

ARCHITECTURE = ("layers", "slots", "heads", "d_memory", "d", "dropout", "gamma")  # Table II's settings
MODULES = ("fusion", "encoder", "memory", "refinement")  # Table VII's switches
GUARDS = ("relations",)  # our additions against memorising identities, off in the paper's model


@dataclass(frozen=True)
class AcpConfig:
    """n layers, N memory slots, h heads, d_m, focal gamma, d, p_d (Table II), FFN width ratio,
    and the modules of Table VII (False: the module is left out)."""

    layers: int = 3  # n
    slots: int = 8  # N
    heads: int = 16  # h
    d_memory: int = 32  # d_m
    gamma: float = 2.0  # of the focal loss
    d: int = 256
    dropout: float = 0.4  # p_d
    ffn_ratio: int = 4  # FFN width / d (not in the paper)
    fusion: bool = True  # off: C5 alone through the same scaled-L2 + FC + BN (Exp-A, D, E)
    encoder: bool = True  # off: the fused features go straight to the memory (Exp-D, F)
    memory: bool = True  # off: the BaseEncoder's output goes to the classifier (Exp-A, B)
    refinement: bool = True  # off: the initialised memory is used as it is (Exp-C)
    relations: bool = False  # on: each image's cosines to the probe and to the sequence go in beside its features

    def recipe(self) -> dict:
        """What names a model: every setting, the guards only where on (a paper model keeps its name)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in GUARDS or v}


ACP_BASIC = AcpConfig()
ACP_XL = AcpConfig(d_memory=128, gamma=1.0, d=1024, dropout=0.0)
PRESETS = {"basic": ACP_BASIC, "xl": ACP_XL}
