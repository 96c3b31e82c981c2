"""The one interface every re-ranking method meets.

A method is a subclass of `Reranker` in its own file under methods/. Like a scikit-learn
estimator, its constructor only stores parameters; defaults that depend on the data (the
paper's k1 = N/C) are written as the string "N/C" and resolved against the feature set.
`rerank` receives the shared, parameter-independent work (`SharedSteps`: normalised
features, the exact kNN graph, the query-gallery distances) and returns `Distances`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, ClassVar

from ..features.featureset import FeatureSet
from .distances import Distances

DATA_DEPENDENT = "N/C"


class Reranker:
    """Base class: `name`, `title` (as the paper's tables print it), `defaults` ({parameter:
    default}), `rerank(shared)`; a method that reads the shared query-gallery distances sets
    `uses_distances`. `aliases` maps the paper's common names to the method's own (AQE's "k"
    is the neighbourhood size the paper calls k1), so one sweep can span several methods."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    aliases: ClassVar[dict[str, str]] = {}
    uses_distances: ClassVar[bool] = False  # reads shared.query_gallery_distances()
    needs_train: ClassVar[bool] = False  # learns from the feature set's train split (loaded for it)

    def __init__(self, **params: Any):
        canonical = [self.aliases.get(key, key) for key in params]
        if len(set(canonical)) < len(canonical):
            raise ValueError(f"method {self.name!r}: {', '.join(params)} name one parameter twice (aliases: {self.aliases})")
        params = dict(zip(canonical, params.values()))
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(f"method {self.name!r} has no parameter {', '.join(unknown)} (its parameters: {known})")
        self.overrides = params  # what was set, recorded apart from the defaults
        self.params = {**self.defaults, **params}

    @classmethod
    def parameter(cls, name: str) -> str | None:
        """The method's own name for parameter `name` (through `aliases`), or None if it has none."""
        name = cls.aliases.get(name, name)
        return name if name in cls.defaults else None

    def resolved(self, fs: FeatureSet) -> dict[str, Any]:
        """The parameters actually used on `fs`: "N/C" becomes the dataset's k1, types follow the defaults."""
        out = {}
        for key, value in self.params.items():
            default = self.defaults[key]
            if value == DATA_DEPENDENT:
                value = fs.default_k
            elif isinstance(default, bool):
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
            elif isinstance(default, (int, float)) or default == DATA_DEPENDENT:
                value = parse_number(value, key, self.name, integer=isinstance(default, int) or default == DATA_DEPENDENT,
                                     minimum=0 if default == 0 else 1)
            out[key] = value
        return out

    def neighbours_needed(self, fs: FeatureSet) -> int:
        """How many neighbours per row (self included) `rerank` reads from the shared kNN graph."""
        return 0

    def prepare(self, shared) -> None:
        """Do the shared, cacheable steps `rerank` needs, before it is timed: the kNN graph, the
        query-gallery distances, and for methods on derived features their shared steps."""
        shared.build(self.neighbours_needed(shared.fs), self.uses_distances)

    def rerank(self, shared) -> Distances:  # shared: rerankbench.engine.shared.SharedSteps
        raise NotImplementedError

    @classmethod
    def brief(cls, params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
        """The parameters a one-line summary shows (run's printed table): all of them, unless a method has many."""
        return params

    def trained(self, shared, log: Callable[[str], None] = lambda line: None):
        """A learned method (`needs_train`): its model, trained on the feature set's train split or
        loaded from its checkpoint, once per recipe (`shared.learned`)."""
        raise NotImplementedError(f"method {self.name!r} learns nothing")

    def details(self, shared) -> dict:
        """What the record keeps besides parameters and metrics (a learned method: its training)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"


def parse_number(value: Any, key: str, method: str, integer: bool, minimum: int = 1) -> int | float:
    """A finite number; a whole one >= `minimum` if `integer` (a parameter whose default is 0, a seed, may be 0)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {method}.{key} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"parameter {method}.{key} must be a finite number, got {value!r}")
    if integer:
        if number != int(number) or number < minimum:
            kind = "positive whole number" if minimum == 1 else f"whole number >= {minimum}"
            raise ValueError(f"parameter {method}.{key} must be a {kind}, got {value!r}")
        return int(number)
    return number
