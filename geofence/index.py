"""Where a position falls: its H3 cell and, through the grid cover, its unit grid.

The cover maps every H3 cell of the city (at one resolution) to exactly one unit grid, so
locating a fix is one H3 call and one dict lookup. Cells stay ints inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter

from geofence._h3 import latlng_to_cell

_LAT, _LON = attrgetter("lat"), attrgetter("lon")


@dataclass(frozen=True, slots=True)
class Place:
    district: str
    street: str
    community: str
    grid: str


class GridIndex:
    def __init__(self, resolution: int, cover: Iterable[tuple[int, str]] = ()) -> None:
        self.resolution = resolution
        self.cells: dict[int, str] = dict(cover)

    def __len__(self) -> int:
        return len(self.cells)

    def replace(self, cover: Iterable[tuple[int, str]]) -> None:
        self.cells = dict(cover)

    def cell(self, lat: float, lon: float) -> int:
        return latlng_to_cell(lat, lon, self.resolution)

    def locate(self, lat: float, lon: float) -> tuple[int, str | None]:
        cell = latlng_to_cell(lat, lon, self.resolution)
        return cell, self.cells.get(cell)

    def locate_all(self, fixes: Sequence) -> tuple[list[int], list[str | None]]:
        """H3 cells and unit grids (None: off every grid) of positions with ``lat`` and
        ``lon``, a column at a time: the pipeline's way, one C-level map per column."""
        cells = list(map(latlng_to_cell, map(_LAT, fixes), map(_LON, fixes), repeat(self.resolution)))
        return cells, list(map(self.cells.get, cells))

    def place(self, lat: float, lon: float) -> Place | None:
        """District, street, community and unit grid of a position (None: off every grid)."""
        grid = self.cells.get(latlng_to_cell(lat, lon, self.resolution))
        if grid is None:
            return None
        return Place(grid[:6], grid[:9], grid[:12], grid)
