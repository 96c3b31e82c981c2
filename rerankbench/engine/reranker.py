"""The one interface every re-ranking method meets.

A method is a subclass of `Reranker` in its own file under methods/. Like a scikit-learn
estimator, its constructor only stores parameters (after checking each numeric one against
its declared `Range`, so a bad value fails before any work); defaults that depend on the data
(the paper's k1 = N/C) are written as the string "N/C" and resolved against the feature set.
`rerank` receives the shared, parameter-independent work (`SharedSteps`: normalised
features, the exact kNN graph, the query-gallery distances) and returns `Distances`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..features.featureset import FeatureSet
from .distances import Distances

DATA_DEPENDENT = "N/C"


@dataclass(frozen=True)
class Range:
    """The values a numeric parameter may take: low <= x <= high (x < high if `open_high`), a
    whole number if `whole`. A `neighbourhood` size counts rows of X: it may be given as "N/C"
    (the data's k1), and on a feature set it may be at most the rows of X, or the rows other than
    the row itself if `self_excluded` (it counts neighbours besides the row: ECN's t and q,
    k-reciprocal's k1 of kNN(i, k1 + 1))."""

    low: float
    high: float = math.inf
    open_high: bool = False
    whole: bool = False
    neighbourhood: bool = False
    self_excluded: bool = False

    def parse(self, value: Any, name: str) -> int | float:
        """`value` (a number or its text) as the number parameter `name` takes, or a ValueError."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"parameter {name} must be a finite number, got {value!r}")
        below_high = number < self.high if self.open_high else number <= self.high
        if not (self.low <= number and below_high and (number.is_integer() or not self.whole)):
            raise ValueError(f"parameter {name} must be {self}, got {value}")
        return int(number) if self.whole else number

    def check_rows(self, size: int, name: str, rows: int, of: str = "X (queries + gallery)") -> None:
        """A neighbourhood `size` may be at most the `rows` of X (less the row itself if `self_excluded`)."""
        limit = rows - 1 if self.self_excluded else rows
        if size > limit:
            other = " other than the row itself" if self.self_excluded else ""
            raise ValueError(f"parameter {name} = {size} is larger than the {limit:,} rows of {of}{other}")

    def __str__(self) -> str:
        """As the messages word it: "a positive whole number", "a whole number >= 0", "in [0, 1)"."""
        if self.whole and self.low == 1 and self.high == math.inf:
            return "a positive whole number"
        kind = "a whole number " if self.whole else ""
        if self.high == math.inf:
            return f"{kind}>= {self.low:g}"
        return f"{kind}in [{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


NEIGHBOURHOOD = Range(1, whole=True, neighbourhood=True)  # kNN(i, k), row i itself included
NEIGHBOURHOOD_WITHOUT_SELF = Range(1, whole=True, neighbourhood=True, self_excluded=True)
COUNT = Range(1, whole=True)
NON_NEGATIVE = Range(0)


class Reranker:
    """Base class: `name`, `title` (as the paper's tables print it), `defaults` ({parameter:
    default}), `ranges` ({parameter: Range}, one for every numeric parameter, checked when the
    method is made; neighbourhood sizes against the rows of X when resolved), `rerank(shared)`;
    a method that reads the shared query-gallery distances sets `uses_distances`. `aliases` maps
    the paper's common names to the method's own (AQE's "k" is the neighbourhood size the paper
    calls k1), so one sweep can span several methods and its plots use the paper's name;
    `spellings` maps other names a parameter is accepted by, for a name Python cannot take as a
    keyword argument (k-reciprocal's "lam" for "lambda"). Records hold the method's own names."""

    name: ClassVar[str]
    title: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    ranges: ClassVar[dict[str, Range]] = {}
    aliases: ClassVar[dict[str, str]] = {}
    spellings: ClassVar[dict[str, str]] = {}
    uses_distances: ClassVar[bool] = False  # reads shared.query_gallery_distances()
    needs_train: ClassVar[bool] = False  # learns from the feature set's train split (loaded for it)

    def __init__(self, **params: Any):
        canonical = [self.own_name(key) for key in params]
        if len(set(canonical)) < len(canonical):
            raise ValueError(f"method {self.name!r}: {', '.join(params)} name one parameter twice "
                             f"(other names: {self.aliases | self.spellings})")
        params = dict(zip(canonical, params.values()))
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise ValueError(f"method {self.name!r} has no parameter {', '.join(unknown)} (its parameters: {known})")
        for key, value in params.items():
            self.parsed(key, value)  # a number outside its range fails here, before any work
        self.overrides = params  # what was set, recorded apart from the defaults
        self.params = {**self.defaults, **params}

    @classmethod
    def own_name(cls, name: str) -> str:
        """The method's own name for `name`: through `aliases` or `spellings`, else `name` itself."""
        return cls.aliases.get(name) or cls.spellings.get(name) or name

    @classmethod
    def parameter(cls, name: str) -> str | None:
        """The method's own name for parameter `name` (through `aliases` or `spellings`), or None if it has none."""
        name = cls.own_name(name)
        return name if name in cls.defaults else None

    def parsed(self, key: str, value: Any) -> Any:
        """`value` of parameter `key` as the method takes it: a number within its `Range`, a bool
        as the default is one, or as given (a text choice; "N/C" or a method's own placeholder,
        such as ACP's "preset", where the default is one)."""
        default, bounds = self.defaults[key], self.ranges.get(key)
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
        if bounds is None or (isinstance(default, str) and value == default) or self._data_dependent(key, value):
            return value
        return bounds.parse(value, f"{self.name}.{key}")

    def _data_dependent(self, key: str, value: Any) -> bool:
        """Whether `value` is "N/C" given for a neighbourhood size (resolved to the data's k1)."""
        return value == DATA_DEPENDENT and key in self.ranges and self.ranges[key].neighbourhood

    def resolved(self, fs: FeatureSet) -> dict[str, Any]:
        """The parameters actually used on `fs`: "N/C" becomes the dataset's k1, numbers are
        parsed and checked against their ranges, and a neighbourhood against the rows of X."""
        rows = fs.num_query + fs.num_gallery
        out = {}
        for key, value in self.params.items():
            out[key] = self.parsed(key, fs.default_k if self._data_dependent(key, value) else value)
            if key in self.ranges and self.ranges[key].neighbourhood:
                self.ranges[key].check_rows(out[key], f"{self.name}.{key}", rows)
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

