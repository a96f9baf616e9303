"""Who is nearest: collectors on duty ranked by distance from a place, found by an H3 ring
search outward from the place's cell.

Collectors are indexed by their H3 cell at a coarse resolution (9: cells about 174 m
across an edge), so a search looks at a few rings of coarse cells instead of every
collector of the city. Rings grow until ``k`` candidates are found, then one ring more
(a candidate in the next ring can be nearer than one in a corner of the last), and the
candidates are ranked by great-circle distance. Beyond ``max_m`` nobody is proposed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from h3.api import basic_int as h3

from protocols.coords import distance_m

SEARCH_RESOLUTION = 9


@dataclass(frozen=True, slots=True)
class Position:
    device: str
    lat: float
    lon: float
    t_ms: int  # when the collector was there


@dataclass(frozen=True, slots=True)
class Candidate:
    device: str
    distance_m: float
    t_ms: int
    in_grid: bool  # the place lies in a grid of the collector's own responsibility


_EDGE_M = h3.average_hexagon_edge_length(SEARCH_RESOLUTION, unit="m")


def _nearest_possible_m(ring: int) -> float:
    """A lower bound of the distance from a point to any point of a cell ``ring`` rings
    away from the point's own cell: cell centres of ring r lie at least 1.5·r edges apart
    from the origin's, each point at most one edge from its cell's centre; 0.8 absorbs
    H3's variation of cell size."""
    return max(0.0, (1.5 * ring - 2.0) * _EDGE_M * 0.8)


def _ring(origin: int, ring: int) -> list[int]:
    if ring == 0:
        return [origin]
    try:
        return list(h3.grid_ring(origin, ring))
    except Exception:  # h3 cannot walk a ring across a pentagon: take the disk's difference
        return list(set(h3.grid_disk(origin, ring)) - set(h3.grid_disk(origin, ring - 1)))


class CollectorIndex:
    """The newest position of each collector, indexed for ring searches."""

    def __init__(self, positions: Iterable[Position] = ()) -> None:
        self._where: dict[str, Position] = {}
        self._cell_of: dict[str, int] = {}
        self._in_cell: dict[int, set[str]] = defaultdict(set)
        for position in positions:
            self.move(position)

    def __len__(self) -> int:
        return len(self._where)

    def move(self, position: Position) -> None:
        cell = h3.latlng_to_cell(position.lat, position.lon, SEARCH_RESOLUTION)
        old = self._cell_of.get(position.device)
        if old is not None and old != cell:
            self._in_cell[old].discard(position.device)
        self._where[position.device] = position
        self._cell_of[position.device] = cell
        self._in_cell[cell].add(position.device)

    def forget(self, device: str) -> None:
        cell = self._cell_of.pop(device, None)
        if cell is not None:
            self._in_cell[cell].discard(device)
        self._where.pop(device, None)

    def nearest(self, lat: float, lon: float, *, k: int = 3, max_m: float = 3000.0, on_duty: Iterable[str] | None = None,
                responsible: Mapping[str, bool] | None = None) -> list[Candidate]:
        """Up to ``k`` collectors nearest to (lat, lon) within ``max_m``, nearest first;
        only those in ``on_duty`` when given. ``responsible``: device → whether the place is
        in its responsibility grid (shown with the candidate; ties in distance go to it)."""
        allowed = set(on_duty) if on_duty is not None else None
        origin = h3.latlng_to_cell(lat, lon, SEARCH_RESOLUTION)
        found: dict[str, float] = {}
        ring = 0
        while True:
            for cell in _ring(origin, ring):
                for device in self._in_cell.get(cell, ()):
                    if allowed is not None and device not in allowed:
                        continue
                    p = self._where[device]
                    d = distance_m(lat, lon, p.lat, p.lon)
                    if d <= max_m:
                        found[device] = d
            ring += 1
            # nothing in the next ring or beyond can be nearer than this
            beyond = _nearest_possible_m(ring)
            if beyond > max_m or (len(found) >= k and beyond > sorted(found.values())[k - 1]):
                break
        resp = responsible or {}
        ranked = sorted(found.items(), key=lambda item: (item[1], not resp.get(item[0], False), item[0]))[:k]
        return [Candidate(device, d, self._where[device].t_ms, resp.get(device, False)) for device, d in ranked]
