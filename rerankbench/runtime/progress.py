"""Progress bars for long work (tqdm), silent unless asked for."""
from __future__ import annotations

from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], label: str, show: bool) -> Iterable[T]:
    if not show:
        return items
    return tqdm(items, desc=label, leave=False, dynamic_ncols=True)
