"""The demo city: unit grids over the core of Anning district, Lanzhou.

384 unit grids of about 100 m × 100 m in 8 streets (街道) of 4 communities (社区) each,
coded 620105 + street + community + sequence (numbered west→east, north→south within the
community). Lattice vertices are nudged a little so the grids look surveyed rather than
ruled, while neighbours still share every edge (no overlaps, no gaps).
Run ``python -m tracker.devcity.city`` to rewrite tracker/devcity/data/anning-demo.geojson.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

DISTRICT = "620105"
STREETS = ["培黎街道", "西路街道", "沙井驿街道", "十里店街道", "孔家崖街道", "银滩路街道", "刘家堡街道", "安宁堡街道"]
ORIGIN = (36.1118, 103.7058)  # north-west corner (lat, lon)
COLS, ROWS = 24, 16  # grids west→east, north→south
STREET_COLS, STREET_ROWS = 6, 8  # a street is 6 × 8 grids: 4 across, 2 down
COMMUNITY_COLS, COMMUNITY_ROWS = 3, 4  # a community is 3 × 4 grids: 2 × 2 per street
CELL_M = 100.0
PATH = Path(__file__).parent / "data" / "anning-demo.geojson"


def _deg_per_m(lat: float) -> tuple[float, float]:
    return 1 / 111_320.0, 1 / (111_320.0 * math.cos(math.radians(lat)))


def generate(seed: int = 620105) -> dict:
    rng = random.Random(seed)
    dlat, dlon = _deg_per_m(ORIGIN[0])
    vertices = {}
    for r in range(ROWS + 1):
        for c in range(COLS + 1):
            border = r in (0, ROWS) or c in (0, COLS)
            jy = 0 if border else rng.uniform(-12, 12)
            jx = 0 if border else rng.uniform(-12, 12)
            vertices[r, c] = (
                round(ORIGIN[1] + (c * CELL_M + jx) * dlon, 7),
                round(ORIGIN[0] - (r * CELL_M + jy) * dlat, 7),
            )
    features = []
    for r in range(ROWS):
        for c in range(COLS):
            street_index = (r // STREET_ROWS) * (COLS // STREET_COLS) + c // STREET_COLS
            sr, sc = r % STREET_ROWS, c % STREET_COLS
            community_index = (sr // COMMUNITY_ROWS) * (STREET_COLS // COMMUNITY_COLS) + sc // COMMUNITY_COLS
            seq = (sr % COMMUNITY_ROWS) * COMMUNITY_COLS + sc % COMMUNITY_COLS + 1
            street = f"{street_index + 1:03d}"
            community = f"{community_index + 1:03d}"
            code = f"{DISTRICT}{street}{community}{seq:03d}"
            ring = [vertices[r, c], vertices[r, c + 1], vertices[r + 1, c + 1], vertices[r + 1, c], vertices[r, c]]
            street_name = STREETS[street_index]
            features.append({
                "type": "Feature",
                "properties": {
                    "code": code,
                    "name": f"{street_name}{community_index + 1}社区{seq}号网格",
                    "street_name": street_name,
                    "community_name": f"{street_name[:-2]}第{community_index + 1}社区",
                },
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
            })
    return {
        "type": "FeatureCollection",
        "name": "Anning district (620105) demo unit grids",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "features": features,
    }


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
    PATH.write_text(json.dumps(generate(), ensure_ascii=False, indent=None) + "\n", encoding="utf-8")
    print(f"wrote {PATH}")
