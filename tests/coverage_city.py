"""Four unit grids of about 100 m x 100 m by Anning's centre, numbered west to east, north
to south, and one collector's Monday slot over them (plus the helpers that build them:
a territory from polygons, a collector's slots on a day):

    620105001001001 | 620105001001002
    ----------------+----------------
    620105001001003 | 620105001001004

2025-09-29 is a Monday.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import h3.api.basic_int as h3

from geofence.schedule import Schedule, Shift, Slot
from geofence.territory import CoverageRule, Territory
from protocols.model import DeviceClass, Fix

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = date(2025, 9, 29)
NW, NE, SW, SE = (f"62010500100100{i}" for i in range(1, 5))
NORTH_LAT, WEST_LON = 36.1050, 103.7185   # north-west corner, by Anning's centre
DLAT, DLON = 0.0009, 0.00111              # about 100 m each way at this latitude
OUTSIDE = (36.1100, 103.7300)             # a street block well east of the four grids


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp() * 1000)


def unit_grid(row: int, col: int) -> list[tuple[float, float]]:
    n, w = NORTH_LAT - row * DLAT, WEST_LON + col * DLON
    return [(n, w), (n, w + DLON), (n - DLAT, w + DLON), (n - DLAT, w)]


def territory_from_polygons(grids: Mapping[str, Sequence[tuple[float, float]]],
                            areas: Mapping[str, Iterable[str]], res: int = 12) -> Territory:
    """The cells of each unit grid polygon (an outer ring of WGS-84 (lat, lon) points): a
    cell belongs to the polygon holding its centre, so polygons sharing edges share no cells."""
    return Territory({code: h3.h3shape_to_cells(h3.LatLngPoly(list(ring)), res) for code, ring in grids.items()},
                     {name: frozenset(codes) for name, codes in areas.items()})


def slots_for(schedule: Schedule, collector: str, day: date) -> list[Slot]:
    """``collector``'s slots starting on local date ``day``, by start time."""
    return [slot for slot in schedule.slots_on(day) if slot.collector == collector]


TERRITORY = territory_from_polygons(
    {NW: unit_grid(0, 0), NE: unit_grid(0, 1), SW: unit_grid(1, 0), SE: unit_grid(1, 1)},
    {"anning-01": [NW, NE, SW, SE], "anning-north": [NW, NE], "anning-south": [SW, SE]})
SCHEDULE = Schedule((Shift("c01", "anning-01", "Mon-Fri", time(8), time(10)),))
RULE = CoverageRule()


def cells(grid: str) -> list[int]:
    """A unit grid's cells in walking order: north to south, west to east."""
    return sorted(TERRITORY.grids[grid], key=lambda c: (-h3.cell_to_latlng(c)[0],
                                                        h3.cell_to_latlng(c)[1]))


def fix(t_ms: int, lat: float, lon: float, *, device: str = "c01", acc: float | None = 5.0,
        bat: float | None = 80.0) -> Fix:
    return Fix(device, DeviceClass.COLLECTOR, "620105", t_ms, lat, lon, t_ms, acc=acc, bat=bat)


def walk(path: list[int], start_ms: int, every_s: int = 30, **kw) -> list[Fix]:
    """One fix at the centre of each cell in turn."""
    return [fix(start_ms + i * every_s * 1000, *h3.cell_to_latlng(c), **kw)
            for i, c in enumerate(path)]


def monday_slot():
    return slots_for(SCHEDULE, "c01", MONDAY)[0]


