"""Group render jobs into denoising batches: only identical shapes share a batch."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

T = TypeVar("T")


def group_by_shape(items: Iterable[T], shape: Callable[[T], Hashable], batch_size: int,
                   alone: Callable[[T], bool] = lambda _: False) -> list[list[T]]:
    """Batches of at most `batch_size` items with equal `shape`, in first-seen order.

    Items for which `alone` is true (e.g. a clip resuming from its own checkpoint) get a batch of
    their own. A batch closes when full; the rest close at the end, in the order they opened.
    """
    size = max(1, batch_size)
    open_batches: dict[Hashable, list[T]] = {}
    batches: list[list[T]] = []
    for item in items:
        if alone(item) or size == 1:
            batches.append([item])
            continue
        key = shape(item)
        batch = open_batches.setdefault(key, [])
        if not batch:
            batches.append(batch)
        batch.append(item)
        if len(batch) == size:
            del open_batches[key]
    return batches
