"""Model figures (paper Table III): parameters and multiply-accumulates (MACs) per sequence.

MACs are counted by running one sequence (batch 1, k2 = 6) under torch's FLOP counter, which
sees every matmul (linear layers, attention scores and weighted sums): MACs = FLOPs / 2.
Normalisation, softmax and activations are not counted, as is usual for MAC counts.
The input is ResNet-50's pooled C3, C4, C5 (512 + 1024 + 2048), as in the paper.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import PRESETS
from .model import AcpModel

RESNET50_BLOCKS = (512, 1024, 2048)
TEST_K2 = 6
# Table III: parameters (M) and MACs (G) per sequence at k1 = 25 and 50
PAPER_TABLE_III = {"basic": (4.61, {25: 0.10, 50: 0.19}), "xl": (62.48, {25: 1.26, 50: 2.40})}
DIFFERENCES = (
    "Parameters agree at the paper's two decimals, with an FFN width of 4d and a refinement layer that has "
    "an FFN (our choices where the paper is silent). MACs agree at two decimals except ACP-XL at k1 = 50 "
    "(+0.5%): that gap is of the order of the BaseEncoder's attention products (n x 2 x k1^2 x d, 15.4 M "
    "there), which MAC counters (thop, ptflops) count differently or not at all; ours counts every matmul.")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_sequence(model: nn.Module, length: int, refine_length: int = TEST_K2) -> int:
    """Multiply-accumulates of one forward pass over one sequence of `length` images."""
    x = torch.randn(1, length, sum(model.block_dims))
    training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(x, refine_length)
    model.train(training)
    return counter.get_total_flops() // 2


def figures_table(lengths: tuple[int, ...] = (25, 50)) -> str:
    """Markdown: ours beside Table III for ACP-Basic and ACP-XL."""
    rows = ["| model | params (M) | paper | " + " | ".join(f"MACs k1={k} (G) | paper" for k in lengths) + " |",
            "|---|---|---|" + "---|---|" * len(lengths)]
    for name, config in PRESETS.items():
        model = AcpModel(config, RESNET50_BLOCKS)
        params, paper_macs = PAPER_TABLE_III[name]
        cells = [f"{parameter_count(model) / 1e6:.2f}", f"{params:.2f}"]
        for k1 in lengths:
            cells += [f"{macs_per_sequence(model, k1) / 1e9:.3f}", f"{paper_macs[k1]:.2f}"]
        rows.append(f"| ACP-{name.capitalize() if name == 'basic' else name.upper()} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
