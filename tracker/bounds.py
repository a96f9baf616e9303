"""Per-device memory with a ceiling: anyone who may publish can make up device ids.

Each table keyed by device id that a message can grow (live positions, the filters'
memory, sensor rule state, patrol visits, topic routes) holds at most ``[pipeline]
max_devices`` entries. Past that, the least recently heard are forgotten down to
``EVICT_TO`` of the ceiling, so the sort an eviction costs is paid once per thousands of
newcomers rather than per fix, and a table that is not over its ceiling costs one
``len`` per batch. What is forgotten is the in-memory state only: the database keeps
every fix, and a forgotten device that reports again starts afresh.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

EVICT_TO = 7 / 8


def excess(size: int, cap: int) -> int:
    """How many entries a table of ``size`` must lose: none up to ``cap``, else down to
    ``EVICT_TO`` of it."""
    return 0 if size <= cap else size - int(cap * EVICT_TO)


def least_recent(keys: Iterable[K], n: int, heard: Callable[[K], float]) -> list[K]:
    """The ``n`` keys heard least recently (``heard``: when, any monotonic scale)."""
    return heapq.nsmallest(n, keys, key=heard)


def evict_least_recent(table: dict[K, V], cap: int, heard: Callable[[K], float]) -> list[K]:
    """Bring ``table`` back under ``cap`` if it is over; return the keys removed."""
    n = excess(len(table), cap)
    if not n:
        return []
    victims = least_recent(table, n, heard)
    for key in victims:
        del table[key]
    return victims


def evict_oldest(table: dict[K, V], cap: int) -> list[K]:
    """Like ``evict_least_recent`` for a table whose insertion order is its recency
    (an update pops and re-inserts its key)."""
    n = excess(len(table), cap)
    if not n:
        return []
    victims = [key for key, _ in zip(table, range(n), strict=False)]
    for key in victims:
        del table[key]
    return victims

