"""The demo city: unit grids over the core of Anning district, Lanzhou, and its patrol plan.

384 unit grids of about 100 m × 100 m in 8 streets (街道) of 4 communities (社区) each,
coded 620105 + street + community + sequence (numbered west→east, north→south within the
community), sketched on the map by geofence.citygen: lattice vertices are nudged a little
so the grids look surveyed rather than ruled, while neighbours still share every edge (no
overlaps, no gaps) and the district's outline stays straight.
Run ``python -m tracker.devcity.city`` to rewrite tracker/devcity/data/anning-demo.geojson.
"""

from __future__ import annotations

from pathlib import Path

from geofence.citygen import City

DISTRICT = "620105"
STREETS = ["培黎街道", "西路街道", "沙井驿街道", "十里店街道", "孔家崖街道", "银滩路街道", "刘家堡街道", "安宁堡街道"]
NORTH_WEST = (36.1118, 103.7058)  # (lat, lon)
COLS, ROWS = 24, 16  # grids west→east, north→south
COMMUNITY = (3, 4)  # a community is 3 × 4 grids
STREET = (2, 2)  # a street is 2 × 2 communities (6 × 8 grids): 4 streets across, 2 down
SEED = 620105
PATH = Path(__file__).parent / "data" / "anning-demo.geojson"


def demo_city() -> City:
    return City(COLS * ROWS, district=DISTRICT, north_west=NORTH_WEST, cols=COLS, community=COMMUNITY, street=STREET,
                street_names=STREETS, seed=SEED, projected_crs=None, fixed_border=True, bent_edges=False,
                title=f"Anning district ({DISTRICT}) demo unit grids")


def demo_plan(grid_doc: dict, collectors: int) -> dict:
    """The demo's patrol plan: one responsibility grid per community; collector i patrols
    community i mod 32 (as the simulator walks them) in two-hour slots around the clock,
    so a few minutes of demo show coverage building up and alerts being raised."""
    communities: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for f in grid_doc["features"]:
        code = f["properties"]["code"]
        communities.setdefault(code[:12], []).append(code)
        names[code[:12]] = f["properties"]["community_name"]
    areas = sorted(communities)
    shifts = []
    for i in range(collectors):
        area = areas[i % len(areas)]
        for start in range(0, 24, 2):
            shifts.append({"collector": f"c{i + 1:04d}", "area": area, "days": "Mon-Sun",
                           "start": f"{start:02d}:00", "end": f"{(start + 2) % 24:02d}:00"})
    return {
        "zone": "Asia/Shanghai",
        "areas": {a: {"name": names[a], "grids": sorted(communities[a])} for a in areas},
        "shifts": shifts,
        "exceptions": [{"type": "holiday", "day": "2026-10-01", "name": "国庆节"}],
        # the simulated collectors walk through grid centres, not every street of a grid
        "rules": {"areas": {a: {"min_cell_share": 0.25} for a in areas}},
    }


if __name__ == "__main__":
    demo_city().write(PATH)
    print(f"wrote {PATH}")
