"""The districts a city's unit grids span: each district's code, name and extent.

A grid code begins with its county-level division's GB/T 2260 code, so the districts
come from the grids themselves; only their names come from the standard's table. The
table holds Lanzhou's divisions, the city this project is set up for; a district it does
not name is called by its code until the table names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# GB/T 2260 county-level divisions of Lanzhou (兰州市, 620100)
NAMES: Mapping[str, str] = {
    "620102": "城关区",
    "620103": "七里河区",
    "620104": "西固区",
    "620105": "安宁区",
    "620111": "红古区",
    "620121": "永登县",
    "620122": "皋兰县",
    "620123": "榆中县",
}


def district_name(code: str) -> str:
    return NAMES.get(code, code)


@dataclass(frozen=True, slots=True)
class DistrictExtent:
    code: str
    name: str
    grids: int
    bbox: tuple[float, float, float, float]  # west, south, east, north (GeoJSON order), degrees

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "grids": self.grids, "bbox": list(self.bbox)}


def district_extents(features: Iterable[Mapping[str, Any]]) -> list[DistrictExtent]:
    """The districts of unit grid features (GeoJSON, Polygon or MultiPolygon, with a 15-digit
    ``code``), in code order, each with its number of grids and the bounding box of their
    outer rings."""
    boxes: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for feature in features:
        district = str(feature["properties"]["code"])[:6]
        geometry = feature["geometry"]
        polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        lons = [p[0] for polygon in polygons for p in polygon[0]]
        lats = [p[1] for polygon in polygons for p in polygon[0]]
        if not lons:
            continue
        box = boxes.setdefault(district, [min(lons), min(lats), max(lons), max(lats)])
        box[:] = [min(box[0], *lons), min(box[1], *lats), max(box[2], *lons), max(box[3], *lats)]
        counts[district] = counts.get(district, 0) + 1
    return [DistrictExtent(code, district_name(code), counts[code], (box[0], box[1], box[2], box[3]))
            for code, box in sorted(boxes.items())]
