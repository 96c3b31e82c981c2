"""ACP's ablation (paper Table VII) as ordinary cells; reports/ablation_tables.py tabulates it.

Table VII keeps or removes four modules; the checkmarks, read from the paper's text (Sec. IV-D1):
Exp-A encoder only; Exp-B fusion + encoder; Exp-C fusion + encoder + memory (no refinement);
Exp-D memory + refinement; Exp-E encoder + memory + refinement; Exp-F fusion + memory +
refinement; Exp-G everything. The paper tests them on VERI-Wild small at k1 = 25, k2 = 6.
Beside the paper's baseline row, the ablation has AQE at the same k1: the same expansion with
uniform weights, so that the table shows what the learned correlations add.
"""
from __future__ import annotations

from .config import MODULES

EXPERIMENTS = {
    "Exp-A": (False, True, False, False),
    "Exp-B": (True, True, False, False),
    "Exp-C": (True, True, True, False),
    "Exp-D": (False, False, True, True),
    "Exp-E": (False, True, True, True),
    "Exp-F": (True, False, True, True),
    "Exp-G": (True, True, True, True),
}
TEST_PARAMS = {"k1": 25, "k2": 6}  # the paper's for Tables VII-X


def ablation_cells(fixed: dict) -> list[tuple[str, dict]]:
    """The baseline, AQE at the same k1 (the expansion with uniform weights: what the learned
    correlations are measured against) and ACP in each experiment of Table VII; `fixed`: ACP's
    other parameters (default k1 = 25, k2 = 6). Only the modules an experiment removes are set."""
    fixed = {**TEST_PARAMS, **fixed}
    if set(fixed) & set(MODULES):
        raise ValueError(f"the ablation sets {', '.join(MODULES)} itself")
    return [("baseline", {}), ("aqe", {"k": fixed["k1"]})] + [
        ("acp", {**fixed, **{name: False for name, on in zip(MODULES, kept) if not on}}) for kept in EXPERIMENTS.values()]
