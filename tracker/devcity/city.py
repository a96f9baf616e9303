"""The demo city: unit grids of two districts of Lanzhou facing each other across the
Yellow River, and their patrol plan.

Anning (安宁区, 620105), north of the river: 384 unit grids of about 100 m × 100 m in 8
streets (街道) of 4 communities (社区) each. Qilihe (七里河区, 620103), south of it: 192
unit grids in 4 streets of 4 communities. Codes are district + street + community +
sequence (numbered west→east, north→south within the community). Each district is
sketched on the map by geofence.citygen: lattice vertices are nudged a little so the grids
look surveyed rather than ruled, while neighbours still share every edge (no overlaps, no
gaps) and each district's outline stays straight. No grid lies in the river: the blocks
keep clear of its course (``YELLOW_RIVER``) on their own banks.

Two districts make the platform's two levels visible: city staff see both, a district's
staff see theirs. Run ``python -m tracker.devcity.city`` to rewrite
tracker/devcity/data/lanzhou-demo.geojson.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

from geofence.citygen import City, Districts
from geofence.districts import district_name


@dataclass(frozen=True, slots=True)
class DistrictLayout:
    code: str  # GB/T 2260
    streets: tuple[str, ...]  # west→east, then north→south, as the codes number them
    north_west: tuple[float, float]  # (lat, lon) of the block's north-west corner
    cols: int  # grids west→east
    rows: int  # grids north→south
    seed: int

    def city(self) -> City:
        return City(self.cols * self.rows, district=self.code, north_west=self.north_west, cols=self.cols,
                    community=COMMUNITY, street=STREET, street_names=self.streets, seed=self.seed, projected_crs=None,
                    fixed_border=True, bent_edges=False, title=f"{district_name(self.code)} ({self.code}) demo unit grids")


COMMUNITY = (3, 4)  # a community is 3 × 4 grids
STREET = (2, 2)  # a street is 2 × 2 communities (6 × 8 grids)
ANNING = DistrictLayout("620105", ("培黎街道", "西路街道", "沙井驿街道", "十里店街道", "孔家崖街道", "银滩路街道",
                                   "刘家堡街道", "安宁堡街道"),
                        north_west=(36.1118, 103.7058), cols=24, rows=16, seed=620105)  # 4 streets across, 2 down
QILIHE = DistrictLayout("620103", ("西园街道", "西湖街道", "敦煌路街道", "建兰路街道"),
                        north_west=(36.0770, 103.7520), cols=24, rows=8, seed=620103)  # 4 streets across
LAYOUTS = (ANNING, QILIHE)
PATH = Path(__file__).parent / "data" / "lanzhou-demo.geojson"

# The middle of the Yellow River between the two blocks, west to east, as (lat, lon).
# Approximate, not surveyed: it runs at about 36.09 N past Anning's Yintan (银滩) bank and
# falls south-eastward to about 36.08 N past Qilihe's Xihu (西湖) bank, some 200–300 m
# wide. The blocks keep RIVER_CLEARANCE_M from its middle, more than half its width.
YELLOW_RIVER = ((36.0935, 103.700), (36.0905, 103.730), (36.0860, 103.755), (36.0815, 103.780), (36.0770, 103.800))
RIVER_CLEARANCE_M = 300.0
_M_PER_DEG_LAT = 111_320.0


def metres_north_of_river(lat: float, lon: float) -> float:
    """How far north of the river's middle a point lies (negative: south of it), measured
    along its meridian; the river's course is taken as straight between the points given."""
    points = YELLOW_RIVER
    if not points[0][1] <= lon <= points[-1][1]:
        raise ValueError(f"longitude {lon} is beyond the stretch of river the demo city knows")
    for (lat0, lon0), (lat1, lon1) in pairwise(points):
        if lon <= lon1:
            river_lat = lat0 + (lat1 - lat0) * (lon - lon0) / (lon1 - lon0)
            return (lat - river_lat) * _M_PER_DEG_LAT
    raise AssertionError("unreachable: lon is within the river's stretch")


def demo_city() -> Districts:
    return Districts([layout.city() for layout in LAYOUTS], title="Lanzhou demo unit grids: Anning (620105) and Qilihe (620103)")


def communities_by_district(grid_doc: dict) -> dict[str, list[str]]:
    """The community codes (12 digits) of each district of a grid file, districts in the
    order the file lists them, communities in code order."""
    found: dict[str, set[str]] = defaultdict(set)
    for f in grid_doc["features"]:
        code = f["properties"]["code"]
        found[code[:6]].add(code[:12])
    return {district: sorted(communities) for district, communities in found.items()}


def share_out(count: int, weights: dict[str, int]) -> list[str]:
    """``count`` devices shared out among districts in proportion to their weights, as a
    list naming the district of device 0, 1, …: interleaved (smooth weighted round robin),
    so any few consecutive devices already cover every district, and a district's share
    of the first n devices never strays by a whole device from its proportion."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("no district to share devices among")
    credit = dict.fromkeys(weights, 0)
    order = []
    for _ in range(count):
        for district, weight in weights.items():
            credit[district] += weight
        chosen = max(credit, key=lambda d: credit[d])  # the first listed wins a tie
        credit[chosen] -= total
        order.append(chosen)
    return order


DEMO_ZONE = ZoneInfo("Asia/Shanghai")
FIRST_SLOT_LEFT_MIN = 34  # minutes left (at most 35, rounded up) of the slot running when the demo starts (see demo_plan)
SLOT_STAGGER_MIN = 3


def collector_areas(grid_doc: dict, collectors: int) -> dict[str, str]:
    """Which community each collector patrols: collectors are shared out among the
    districts by their number of communities, and a district's k-th collector patrols its
    community k (mod its communities). The simulator walks them there and the demo's
    plan assigns them there, from this one answer."""
    by_district = communities_by_district(grid_doc)
    seen: dict[str, int] = defaultdict(int)
    areas = {}
    for i, district in enumerate(share_out(collectors, {d: len(c) for d, c in by_district.items()})):
        communities = by_district[district]
        areas[collector_id(i)] = communities[seen[district] % len(communities)]
        seen[district] += 1
    return areas


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def collector_id(index: int) -> str:
    return f"c{index + 1:04d}"


def demo_plan(grid_doc: dict, collectors: int, started: datetime | None = None) -> dict:
    """The demo's patrol plan: one responsibility grid per community; each collector
    patrols the community ``collector_areas`` gives it, in its own district, in two-hour
    slots around the clock.

    ``started``: when the demo starts. Its slots are then laid so that the slot running at
    the start ends ``FIRST_SLOT_LEFT_MIN`` minutes later, a collector's a few minutes after
    the one before (in eight steps of ``SLOT_STAGGER_MIN``): the coverage warning, due
    ``[patrol] warning_lead_min`` before a slot ends, comes within minutes of the start
    for grids really not covered yet, and not for every collector in the same minute.
    Without it, slots start at even hours."""
    communities: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for f in grid_doc["features"]:
        code = f["properties"]["code"]
        communities.setdefault(code[:12], []).append(code)
        names[code[:12]] = f["properties"]["community_name"]
    areas = sorted(communities)
    shifts = []
    for i, (collector, area) in enumerate(collector_areas(grid_doc, collectors).items()):
        first = 0
        if started is not None:
            local = started.astimezone(DEMO_ZONE)
            first_end = local + timedelta(minutes=FIRST_SLOT_LEFT_MIN + (i % 8) * SLOT_STAGGER_MIN, seconds=59)
            first = (first_end.hour * 60 + first_end.minute) % 120  # minutes past midnight of the day's first slot
        for start in range(first, first + 24 * 60, 120):
            shifts.append({"collector": collector, "area": area, "days": "Mon-Sun",
                           "start": _hhmm(start), "end": _hhmm(start + 120)})
    return {
        "zone": DEMO_ZONE.key,
        "areas": {a: {"name": names[a], "grids": sorted(communities[a])} for a in areas},
        "shifts": shifts,
        "exceptions": [{"type": "holiday", "day": "2026-10-01", "name": "国庆节"}],
        # the simulated collectors walk through grid centres, not every street of a grid
        "rules": {"areas": {a: {"min_cell_share": 0.25} for a in areas}},
    }


if __name__ == "__main__":
    demo_city().write(PATH)
    print(f"wrote {PATH}")
