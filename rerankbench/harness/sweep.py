"""Parameter sweeps: one parameter over a range of values, for several methods in one call.

A sweep is a list of ordinary cells, run by the harness like any other: the cells of one
test set share one worker, whose shared steps (the exact kNN graph for the largest k asked,
the query-gallery distances) are built, or read from the cache, once before the first cell,
so a 60-point sweep costs little more than its 60 re-ranking steps. Each record stores the
swept value in `overrides`; a method without the parameter (the baseline) runs once at its
defaults, as the reference line of the plots.
"""
from __future__ import annotations

from ..engine.registry import methods


def parse_values(text: str) -> list:
    """"1:60" (inclusive), "2:60:2" (with a step), "0.1:0.9:0.2", or a comma list "5,10,20".

    Whole numbers stay ints; a float range is rounded to the step's decimals so 0.1 + 0.2 is 0.3.
    """
    text = text.strip()
    if ":" not in text:
        values = [_number(part, text) for part in text.split(",") if part.strip()]
    else:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--values {text!r}: expected START:STOP[:STEP] or a comma list")
        start, stop = _number(parts[0], text), _number(parts[1], text)
        step = _number(parts[2], text) if len(parts) == 3 else 1
        if step <= 0 or stop < start:
            raise ValueError(f"--values {text!r}: needs START <= STOP and a positive STEP")
        decimals = max(_decimals(part) for part in parts)
        count = int(round((stop - start) / step, 9)) + 1
        values = [round(start + i * step, decimals) if decimals else int(start + i * step) for i in range(count)]
    if not values:
        raise ValueError(f"--values {text!r}: no values")
    return values


def _number(part: str, text: str) -> int | float:
    try:
        number = float(part)
    except ValueError:
        raise ValueError(f"--values {text!r}: {part!r} is not a number") from None
    return int(number) if number.is_integer() and "." not in part else number


def _decimals(part: str) -> int:
    return len(part.strip().partition(".")[2])


def sweep_cells(method_names: list[str], param: str, values: list, fixed: dict[str, dict]) -> list[tuple[str, dict]]:
    """(method, parameters) for every method and value; `fixed` holds each method's other --set
    parameters. A method that lacks `param` (or an alias of it) runs once with `fixed` alone.
    Each cell's method is made once here, so a value outside its range fails before any work."""
    known = methods()
    if not any(known[name].parameter(param) for name in method_names):
        raise ValueError(f"--param {param!r}: none of {', '.join(method_names)} has it")
    cells = []
    for name in method_names:
        own = known[name].parameter(param)
        if own is None:
            cells.append((name, dict(fixed.get(name, {}))))
            continue
        if own in {known[name].own_name(key) for key in fixed.get(name, {})}:
            raise ValueError(f"--set {name}.{own} conflicts with the swept --param {param}")
        cells += [(name, {**fixed.get(name, {}), own: value}) for value in values]
    for name, params in cells:
        known[name](**params)
    return cells
