"""Progress bars for long work: tqdm, which draws in terminals and in notebooks alike."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def enabled() -> bool:
    """Bars are on unless COPYSCOPE_PROGRESS=0 (the tests and the web app turn them off)."""
    return os.environ.get("COPYSCOPE_PROGRESS", "1") != "0"


def progress(
    items: Iterable[T], desc: str = "", total: int | None = None, show: bool = True, **kw: object
) -> Iterator[T]:
    if not (show and enabled()):
        yield from items
        return
    yield from tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True, **kw)


def bar(total: int, desc: str = "", show: bool = True, **kw: object) -> tqdm:
    """A manually advanced bar (``.update(n)``), disabled when progress is off."""
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True,
                disable=not (show and enabled()), **kw)
