"""Which part of ACP's correlations helps: eq. 1 over the same kNN(k1) sequences with four weightings.

x*_i = normalise(sum_{j in kNN(i, k1)} w_ij x_j) (eq. 1), then the query-gallery distances, with
- acp: w = s, the trained model's correlations (what the method does);
- rank profile: w_ij = the mean of s over all rows at j's rank: the same weights for every row,
  what is left of s without its row-to-row variation;
- uniform: w = 1 (AQE at k = k1);
- labels: w = 1 for a neighbour of row i's identity, else 0 (an oracle on the test identities:
  the ceiling of any weighting of these sequences).
Beside them, how s spreads: its mean for true and false neighbours and its standard deviation
over rows at each rank (averaged over the ranks after the first). The model and the kNN graph
come from RESULTS/cache (trained there when absent, as `run` would). Writes
results/benchmarks/acp_weights_<dataset>.{md,json}.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..engine.distances import FeatureDistances
from ..engine.expansion import expand
from ..engine.registry import datasets, method
from ..engine.shared import SharedSteps
from ..evaluation.protocols import evaluate_all
from ..harness.provenance import describe
from ..runtime.device import resolve_device
from .report_files import machine_line, write_report

WEIGHTINGS = {"acp": "ACP's s (eq. 11)", "rank_profile": "s's mean at each rank, the same for every row",
              "uniform": "uniform (AQE at k = k1)", "labels": "the test identities' labels (oracle)"}


def run(dataset: str = "market1501", scale: float = 1.0, params: dict | None = None, device: str = "cpu",
        results: str | Path = "results", output: str | Path = "results/benchmarks", log=print) -> dict:
    device = resolve_device(device)
    cache = Path(results) / "cache"
    fs = datasets()[dataset].load(scale, with_train=True, cache_dir=cache)
    acp = method("acp", **(params or {}))
    resolved = acp.resolved(fs)
    k1 = resolved["k1"]
    shared = SharedSteps(fs, str(device), str(cache))
    acp.prepare(shared)
    s = acp.correlations(shared).cpu()
    sequences = torch.as_tensor(shared.knn_graph(k1).indices)
    ids = torch.as_tensor(np.concatenate([fs.query.ids, fs.gallery.ids]))
    same = ids[sequences] == ids[sequences[:, :1]]
    weights = {"acp": s, "rank_profile": s.mean(dim=0, keepdim=True).expand_as(s).contiguous(),
               "uniform": torch.ones_like(s), "labels": same.float()}
    figures = {"dataset": dataset, "scale": scale, "params": resolved, "overrides": params or {},
               "s_true": float(s[same].mean()), "s_false": float(s[~same].mean()) if (~same).any() else None,
               "s_spread_within_rank": float(s[:, 1:].std(dim=0).mean()) if k1 > 1 else 0.0,
               "true_fraction": float(same[:, 1:].float().mean()) if k1 > 1 else 1.0, "metrics": {}}
    for name, w in weights.items():
        # each list starts with its own row (self first), which names the row whose weights to take
        expanded = expand(shared.features, shared.knn_graph(k1), k1,
                          lambda rows, _, w=w: w[rows[:, 0].cpu()].to(shared.features.device))
        figures["metrics"][name] = evaluate_all(FeatureDistances(expanded), fs)
        log(f"{WEIGHTINGS[name]}: CMC@1 {figures['metrics'][name]['cmc1']:.2f}, mAP {figures['metrics'][name]['map']:.2f}")
    figures.update(describe(device))
    _write(figures, Path(output))
    return figures


def _write(f: dict, folder: Path) -> None:
    settings = "".join(f" --set acp.{key}={value}" for key, value in f["overrides"].items())
    command = f"python -m rerankbench acp-weights --dataset {f['dataset']} --scale {f['scale']:g}{settings}"
    p = f["params"]
    lines = [f"# ACP's weights on the {f['dataset']} twin (scale {f['scale']:g}): eq. 1 with four weightings", "",
             f"Command: `{command}`  ", machine_line(f), "",
             f"ACP ({p['preset']}), k1 = {p['k1']}, k2 = {p['k2']}, {p['epochs']} epochs of {p['epoch_size']} probes. "
             f"Every row's kNN(k1) sequence ({100 * f['true_fraction']:.1f}% true matches after the row itself) "
             "weighted four ways, then expanded and scored alike.", "",
             "| weights | CMC@1 | CMC@5 | mAP |", "| --- | --- | --- | --- |",
             *(f"| {WEIGHTINGS[name]} | {m['cmc1']:.2f} | {m['cmc5']:.2f} | {m['map']:.2f} |"
               for name, m in f["metrics"].items()), "",
             f"s: mean {f['s_true']:.3f} on true neighbours, "
             f"{'-' if f['s_false'] is None else format(f['s_false'], '.3f')} on false ones; standard deviation "
             f"over rows at one rank {f['s_spread_within_rank']:.3f} (mean over ranks 2 to k1).", ""]
    write_report(folder, f"acp_weights_{f['dataset']}", f, lines)
