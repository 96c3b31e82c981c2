"""ACP's ablation (Table VII) and architecture tables (VIII-X): the cells, and the tables made from records."""
from __future__ import annotations

import pytest

from rerankbench.acp.ablation import EXPERIMENTS, MODULES, ablation_cells
from rerankbench.reports.ablation_tables import ablation_tables

ACP_DEFAULTS = {"k1": 25, "k2": 6, "preset": "basic", "layers": 3, "slots": 8, "heads": 16, "d_memory": 32, "d": 256,
                "dropout": 0.4, "gamma": 2.0, "fusion": True, "encoder": True, "memory": True, "refinement": True,
                "epochs": 20, "epoch_size": 400, "seed": 0}


def test_ablation_cells_set_only_the_removed_modules():
    cells = ablation_cells({"epochs": "5"})
    assert cells[:2] == [("baseline", {}), ("aqe", {"k": 25})]
    fixed = {"k1": 25, "k2": 6, "epochs": "5"}
    assert cells[2:] == [
        ("acp", {**fixed, "fusion": False, "memory": False, "refinement": False}),  # A: encoder only
        ("acp", {**fixed, "memory": False, "refinement": False}),  # B: fusion + encoder
        ("acp", {**fixed, "refinement": False}),  # C: no refinement
        ("acp", {**fixed, "fusion": False, "encoder": False}),  # D: memory + refinement
        ("acp", {**fixed, "fusion": False}),  # E: no fusion
        ("acp", {**fixed, "encoder": False}),  # F: no encoder
        ("acp", fixed),  # G: everything
    ]
    assert ablation_cells({"k1": 30})[-1] == ("acp", {"k1": 30, "k2": 6})
    with pytest.raises(ValueError, match="sets fusion, encoder, memory, refinement itself"):
        ablation_cells({"memory": False})


def record(method, params, cmc1, map_, number, **extra):
    return {"cell": f"cell-{number}", "status": "ok", "trial": 0, "method": method, "params": params,
            "overrides": extra.pop("overrides", {}), "dataset": "veriwild_small", "synthetic": True,
            "dataset_info": {"fingerprint": "f", "source_scale": 0.1, "protocol": "market"},
            "cmc1": cmc1, "map": map_,
            "training": {"blocks": ["features"]}, **extra}


def test_ablation_table_reads_each_experiment_from_its_switches():
    records = [record("baseline", {}, 90.0, 70.0, 0), record("aqe", {"k": 25}, 91.0, 71.0, 30),
               record("aqe", {"k": 13}, 99.0, 99.0, 31)]
    for number, (name, kept) in enumerate(EXPERIMENTS.items(), 1):
        if name != "Exp-D":  # a missing experiment is left out of the table
            records.append(record("acp", {**ACP_DEFAULTS, **dict(zip(MODULES, kept))}, 80.0 + number, 60.0 + number,
                                  number))
    # the heads sweep: a table beside Table IX, the full model's record shared with Exp-G's
    for number, heads in ((20, 4), (7, 16)):
        records.append(record("acp", {**ACP_DEFAULTS, "heads": heads}, 70.0 + heads, 50.0 + heads, number,
                              overrides={"k1": 25, "heads": heads}))
    tables = ablation_tables(records)
    assert set(tables) == {"acp-ablation-veriwild_small", "acp-heads-veriwild_small"}
    ablation = tables["acp-ablation-veriwild_small"].splitlines()
    assert ablation[0] == "# ACP ablation on VERI-Wild (small, twin, scale 0.1) (paper Table VII)"
    assert "| Baseline |  |  |  |  | 90.00 | 70.00 | 93.27 | 76.74 |" in ablation
    assert "| AQE (uniform weights) |  |  |  |  | 91.00 | 71.00 | - | - |" in ablation  # at the ablation's k1
    assert "| Exp-A |  | ✓ |  |  | 81.00 | 61.00 | 86.18 | 77.93 |" in ablation
    assert "| Exp-C | ✓ | ✓ | ✓ |  | 83.00 | 63.00 | 92.87 | 86.31 |" in ablation
    assert not any(line.startswith("| Exp-D") for line in ablation)
    assert "| Exp-G | ✓ | ✓ | ✓ | ✓ | 86.00 | 66.00 | 95.18 | 88.16 |" in ablation  # the newest of its cell
    assert "C5 block alone" in tables["acp-ablation-veriwild_small"]
    heads = tables["acp-heads-veriwild_small"].splitlines()
    assert heads[4:] == ["| heads | 4 | 16 |", "|---|---|---|", "| CMC@1 (%) | 74.00 | 86.00 |",
                         "| paper CMC@1 | 93.47 | 95.18 |", "| mAP (%) | 54.00 | 66.00 |", "| paper mAP | 85.98 | 88.16 |"]


def test_runs_over_seeds_give_the_mean_and_the_run_to_run_noise():
    records = [record("baseline", {}, 90.0, 70.0, 0)]
    for number, (name, base) in enumerate((("Exp-A", 61.0), ("Exp-G", 67.0))):
        for seed in (0, 1, 2):  # mAP A: 61, 62, 63; G: 67, 68, 69; CMC@1 20 more
            records.append(record("acp", {**ACP_DEFAULTS, **dict(zip(MODULES, EXPERIMENTS[name])), "seed": seed},
                                  base + 20 + seed, base + seed, 10 * number + seed + 1))
    tables = ablation_tables(records)
    assert set(tables) == {"acp-ablation-veriwild_small"}  # one table: seeds are runs of one experiment
    lines = tables["acp-ablation-veriwild_small"].splitlines()
    assert lines[2].endswith("slots=8; seeds 0, 1, 2.")
    assert "| Exp-A |  | ✓ |  |  | 82.00 ± 1.00 | 62.00 ± 1.00 | 86.18 | 77.93 |" in lines
    assert "| Exp-G | ✓ | ✓ | ✓ | ✓ | 88.00 ± 1.00 | 68.00 ± 1.00 | 95.18 | 88.16 |" in lines
    assert any("mean mAP spans 6.00 points; one experiment's runs differ by up to 1.00" in line for line in lines)
