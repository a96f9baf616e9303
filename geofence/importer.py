"""Import unit-grid polygons: GeoJSON in, validated WGS-84 grids with an H3 cover out.

The same path serves a city's own survey polygons and the demo city. Source coordinates
may be WGS-84, CGCS2000 (geographic or Gauss-Krüger) or any EPSG CRS (through pyproj),
GCJ-02 or BD-09; they are converted to WGS-84 once, here, and the original geometry is
kept beside the converted one.

Validation names every problem and refuses the file if any feature is wrong: bad codes,
duplicate codes, geometry that is not a valid polygon (self-intersecting rings above
all), overlapping neighbours. Holes enclosed by grids are warnings: positions there
belong to no grid, which may be intended (a lake, a closed compound).

The H3 cover assigns each cell whose centre lies in a grid to that grid, so on a proper
tessellation every cell belongs to exactly one grid. A grid too small to contain any cell
centre gets the cell under its representative point, when no other grid holds it.

A little over the house's ~500 lines: reading, converting, validating and covering are
one path whose report names every problem in the file; they share its feature records.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import shapely
import shapely.errors
from h3.api import basic_int as h3
from pyproj import CRS, Geod, Transformer
from shapely.geometry import shape
from shapely.strtree import STRtree

from protocols.coords import bd09_to_gcj02, gcj02_to_wgs84

GRID_CODE = re.compile(r"^\d{15}$")
# First two digits of a GB/T 2260 admin code: the province-level divisions.
# (SIM905 waived: the codes stay one string, as the standard prints its table)
PROVINCES = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split())  # noqa: SIM905
_GEOD = Geod(ellps="WGS84")
WGS84_NAMES = {"EPSG:4326", "WGS84", "WGS-84", "CRS84", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "URN:OGC:DEF:CRS:EPSG::4326"}
# CGCS2000 and WGS-84 differ by centimetres: pyproj treats it as an ordinary EPSG CRS.
# A share of the smaller grid's area above which an overlap refuses the file; below it,
# the overlap is a digitising sliver, worth a warning only.
OVERLAP_SHARE = 0.01
MAX_LISTED_HOLES = 20


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
    errors: list[str] = field(default_factory=list)  # the file is refused
    warnings: list[str] = field(default_factory=list)  # imported, but worth a look

    @property
    def ok(self) -> bool:
        return not self.errors


def code_problem(code: str) -> str | None:
    """Why ``code`` is not a unit grid code (GB/T 2260 district + street + community +
    sequence, 6 + 3 + 3 + 3 digits, each part numbered from 001), or None."""
    if not GRID_CODE.match(code):
        return "a unit grid code is 15 digits (district 6, street 3, community 3, sequence 3)"
    if code[:2] not in PROVINCES:
        return f"{code[:6]} is not a county-level admin code (GB/T 2260)"
    for part, digits in (("street", code[6:9]), ("community", code[9:12]), ("sequence", code[12:])):
        if digits == "000":
            return f"its {part} number is 000 (numbering starts at 001)"
    return None


def normalise_crs(name: str) -> str:
    name = str(name).strip().upper()
    if name in WGS84_NAMES:
        return "EPSG:4326"
    m = re.search(r"EPSG:+(\d+)$", name)
    return f"EPSG:{m.group(1)}" if m else name


def _crs_of(doc: dict, override: str | None) -> str:
    if override:
        return normalise_crs(override)
    named = (doc.get("crs") or {}).get("properties", {}).get("name") if isinstance(doc.get("crs"), dict) else None
    if not named:
        return "EPSG:4326"  # RFC 7946: GeoJSON is WGS-84 unless it says otherwise
    return normalise_crs(named)


def crs_urn(crs_name: str) -> str:
    """The GeoJSON (2008) ``crs`` name for a CRS as the importer records it."""
    if crs_name == "EPSG:4326":
        return "urn:ogc:def:crs:OGC:1.3:CRS84"
    m = re.fullmatch(r"EPSG:(\d+)", crs_name)
    return f"urn:ogc:def:crs:EPSG::{m.group(1)}" if m else crs_name


# (x, y) arrays in the source CRS → (lon, lat) arrays in WGS-84
PointsTransform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
CHUNK = 500  # features converted and checked together (one pyproj call per chunk)


def _transformer(crs_name: str) -> PointsTransform:
    if crs_name == "EPSG:4326":
        return lambda x, y: (x, y)
    if crs_name in ("GCJ02", "GCJ-02", "BD09", "BD-09"):
        baidu = crs_name.startswith("BD")

        def datum(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lon, lat = np.empty_like(x), np.empty_like(y)
            for i, (a, b) in enumerate(zip(x.tolist(), y.tolist(), strict=True)):
                la, lo = bd09_to_gcj02(b, a) if baidu else (b, a)
                lat[i], lon[i] = gcj02_to_wgs84(la, lo)
            return lon, lat

        return datum
    t = _to_wgs84(crs_name)
    return lambda x, y: t.transform(x, y)


def _to_wgs84(crs_name: str) -> Transformer:
    found = _crs_lookup(crs_name)
    if isinstance(found, str):
        raise ImportError_(found)
    return found


@functools.lru_cache(maxsize=64)
def _crs_lookup(crs_name: str) -> Transformer | str:
    # building a transformer costs ~0.1 s and failing to find a name up to a second, so
    # both are remembered; pyproj's transformers are safe to share between threads
    try:
        source = CRS.from_user_input(crs_name)
    except Exception as exc:  # pyproj raises its own CRSError family
        return f"unknown coordinate reference system {crs_name!r}: {exc}"
    return Transformer.from_crs(source, "EPSG:4326", always_xy=True)


def _rings_of(geometry: dict) -> list[list[np.ndarray]]:
    """Polygons as lists of closed rings, each an (n, 2) float array, as given."""
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    if not isinstance(polys, list) or not polys:
        raise ValueError("no polygon in the geometry")
    out = []
    for poly in polys:
        if not isinstance(poly, list) or not poly:
            raise ValueError("a polygon needs at least an outer ring")
        rings = []
        for ring in poly:
            arr = np.array([(p[0], p[1]) for p in ring], dtype=float).reshape(-1, 2)
            if len(arr) and (arr[0] != arr[-1]).any():
                arr = np.vstack([arr, arr[:1]])
            rings.append(arr)
        out.append(rings)
    return out


VECTOR_SUFFIXES = (".gpkg", ".shp", ".zip")


def read_grids(path: str | Path, crs: str | None = None, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Any supported grid file: GeoJSON, or GeoPackage / Shapefile through GDAL (pyogrio)."""
    if str(path).lower().endswith(VECTOR_SUFFIXES):
        return read_vector(path, crs, progress)
    return read_geojson(path, crs, progress)


def read_vector(path: str | Path, crs: str | None = None, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """A GeoPackage or Shapefile layer of unit grids, with the same attribute names as the
    GeoJSON form (code, name, street_name, community_name); its CRS comes from the file
    unless ``crs`` overrides it."""
    import pyogrio.raw
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        meta, _fids, wkb, values = pyogrio.raw.read(str(path))
    except (DataSourceError, DataLayerError, OSError) as exc:
        raise ImportError_(f"{path}: not a readable GeoPackage or Shapefile: {exc}") from None
    if wkb is None:
        raise ImportError_(f"{path}: the layer has no geometry column")
    names = [_FIELD_ALIASES.get(str(n).lower(), str(n)) for n in meta["fields"]]
    features = []
    for i, blob in enumerate(wkb):
        props = {name: _plain(values[j][i]) for j, name in enumerate(names)}
        geometry = mapping_to_dict(shapely.from_wkb(blob)) if blob is not None else None
        features.append({"type": "Feature", "properties": props, "geometry": geometry})
    source_crs = crs or meta.get("crs") or "EPSG:4326"
    return parse_features(features, _crs_of({"crs": {"properties": {"name": source_crs}}}, None), progress)


# Shapefile field names stop at 10 characters: GDAL's laundered forms of ours
_FIELD_ALIASES = {"street_nam": "street_name", "community_": "community_name", "comm_name": "community_name"}


def _plain(value: object) -> object:
    """numpy scalars from GDAL fields → plain Python, as JSON would have given."""
    return value.item() if hasattr(value, "item") else value


def read_geojson(path: str | Path, crs: str | None = None, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportError_(f"{path}: not readable GeoJSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise ImportError_(f"{path}: expected a GeoJSON FeatureCollection")
    return parse_features(doc["features"], _crs_of(doc, crs), progress)


@dataclass(slots=True)
class _Shape:
    label: str  # the grid code, or "feature N" when the code is unusable
    geom: object  # shapely geometry, WGS-84


@dataclass(slots=True)
class _Candidate:
    n: int
    where: str
    code: str | None  # None: the code is refused, the geometry is still checked
    props: dict
    geometry: dict
    crs: str
    polys: list[list[np.ndarray]]  # WGS-84 once converted


def parse_features(features: Iterable[dict], crs_name: str, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Validate features into grids. A feature may name its own ``crs`` (GeoJSON 2008),
    as an export of grids from several source CRSs does; else ``crs_name`` applies."""
    crs_name = normalise_crs(crs_name)
    report = ImportReport()
    try:
        transformers: dict[str, PointsTransform] = {crs_name: _transformer(crs_name)}
    except ImportError_ as exc:
        report.errors.append(str(exc))
        return report
    seen: dict[str, int] = {}
    features = list(features)
    total = len(features)
    shapes: list[_Shape] = []  # every valid polygon, whatever its code: neighbours are checked on all
    footprints: list[shapely.Geometry] = []  # the outline hull of refused polygons, where holes are theirs, not the file's
    names: dict[str, dict[str, set[str]]] = {"street": {}, "community": {}}
    for start in range(0, total, CHUNK):
        chunk: list[_Candidate] = []
        for n, feature in enumerate(features[start:start + CHUNK], start + 1):
            candidate = _candidate(n, feature, crs_name, transformers, seen, report)
            if candidate is not None:
                chunk.append(candidate)
        _convert(chunk, transformers)
        for c in chunk:
            grid = _check_geometry(c, report, shapes, footprints)
            if grid is not None:
                names["street"].setdefault(grid.street, set()).add(grid.street_name)
                names["community"].setdefault(grid.community, set()).add(grid.community_name)
                report.grids.append(grid)
        if progress:
            progress(min(start + CHUNK, total), total)
    for level, by_code in names.items():
        for code, given in sorted(by_code.items()):
            if len(given) > 1:
                report.warnings.append(f"{level} {code} is named differently by its grids: {', '.join(sorted(given))}")
    _check_neighbours(report, shapes, footprints)
    return report


def _candidate(n: int, feature, crs_name: str, transformers: dict, seen: dict[str, int], report: ImportReport) -> _Candidate | None:
    """Code and geometry type of one feature; None if there is no geometry to check."""
    if not isinstance(feature, dict) or feature.get("type") not in ("Feature", None):
        report.errors.append(f"feature {n}: not a GeoJSON Feature")
        return None
    props = feature.get("properties")
    if not isinstance(props, dict):
        props = {}
    raw_code = props.get("code")
    code = str(raw_code).strip() if raw_code is not None else ""
    where = f"feature {n} ({code})" if code else f"feature {n} (no code)"
    problem = code_problem(code)
    if problem:
        report.errors.append(f"{where}: bad code {code!r}: {problem}")
    elif code in seen:
        report.errors.append(f"{where}: duplicate code {code}, also used by feature {seen[code]}")
    else:
        seen[code] = n
    good_code = code if not problem and seen.get(code) == n else None
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        kind = geometry.get("type") if isinstance(geometry, dict) else type(geometry).__name__
        report.errors.append(f"{where}: geometry must be a Polygon or MultiPolygon, got {kind}")
        return None
    feature_crs = crs_name
    if isinstance(feature.get("crs"), dict):
        feature_crs = normalise_crs((feature["crs"].get("properties") or {}).get("name") or crs_name)
    if feature_crs not in transformers:
        try:
            transformers[feature_crs] = _transformer(feature_crs)
        except ImportError_ as exc:
            report.errors.append(f"{where}: {exc}")
            return None
    try:
        polys = _rings_of(geometry)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        report.errors.append(f"{where}: malformed coordinates: {exc}")
        return None
    return _Candidate(n, where, good_code, props, geometry, feature_crs, polys)


def _convert(chunk: list[_Candidate], transformers: dict[str, PointsTransform]) -> None:
    """Source coordinates → WGS-84, one call per CRS for the whole chunk."""
    by_crs: dict[str, list[_Candidate]] = {}
    for c in chunk:
        by_crs.setdefault(c.crs, []).append(c)
    for crs, members in by_crs.items():
        if crs == "EPSG:4326":
            continue
        rings = [r for c in members for poly in c.polys for r in poly]
        if not rings:
            continue
        xy = np.vstack(rings)
        lon, lat = transformers[crs](np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1]))
        converted = np.column_stack([lon, lat])
        at = 0
        for c in members:
            for poly in c.polys:
                for i, ring in enumerate(poly):
                    poly[i] = converted[at:at + len(ring)]
                    at += len(ring)


def _check_geometry(c: _Candidate, report: ImportReport, shapes: list[_Shape], footprints: list) -> GridPolygon | None:
    coords = np.vstack([r for poly in c.polys for r in poly])
    if not (np.isfinite(coords).all() and (np.abs(coords[:, 0]) <= 180).all() and (np.abs(coords[:, 1]) <= 90).all()):
        report.errors.append(f"{c.where}: coordinates are not positions on Earth once converted from {c.crs}: is that the right CRS?")
        return None
    try:
        polygons = [shapely.Polygon(poly[0], poly[1:]) for poly in c.polys]
    except (ValueError, shapely.errors.GEOSException) as exc:
        report.errors.append(f"{c.where}: invalid polygon ({exc})")
        return None
    geom = polygons[0] if c.geometry["type"] == "Polygon" else shapely.MultiPolygon(polygons)
    if geom.is_empty:
        report.errors.append(f"{c.where}: invalid polygon (empty)")
        return None
    if not geom.is_valid:
        report.errors.append(f"{c.where}: {_invalid_reason(geom)}")
        footprints.append(shapely.convex_hull(shapely.MultiPoint(coords)))
        return None
    shapes.append(_Shape(c.code or f"feature {c.n}", geom))
    if c.code is None:
        return None
    area = 0.0
    for poly in c.polys:
        for i, ring in enumerate(poly):
            ring_area = abs(_GEOD.polygon_area_perimeter(ring[:, 0], ring[:, 1])[0])
            area += ring_area if i == 0 else -ring_area
    rings = [[r.tolist() for r in poly] for poly in c.polys]
    wgs = {"type": "Polygon", "coordinates": rings[0]} if c.geometry["type"] == "Polygon" else {"type": "MultiPolygon", "coordinates": rings}
    code, props = c.code, c.props
    name = props.get("name")
    return GridPolygon(
        code=code,
        name=None if name is None else str(name),
        street_name=str(props.get("street_name") or code[:9]),
        community_name=str(props.get("community_name") or code[:12]),
        geometry=wgs,
        source_geometry=c.geometry,
        source_crs=c.crs,
        area_m2=round(area, 1),
    )


def _geodesic_area(geom) -> float:
    return abs(_GEOD.geometry_area_perimeter(geom)[0])


def _invalid_reason(poly) -> str:
    reason = shapely.is_valid_reason(poly)
    m = re.match(r"(?:Ring )?Self-intersection\[([-\d.e]+) ([-\d.e]+)\]", reason)
    if m:
        lon, lat = float(m.group(1)), float(m.group(2))
        return f"self-intersecting polygon: its outline crosses itself at {lat:.6f}, {lon:.6f}"
    return f"invalid polygon ({reason})"


def _check_neighbours(report: ImportReport, shapes: list[_Shape], footprints: list) -> None:
    """Overlaps between grids are errors (slivers warnings); holes enclosed by grids are
    warnings. A proper tessellation (every edge shared) takes a fast path."""
    if not shapes:
        return
    geoms = np.array([s.geom for s in shapes])
    tessellation = bool(shapely.coverage_is_valid(geoms))
    tree = STRtree(geoms)
    if not tessellation:
        left, right = tree.query(geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        inner = shapely.relate_pattern(geoms[left], geoms[right], "T********")
        for i, j in zip(left[inner], right[inner], strict=True):
            a, b = shapes[i], shapes[j]
            overlap = shapely.intersection(a.geom, b.geom)
            area = _geodesic_area(overlap)
            smaller = min(_geodesic_area(a.geom), _geodesic_area(b.geom))
            share = area / smaller if smaller else 1.0
            where = overlap.representative_point()
            message = (f"grids {a.label} and {b.label} overlap by {area:.1f} m² ({share:.0%} of the smaller) "
                       f"around {where.y:.6f}, {where.x:.6f}")
            if share > OVERLAP_SHARE:
                report.errors.append(f"overlap: {message}")
            elif area > 0:
                report.warnings.append(f"sliver overlap: {message}")
    union = shapely.coverage_union_all(geoms) if tessellation else shapely.union_all(geoms)
    holes = [shapely.Polygon(ring) for poly in getattr(union, "geoms", [union]) for ring in poly.interiors]
    holes = [h for h in holes if not any(h.intersection(f).area > 0.01 * h.area for f in footprints)]
    for hole in holes[:MAX_LISTED_HOLES]:
        around = sorted(shapes[i].label for i in tree.query(hole, predicate="intersects"))
        where = hole.representative_point()
        report.warnings.append(f"hole of {_geodesic_area(hole):.1f} m² at {where.y:.6f}, {where.x:.6f} enclosed by grids "
                               f"{', '.join(around)}: positions there belong to no grid")
    if len(holes) > MAX_LISTED_HOLES:
        report.warnings.append(f"{len(holes) - MAX_LISTED_HOLES} more hole(s) between grids: positions there belong to no grid")


def mapping_to_dict(geom) -> dict:
    return json.loads(shapely.to_geojson(geom))


def cover(grids: list[GridPolygon], resolution: int) -> tuple[dict[int, str], list[str]]:
    """H3 cover: cell → grid code, each cell in exactly one grid. Returns problems too."""
    owner: dict[int, str] = {}
    problems = []
    for g in grids:
        for c in h3.geo_to_cells(g.geometry, resolution):
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


class _Row(Protocol):
    """A row read by column name: a dict, or a database record as the store returns it."""

    def __getitem__(self, column: str, /) -> Any: ...


def to_feature_collection(rows: Iterable[_Row], source: bool = False) -> dict:
    """Export grids (as the store returns them) back to GeoJSON.

    ``source``: the original geometry, with its CRS named so the file imports again: on
    the collection when every grid came in one CRS, else on each feature.
    """
    features = []
    crss = set()
    for r in rows:
        geometry = r["source_geometry"] if source else r["geometry"]
        feature = {
            "type": "Feature",
            "geometry": json.loads(geometry) if isinstance(geometry, str) else geometry,
            "properties": {
                "code": r["code"], "name": r["name"], "district": r["district"],
                "street": r["street"], "street_name": r["street_name"],
                "community": r["community"], "community_name": r["community_name"],
            },
        }
        if source:
            crss.add(r["source_crs"])
            feature["crs"] = {"type": "name", "properties": {"name": crs_urn(r["source_crs"])}}
        features.append(feature)
    doc: dict = {"type": "FeatureCollection", "features": features}
    if source and len(crss) == 1:
        doc["crs"] = {"type": "name", "properties": {"name": crs_urn(crss.pop())}}
        for feature in features:
            del feature["crs"]
    return doc

