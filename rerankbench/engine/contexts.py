"""The two settings a method re-ranks in (`--context`), recorded in every record as `context`.

- "all" (transductive, the default; the paper's setting and fast-reid's query expansion): the
  queries and the gallery together form X, and every method reads the kNN graph over all of it,
  so a query's neighbours may be other queries.
- "gallery" (inductive: a deployed system sees one probe at a time): each query is re-ranked
  against the gallery alone. The gallery-side structures (kNN graph, expansions, reciprocal
  sets, contextual vectors) come from the gallery only, and a query's own expanded feature or
  contextual vector comes from its neighbours in the gallery, as if it had arrived alone: its
  list is itself, then its nearest gallery rows, and it is in no other row's list, so no query
  ever sees another (neighbours.build_gallery_graph). Where a method asks whether the query
  belongs to a gallery row's neighbourhood (k-reciprocal's reciprocity, GNN's reverse
  neighbours), the answer is whether it would enter that row's list: d(q, j) <= the distance
  of the list's last entry. Each method's docstring states what it does in this context.
  The gallery's structures are built once per gallery and shared by every query and every cell
  (SharedSteps.gallery_context); VehicleID has one gallery per draw.

`in_context` gives a method's distances in either context; `prepare_in_context` does the
shared steps they need before the method is timed.
"""
from __future__ import annotations

import numpy as np

from ..features.trials import trials

ALL, GALLERY = "all", "gallery"
CONTEXTS = (ALL, GALLERY)


def check_context(context: str) -> str:
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; choose one of {', '.join(CONTEXTS)}")
    return context


def galleries(shared) -> list:
    """The gallery context's steps of each distinct gallery among the protocol's trials."""
    distinct = {tuple(gallery_rows): gallery_rows for _, gallery_rows in trials(shared.fs)}
    return [shared.gallery_context(rows) for rows in distinct.values()]


def check_fits(method, fs, context: str) -> None:
    """In the gallery context a row's list holds the gallery's rows at most: a neighbourhood size
    of `method` must be at most the rows of the smallest gallery among the protocol's trials."""
    if check_context(context) == ALL:
        return
    rows = min(len(gallery_rows) for _, gallery_rows in trials(fs))
    params = method.resolved(fs)
    for key, bounds in method.ranges.items():
        if bounds.neighbourhood:
            bounds.check_rows(params[key], f"{method.name}.{key}", rows, "the gallery (context gallery)")


def prepare_in_context(method, shared, context: str) -> None:
    """The shared steps `method` needs in `context`, done before it is timed."""
    check_fits(method, shared.fs, context)
    for steps in galleries(shared) if context == GALLERY else [shared]:
        method.prepare(steps)


def in_context(method, shared, context: str):
    """A method's distances (a Distances) in `context`."""
    check_fits(method, shared.fs, context)
    return method.rerank(shared) if context == ALL else GalleryDistances(method, shared)


class GalleryDistances:
    """A method's distances in the gallery context: for the gallery each request names, the
    method re-ranks on that gallery's shared steps (made once per gallery) and yields its blocks."""

    def __init__(self, method, shared):
        self.method, self.shared = method, shared

    def blocks(self, query_rows: np.ndarray, gallery_rows: np.ndarray):
        steps = self.shared.gallery_context(gallery_rows)
        outside = np.isin(query_rows, steps.gallery)
        if outside.any():
            raise ValueError(f"query row {int(query_rows[outside][0])} is in the gallery it is ranked against")
        yield from self.method.rerank(steps).blocks(query_rows, gallery_rows)
