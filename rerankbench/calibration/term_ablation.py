"""`calibrate --ablate`: which term of a twin's model its errors come from. The model as it is,
then with one term off at a time, through baseline, AQE, SCA and GNN (the last two compare
neighbourhoods only, so they show a structure that splits a query's neighbourhood from its
match's): a Markdown table of CMC@1 and mAP (CMC@5 on VehicleID)."""
from __future__ import annotations

import dataclasses

from ..twins.synthetic import TwinModel
from ..twins.twin import TwinDataset
from .table_fit import Cell, twin_metrics

METHODS = ("baseline", "aqe", "sca", "gnn")
TERMS_OFF = {"no hard images": {"hard_share": 0.0}, "no camera or scene shift": {"camera_shift": 0.0},
             "no shared view": {"shared_view": 0.0}, "no common mean": {"common": 0.0},
             "no group spread": {"group_spread": 0.0}, "isotropic identities": {"identity_rank": 0},
             "one view": {"views": 1}, "no view share": {"view_share": 0.0}, "no view blend": {"view_blend": 0.0},
             "no shared nuisance": {"nuisance": 0.0}}


def ablation_table(dataset: TwinDataset, model: TwinModel, scale: float) -> str:
    second = "cmc5" if dataset.protocol == "vehicleid" else "map"
    cells = [Cell(name, (), metric, 0.0) for name in METHODS for metric in ("cmc1", second)]
    lines = [f"| {dataset.name} at {scale:g} | " + " | ".join(f"{c.method} {c.metric}" for c in cells) + " |",
             "| --- " * (len(cells) + 1) + "|"]
    for label, change in {"as given": {}, **TERMS_OFF}.items():
        metrics = twin_metrics(dataset, dataclasses.replace(model, **change), cells, scale)
        lines.append(f"| {label} | " + " | ".join(f"{metrics[c.method, c.params][c.metric]:.1f}" for c in cells) + " |")
    return "\n".join(lines)
