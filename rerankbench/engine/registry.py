"""Discovery of the registered methods (methods/*.py) and test sets (datasets/*.py).

A method is any `Reranker` subclass with a `name` defined in a module of rerankbench.methods;
a dataset module lists its test sets in `DATASETS`. Adding one is adding one file.
Dataset families name several test sets: "veriwild" and "vehicleid" stand for their
small / medium / large test sets; "all" names everything.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType

from ..twins.twin import TwinDataset
from .reranker import Reranker

METHODS_PACKAGE, DATASETS_PACKAGE = "rerankbench.methods", "rerankbench.datasets"  # methods/ and datasets/, installed there


@lru_cache(maxsize=None)
def methods() -> dict[str, type[Reranker]]:
    found = {}
    for module in plugins(METHODS_PACKAGE):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Reranker) and "name" in vars(value):
                found[value.name] = value
    return dict(sorted(found.items(), key=lambda item: rank_in(METHOD_ORDER, item[0])))


@lru_cache(maxsize=None)
def datasets() -> dict[str, TwinDataset]:
    found = {}
    for module in plugins(DATASETS_PACKAGE):
        for dataset in getattr(module, "DATASETS", []):
            found[dataset.name] = dataset
    return dict(sorted(found.items(), key=lambda item: rank_in(DATASET_ORDER, item[0])))


def plugins(package_name: str) -> list[ModuleType]:
    """Every module of a plug-in package, imported by name: the package never imports a method or
    dataset file itself, so they may build on any part of it (tests/test_layout.py)."""
    package = importlib.import_module(package_name)
    return [importlib.import_module(f"{package_name}.{module.name}") for module in pkgutil.iter_modules(package.__path__)]


METHOD_ORDER = ["baseline", "aqe", "alpha_qe", "k_reciprocal", "alpha_qe_k_reciprocal", "sca", "ecn", "gnn", "acp"]
DATASET_ORDER = ["market1501", "dukemtmc", "msmt17", "veri776", "veriwild_small", "veriwild_medium",
                 "veriwild_large", "vehicleid_small", "vehicleid_medium", "vehicleid_large"]


def rank_in(order: list[str], name: str) -> tuple[int, str]:
    """Sort key: the paper's order (METHOD_ORDER, DATASET_ORDER), then other names alphabetically."""
    return (order.index(name) if name in order else len(order), name)


def method(name: str, **params) -> Reranker:
    """An instance of the registered method `name` with `params`."""
    known = methods()
    if name not in known:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(known)}")
    return known[name](**params)


def select(names: str | list[str], known: dict, kind: str) -> list[str]:
    """Expand a comma list (or list) of names: "all", families ("veriwild") and exact names."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    chosen = []
    for name in names:
        if name == "all":  # all but the large-gallery sets, which are named (market1501_500k)
            matches = [key for key, value in known.items() if getattr(value, "in_all", True)]
        else:
            matches = [name] if name in known else [k for k in known if k.startswith(name + "_")]
        if not matches:
            raise ValueError(f"unknown {kind} {name!r}; registered: {', '.join(known)} (or 'all')")
        chosen += [m for m in matches if m not in chosen]
    return chosen
