"""ACP's ablation (paper Table VII) and architecture tables (Tables VIII-X) from the stored records,
beside the paper's numbers. The cells come from acp/ablation.py (the ablation) and from sweeps
over the encoder layers, the heads and the memory size (slots), one at a time.

Records that differ only in ACP's training seed are runs of one experiment: where an experiment
has several, its cell is the mean and the sample standard deviation over them (the run-to-run
noise that tells experiments apart or not), and the table says how many seeds.
"""
from __future__ import annotations

import statistics

from ..acp.ablation import EXPERIMENTS
from ..acp.config import MODULES
from .paper_table import dataset_label
from .tables import dataset_key, latest

PAPER_TABLE_VII = {"Baseline": (93.27, 76.74), "Exp-A": (86.18, 77.93), "Exp-B": (86.98, 77.90),
                   "Exp-C": (92.87, 86.31), "Exp-D": (92.07, 84.20), "Exp-E": (94.38, 87.09),
                   "Exp-F": (93.37, 86.56), "Exp-G": (95.18, 88.16)}  # CMC@1, mAP (%) on VERI-Wild small
PAPER_ARCHITECTURE = {  # Tables VIII (layers), IX (heads), X (memory size): value -> (CMC@1, mAP)
    "layers": {1: (94.14, 87.22), 2: (95.18, 88.21), 3: (95.18, 88.16), 4: (94.78, 88.14), 5: (94.65, 88.10),
               6: (94.31, 87.75)},
    "heads": {1: (92.03, 84.28), 2: (92.00, 83.77), 4: (93.47, 85.98), 8: (94.24, 87.01), 16: (95.18, 88.16),
              32: (94.61, 87.97), 64: (94.61, 88.02), 128: (94.54, 87.94)},
    "slots": {2: (93.71, 86.43), 4: (94.51, 87.51), 8: (95.18, 88.16), 12: (94.98, 87.98), 16: (94.95, 87.87),
              20: (94.88, 87.88), 24: (94.48, 87.69), 28: (94.28, 87.49), 32: (94.68, 87.52)},
}
TITLES = {"layers": "Table VIII: encoder layers", "heads": "Table IX: heads", "slots": "Table X: memory size"}


def ablation_tables(records: list[dict]) -> dict[str, str]:
    """{file stem: Markdown} for every ablation (two or more experiments with otherwise equal
    parameters on one test set) and every one-parameter architecture sweep in `records`."""
    ok = [r for r in latest(records) if r.get("status") == "ok" and r.get("trial", 0) == 0]
    baselines = {dataset_key(r): r for r in ok if r["method"] == "baseline" and not r.get("overrides")}
    uniform = {(dataset_key(r), str(r["params"].get("k"))): r for r in ok if r["method"] == "aqe"}
    tables = {}
    acp = [r for r in ok if r["method"] == "acp"]
    for (key, rest), group in _groups(acp, lambda r: tuple(r["params"][m] for m in MODULES)).items():
        found = {name: group[kept] for name, kept in EXPERIMENTS.items() if kept in group}
        if len(found) >= 2:
            stem = f"acp-ablation-{key[0]}" + _suffix(tables, f"acp-ablation-{key[0]}")
            tables[stem] = _ablation_markdown(found, baselines.get(key), uniform.get((key, dict(rest)["k1"])), rest)
    for param in PAPER_ARCHITECTURE:
        for (key, rest), group in _groups(acp, lambda r: r["params"][param], vary=param).items():
            if len(group) >= 2:
                stem = f"acp-{param}-{key[0]}" + _suffix(tables, f"acp-{param}-{key[0]}")
                tables[stem] = _architecture_markdown(param, group, rest)
    return tables


def _groups(records: list[dict], variant, vary: str | None = None) -> dict:
    """Records by (test set, the parameters that are neither the variant's nor the seed's), then by
    variant: a list of runs, one per seed."""
    varied = (set(MODULES) if vary is None else {vary}) | {"seed"}
    groups: dict = {}
    for record in records:
        rest = tuple(sorted((k, str(v)) for k, v in record["params"].items() if k not in varied))
        groups.setdefault((dataset_key(record), rest), {}).setdefault(variant(record), []).append(record)
    return groups


def _suffix(tables: dict, stem: str) -> str:
    """"", or "-2", "-3"... when a test set has several ablations (other fixed parameters)."""
    count = sum(1 for name in tables if name == stem or name.startswith(stem + "-"))
    return f"-{count + 1}" if count else ""


def _ablation_markdown(found: dict[str, list], baseline: dict | None, aqe: dict | None, rest: tuple) -> str:
    first = next(iter(found.values()))[0]
    lines = [f"# ACP ablation on {dataset_label(first, several=False)} (paper Table VII)", "",
             f"Fixed: {_fixed(rest)}{_seeds(found.values())}.", "",
             "| experiment | fusion | encoder | memory | refinement | CMC@1 | mAP | paper CMC@1 | paper mAP |",
             "|---|---|---|---|---|---|---|---|---|"]
    if baseline is not None:
        lines.append(_row("Baseline", ("", "", "", ""), [baseline]))
    if aqe is not None:
        lines.append(_row("AQE (uniform weights)", ("", "", "", ""), [aqe]))
    for name, runs in found.items():
        lines.append(_row(name, tuple("✓" if on else "" for on in EXPERIMENTS[name]), runs))
    if max(len(runs) for runs in found.values()) > 1:
        means = [statistics.fmean(r["map"] for r in runs) for runs in found.values()]
        noise = max(statistics.stdev(r["map"] for r in runs) for runs in found.values() if len(runs) > 1)
        lines += ["", f"Cells with several seeds: mean ± sample standard deviation over them. The experiments' mean mAP "
                  f"spans {max(means) - min(means):.2f} points; one experiment's runs differ by up to {noise:.2f} "
                  "(standard deviation)."]
    if all(_blocks(record) == ["features"] for runs in found.values() for record in runs):
        lines += ["", "These features have the C5 block alone, so multi-block fusion has nothing to fuse: "
                  "with fusion on or off the model is the same (Exp-A = B, D = F, E = G up to training noise)."]
    return "\n".join(lines) + "\n"


def _architecture_markdown(param: str, group: dict, rest: tuple) -> str:
    first = next(iter(group.values()))[0]
    values = sorted(group)
    paper = PAPER_ARCHITECTURE[param]
    lines = [f"# ACP, {TITLES[param]}, on {dataset_label(first, several=False)}", "",
             f"Fixed: {_fixed(rest)}{_seeds(group.values())}.", "",
             "| " + " | ".join([param, *map(str, values)]) + " |", "|---" * (len(values) + 1) + "|"]
    for index, (metric, title) in enumerate((("cmc1", "CMC@1"), ("map", "mAP"))):
        lines.append("| " + " | ".join([f"{title} (%)", *(_cell(group[v], metric) for v in values)]) + " |")
        lines.append("| " + " | ".join([f"paper {title}", *(f"{paper[v][index]:.2f}" if v in paper else "-"
                                                           for v in values)]) + " |")
    return "\n".join(lines) + "\n"


def _row(name: str, marks: tuple, runs: list[dict]) -> str:
    paper = PAPER_TABLE_VII.get(name, ("-", "-"))
    return "| " + " | ".join([name, *marks, _cell(runs, "cmc1"), _cell(runs, "map"),
                              *(f"{v:.2f}" if v != "-" else v for v in paper)]) + " |"


def _cell(runs: list[dict], metric: str) -> str:
    """One run's value, or the mean ± sample standard deviation of several seeds'."""
    values = [r[metric] for r in runs]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def _seeds(groups) -> str:
    """The training seeds of the table's runs: ", seed=0", or "; seeds 0, 1, 2"."""
    groups = list(groups)
    seeds = sorted({r["params"].get("seed", 0) for runs in groups for r in runs})
    return f"; seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f", seed={seeds[0]}"


def _blocks(record: dict) -> list | None:
    return record.get("training", {}).get("blocks")


def _fixed(rest: tuple) -> str:
    shown = [f"{k}={v}" for k, v in rest if k in ("k1", "k2", "preset", "layers", "heads", "slots", "d_memory", "d",
                                                   "epochs", "epoch_size")]
    return ", ".join(shown)
