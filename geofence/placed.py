"""Fixes with where they fall: the unit-grid vocabulary the pipeline hands its listeners."""

from __future__ import annotations

from typing import NamedTuple

from protocols.model import Fix


class Placed(NamedTuple):
    """A fix with where it falls: its H3 cell (int) and unit grid (None: off any grid)."""

    fix: Fix
    cell: int
    grid: str | None
    late: bool = False  # older than the newest fix already seen from this device


class PlacedSlice(NamedTuple):
    """A run of placed fixes as columns, the way the pipeline hands them to its listeners:
    ``cells[i]`` and ``grids[i]`` belong to ``fixes[i]``; ``late`` counts the fixes older
    than their device's newest already seen."""

    fixes: list[Fix]
    cells: list[int]
    grids: list[str | None]
    late: int = 0

    @classmethod
    def of(cls, placed: list[Placed]) -> PlacedSlice:
        return cls([p.fix for p in placed], [p.cell for p in placed], [p.grid for p in placed],
                   sum(p.late for p in placed))
