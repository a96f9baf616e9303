"""Import unit-grid polygons: GeoJSON in, validated WGS-84 grids with an H3 cover out.

The same path serves a city's own survey polygons and the demo city. Source coordinates
may be WGS-84, CGCS2000 or any EPSG CRS (through pyproj), or GCJ-02; they are converted
to WGS-84 once, here, and the original geometry is kept beside the converted one.

The H3 cover assigns each cell whose centre lies in a grid to that grid, so on a proper
tessellation every cell belongs to exactly one grid. A grid too small to contain any cell
centre gets the cell under its representative point, when no other grid holds it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import shapely
from h3.api import basic_int as h3
from pyproj import CRS, Geod, Transformer
from shapely.geometry import mapping, shape
from shapely.strtree import STRtree

from protocols.coords import gcj02_to_wgs84

GRID_CODE = re.compile(r"^\d{15}$")
_GEOD = Geod(ellps="WGS84")
WGS84_NAMES = {"EPSG:4326", "WGS84", "WGS-84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "URN:OGC:DEF:CRS:EPSG::4326"}
# CGCS2000 and WGS-84 differ by centimetres: pyproj treats it as an ordinary EPSG CRS.


class ImportError_(ValueError):
    """The file cannot be imported at all (not GeoJSON, unknown CRS)."""


@dataclass(frozen=True, slots=True)
class GridPolygon:
    code: str
    name: str | None
    street_name: str
    community_name: str
    geometry: dict  # WGS-84 GeoJSON geometry
    source_geometry: dict
    source_crs: str
    area_m2: float

    @property
    def district(self) -> str:
        return self.code[:6]

    @property
    def street(self) -> str:
        return self.code[:9]

    @property
    def community(self) -> str:
        return self.code[:12]


@dataclass(slots=True)
class ImportReport:
    grids: list[GridPolygon] = field(default_factory=list)
    cover: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the feature is refused
    warnings: list[str] = field(default_factory=list)  # imported, but worth a look

    @property
    def ok(self) -> bool:
        return not self.errors


def _crs_of(doc: dict, override: str | None) -> str:
    if override:
        return override.upper()
    named = (doc.get("crs") or {}).get("properties", {}).get("name")
    if not named:
        return "EPSG:4326"  # RFC 7946: GeoJSON is WGS-84 unless it says otherwise
    named = str(named).upper()
    m = re.search(r"EPSG:+(\d+)$", named)
    return f"EPSG:{m.group(1)}" if m else named


def _transformer(crs_name: str) -> Callable[[float, float], tuple[float, float]]:
    """(x, y) in the source CRS → (lon, lat) in WGS-84."""
    if crs_name in WGS84_NAMES:
        return lambda x, y: (x, y)
    if crs_name in ("GCJ02", "GCJ-02"):
        def gcj(x: float, y: float) -> tuple[float, float]:
            lat, lon = gcj02_to_wgs84(y, x)
            return lon, lat
        return gcj
    try:
        source = CRS.from_user_input(crs_name)
    except Exception as exc:  # pyproj raises its own CRSError family
        raise ImportError_(f"unknown coordinate reference system {crs_name!r}: {exc}") from None
    t = Transformer.from_crs(source, "EPSG:4326", always_xy=True)
    return lambda x, y: t.transform(x, y)


def _map_coords(geometry: dict, fn: Callable[[float, float], tuple[float, float]]) -> dict:
    def ring(coords):
        return [list(fn(c[0], c[1])) for c in coords]

    if geometry["type"] == "Polygon":
        return {"type": "Polygon", "coordinates": [ring(r) for r in geometry["coordinates"]]}
    return {"type": "MultiPolygon", "coordinates": [[ring(r) for r in poly] for poly in geometry["coordinates"]]}


def read_geojson(path: str | Path, crs: str | None = None, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportError_(f"{path}: not readable GeoJSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise ImportError_(f"{path}: expected a GeoJSON FeatureCollection")
    return parse_features(doc["features"], _crs_of(doc, crs), progress)


def parse_features(features: Iterable[dict], crs_name: str, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    to_wgs84 = _transformer(crs_name)
    report = ImportReport()
    seen: dict[str, int] = {}
    features = list(features)
    shapes = []
    for n, feature in enumerate(features, 1):
        where = f"feature {n}"
        props = feature.get("properties") or {} if isinstance(feature, dict) else {}
        code = str(props.get("code", "")).strip()
        where = f"feature {n} ({code or 'no code'})"
        if not GRID_CODE.match(code):
            report.errors.append(f"{where}: grid code must be 15 digits, got {code!r}")
            continue
        if code in seen:
            report.errors.append(f"{where}: duplicate code, first seen in feature {seen[code]}")
            continue
        seen[code] = n
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
            report.errors.append(f"{where}: geometry must be a Polygon or MultiPolygon")
            continue
        try:
            wgs = _map_coords(geometry, to_wgs84)
            poly = shape(wgs)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            report.errors.append(f"{where}: malformed coordinates: {exc}")
            continue
        if poly.is_empty or not poly.is_valid:
            reason = shapely.is_valid_reason(poly) if not poly.is_empty else "empty"
            report.errors.append(f"{where}: invalid polygon ({reason})")
            continue
        area = abs(_GEOD.geometry_area_perimeter(poly)[0])
        report.grids.append(GridPolygon(
            code=code,
            name=props.get("name"),
            street_name=str(props.get("street_name") or code[:9]),
            community_name=str(props.get("community_name") or code[:12]),
            geometry=mapping_to_dict(poly),
            source_geometry=geometry,
            source_crs=crs_name,
            area_m2=round(area, 1),
        ))
        shapes.append(poly)
        if progress:
            progress(n, len(features))
    _check_neighbours(report, shapes)
    return report


def mapping_to_dict(geom) -> dict:
    return json.loads(json.dumps(mapping(geom)))


def _check_neighbours(report: ImportReport, shapes: list) -> None:
    """Overlaps between grids are errors; gaps enclosed by grids are warnings."""
    if not shapes:
        return
    tree = STRtree(shapes)
    for i, a in enumerate(shapes):
        for j in tree.query(a):
            if j <= i:
                continue
            overlap = a.intersection(shapes[j]).area
            if overlap > 1e-12 and overlap / min(a.area, shapes[j].area) > 0.01:
                report.errors.append(f"grids {report.grids[i].code} and {report.grids[j].code} overlap")
    union = shapely.union_all(shapes)
    polys = getattr(union, "geoms", [union])
    holes = sum(len(p.interiors) for p in polys)
    if holes:
        report.warnings.append(f"{holes} hole(s) between neighbouring grids: positions there belong to no grid")


def cover(grids: list[GridPolygon], resolution: int) -> tuple[dict[int, str], list[str]]:
    """H3 cover: cell → grid code, each cell in exactly one grid. Returns problems too."""
    owner: dict[int, str] = {}
    problems = []
    for g in grids:
        cells = h3.geo_to_cells(g.geometry, resolution)
        for c in cells:
            other = owner.setdefault(c, g.code)
            if other != g.code:
                problems.append(f"cell {h3.int_to_str(c)} claimed by {other} and {g.code}; kept for {other}")
    counts: dict[str, int] = {}
    for code in owner.values():
        counts[code] = counts.get(code, 0) + 1
    for g in grids:
        if counts.get(g.code):
            continue
        point = shape(g.geometry).representative_point()
        c = h3.latlng_to_cell(point.y, point.x, resolution)
        if c in owner:
            problems.append(f"grid {g.code} is smaller than one H3 cell at resolution {resolution} and its cell belongs to {owner[c]}")
        else:
            owner[c] = g.code
    return owner, problems


def to_feature_collection(rows: Iterable[dict], source: bool = False) -> dict:
    """Export grids (as the store returns them) back to GeoJSON."""
    features = []
    for r in rows:
        geometry = r["source_geometry"] if source else r["geometry"]
        features.append({
            "type": "Feature",
            "geometry": json.loads(geometry) if isinstance(geometry, str) else geometry,
            "properties": {
                "code": r["code"], "name": r["name"], "district": r["district"],
                "street": r["street"], "street_name": r["street_name"],
                "community": r["community"], "community_name": r["community_name"],
            },
        })
    doc = {"type": "FeatureCollection", "features": features}
    return doc
