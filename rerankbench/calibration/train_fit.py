"""Fitting a family's train split to the paper's Table VI: the baseline on each training set.

The paper's backbone ranks its small training sets (persons, VeRi-776) almost perfectly and
its large ones far from it (VehicleID 93.62 / 74.98, VERI-Wild 81.53 / 59.64 CMC@1 / mAP;
Table VI, Sec. IV-C). ACP learns from the train split, so what it learns carries to the test
split only if the train split has the test split's structure and that difficulty. A train
fit starts from the test set's own model (its adopted table fit: the same shared nuisance,
views and look-alike groups) and moves a few terms until

    error(model) = sum over CMC@1, CMC@5, CMC@10, mAP of (train twin - Table VI)^2

is smallest, by table_fit.py's derivative-free search. The train twin is measured as
`calibrate --check` measures it (`train_baseline`): 2,000 seeded train images as queries
against the rest of the train split (the paper does not say how it queried its training sets).
"""
from __future__ import annotations

import numpy as np
import torch

from ..engine.distances import FeatureDistances
from ..evaluation.metrics import score_queries, summarise
from ..features.featureset import Split
from ..reports.paper import paper_train_baseline
from ..twins.synthetic import TwinModel
from ..twins.twin import TwinDataset
from .table_fit import Cell, FitResult, fit_table

TRAIN_TERMS = ("noise", "view_share", "group_similarity", "nuisance")  # the default terms of a train fit
TRAIN_QUERIES = 2000


def train_baseline(train: Split, seed: int = 0, queries: int = TRAIN_QUERIES) -> dict:
    """The baseline's metrics on a train split: `queries` seeded images (at most half the split) as
    queries against every other image of the split, scored as a test split is (an image of the
    query's identity under its camera ignored where the split has cameras)."""
    queries = min(queries, len(train) // 2)
    rows = np.random.default_rng(seed).permutation(len(train))
    q, g = np.sort(rows[:queries]), np.sort(rows[queries:])
    cams = (None, None) if train.cams is None else (train.cams[q], train.cams[g])
    blocks = FeatureDistances(torch.from_numpy(np.asarray(train.features))).blocks(q, g)
    return summarise(score_queries(blocks, train.ids[q], train.ids[g], *cams))


def train_cells(dataset: TwinDataset) -> list[Cell]:
    """Table VI's cells of the dataset's family, as the baseline's."""
    paper = paper_train_baseline()[dataset.family]
    return [Cell("baseline", (), metric, value) for metric, value in paper.items()]


def fit_train(dataset: TwinDataset, scale: float, names: list[str], search: str, evaluations: int,
              start: TwinModel, seed: int = 0, dim: int = 2048, log=print, cells: list[Cell] | None = None,
              queries: int = TRAIN_QUERIES) -> FitResult:
    """The train-split model, from `start` with the terms `names` moved, whose train twin at
    `scale` comes nearest the cells (default: Table VI's, `train_cells`)."""
    def measure(model: TwinModel) -> dict:
        return {("baseline", ()): train_baseline(dataset.train_split(scale, seed, dim, model), seed, queries)}
    return fit_table(dataset, scale, names, search, evaluations, seed, start, cells or train_cells(dataset), log,
                     measure)
