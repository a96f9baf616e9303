"""Synthetic cities of unit grids: the demo city, and larger ones for tests and benchmarks.

A city is laid out the way a survey bureau draws one: a lattice of unit grids of about
100 m × 100 m in the CGCS2000 3-degree Gauss-Krüger plane, whose vertices and edge
midpoints are nudged so the grids look surveyed rather than ruled. Neighbours share every
vertex (no overlaps, no gaps). Communities are blocks of grids, streets blocks of
communities; codes are district + street + community + sequence, each numbered
west→east, north→south, as the standard numbers them.

The same city can be written in WGS-84 or in the projected CRS it was drawn in, so an
import can be checked to convert one into the other. Errors a real file brings (bad and
duplicate codes, self-intersecting rings, overlapping neighbours, holes) can be seeded
at known places. A city can also be sketched straight on the WGS-84 map, with straight
edges and an unnudged outline, as the demo city is (tracker.devcity.city).

    python -m geofence.citygen 4137 chengguan.geojson [--crs EPSG:4544] [--seed 7] [--damage]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyproj import Transformer

# Chengguan district, Lanzhou (城关区): the city centre, Shimin Square.
DISTRICT = "620102"
CENTRE = (36.062, 103.835)  # lat, lon
# Lanzhou (103.5–104.2 E) lies in the 3-degree zone of central meridian 105 E.
PROJECTED_CRS = "EPSG:4544"  # CGCS2000 / 3-degree Gauss-Kruger CM 105E
STREET_NAMES = [
    "酒泉路街道", "张掖路街道", "雁南街道", "临夏路街道", "雁北街道", "五泉街道", "白银路街道",
    "皋兰路街道", "广武门街道", "伏龙坪街道", "靖远路街道", "草场后街街道", "火车站街道",
    "拱星墩街道", "东岗西路街道", "铁路东村街道", "铁路西村街道", "渭源路街道", "盐场路街道",
    "嘉峪关路街道", "焦家湾街道", "东岗街道", "团结新村街道", "青白石街道", "九州街道",
]
# The scale of a city sketched on the map (projected_crs=None): metres in a degree of
# latitude, and of longitude times the cosine of the anchor's latitude. The demo city was
# drawn with it; it stays so that city's file does not change.
MAP_M_PER_DEG = 111_320.0


@functools.lru_cache(maxsize=8)
def transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def _urn(crs: str) -> str:
    authority, _, code = crs.partition(":")
    if authority.upper() == "EPSG" and code.isdigit():
        return f"urn:ogc:def:crs:EPSG::{code}"
    return crs


@dataclass
class Grid:
    row: int
    col: int
    code: str
    name: str
    street_name: str
    community_name: str
    # closed ring in the plane the city is drawn in, (x east, y north): projected metres,
    # or (lon, lat) degrees for a city sketched on the map
    ring: list[tuple[float, float]]


@dataclass
class Seeded:
    """Where errors were seeded: what a validation report has to name."""

    bad_codes: list[str] = field(default_factory=list)  # the bad codes as written
    duplicate_codes: list[str] = field(default_factory=list)  # a code given to a second grid
    self_intersecting: list[str] = field(default_factory=list)  # codes of bow-tie rings
    overlaps: list[tuple[str, str]] = field(default_factory=list)  # (grown grid, the neighbour it covers)
    holes: list[tuple[str, tuple[float, float]]] = field(default_factory=list)  # (removed grid, (lat, lon) inside)


class _Survey:
    """A city drawn in a projected CRS, in metres (x east, y north) from the north-west
    corner (x0, y0), as a survey bureau draws one."""

    def __init__(self, crs: str, x0: float, y0: float, grid_m: float) -> None:
        self.crs, self.x0, self.y0, self.grid_m = crs, x0, y0, grid_m

    def corner(self, row: int, col: int, nudge: Callable[[], float]) -> tuple[float, float]:
        return self.x0 + col * self.grid_m + nudge(), self.y0 - row * self.grid_m + nudge()

    def midpoint(self, a: tuple[float, float], b: tuple[float, float], nudge: Callable[[], float]) -> tuple[float, float]:
        return (a[0] + b[0]) / 2 + nudge() / 2, (a[1] + b[1]) / 2 + nudge() / 2

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        return transformer(self.crs, "EPSG:4326").transform(x, y)


class _Sketch:
    """A city drawn straight on the WGS-84 map, (lon, lat) from the north-west corner,
    metres turned into degrees at that corner's latitude."""

    def __init__(self, north_west: tuple[float, float], grid_m: float) -> None:
        self.lat0, self.lon0 = north_west
        self.grid_m = grid_m
        self.dlat = 1 / MAP_M_PER_DEG
        self.dlon = 1 / (MAP_M_PER_DEG * math.cos(math.radians(self.lat0)))

    def corner(self, row: int, col: int, nudge: Callable[[], float]) -> tuple[float, float]:
        south, east = nudge(), nudge()  # in the order the demo city drew them
        return self.lon0 + (col * self.grid_m + east) * self.dlon, self.lat0 - (row * self.grid_m + south) * self.dlat

    def midpoint(self, a: tuple[float, float], b: tuple[float, float], nudge: Callable[[], float]) -> tuple[float, float]:
        return (a[0] + b[0]) / 2 + nudge() / 2 * self.dlon, (a[1] + b[1]) / 2 + nudge() / 2 * self.dlat

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        return x, y


class City:
    """A generated city in the plane it is drawn in; ``geojson(crs)`` writes it out.

    ``grids`` unit grids of ``grid_m`` fill ``cols`` columns (by default as many as rows)
    row by row from the north-west corner, which is ``north_west`` or else placed so the
    lattice is centred on ``centre``. Every vertex moves by up to ``jitter_m`` each way
    (the outline stays straight with ``fixed_border``) and, with ``bent_edges``, every edge
    bends at a nudged midpoint. ``projected_crs`` is the plane the city is drawn in; None
    sketches it straight on the WGS-84 map at ``MAP_M_PER_DEG``, written to 1 cm.
    """

    def __init__(self, grids: int, *, district: str = DISTRICT, centre: tuple[float, float] = CENTRE,
                 north_west: tuple[float, float] | None = None, cols: int | None = None,
                 grid_m: float = 100.0, jitter_m: float | None = None, fixed_border: bool = False,
                 bent_edges: bool = True, community: tuple[int, int] = (4, 4), street: tuple[int, int] = (3, 3),
                 street_names: Sequence[str] = STREET_NAMES, seed: int = 0,
                 projected_crs: str | None = PROJECTED_CRS, title: str | None = None) -> None:
        if grids < 1:
            raise ValueError("a city needs at least one grid")
        if not (len(district) == 6 and district.isdigit()):
            raise ValueError(f"district must be a 6-digit admin code, got {district!r}")
        self.district = district
        self.grid_m = grid_m
        self.projected_crs = projected_crs
        self.title = title
        jitter = grid_m * 0.12 if jitter_m is None else jitter_m
        if not 0 <= jitter <= grid_m * 0.2:
            raise ValueError("jitter must stay within 20% of the grid size, or grids may fold over")
        rng = random.Random(seed)
        self.cols = cols or max(1, math.ceil(math.sqrt(grids)))
        self.rows = math.ceil(grids / self.cols)
        width, height = self.cols * grid_m, self.rows * grid_m
        if projected_crs is None:
            if north_west is None:
                lat, lon = centre
                north_west = (lat + height / 2 / MAP_M_PER_DEG, lon - width / 2 / (MAP_M_PER_DEG * math.cos(math.radians(lat))))
            self._plane: _Survey | _Sketch = _Sketch(north_west, grid_m)
        else:
            to_plane = transformer("EPSG:4326", projected_crs)
            if north_west is None:
                cx, cy = to_plane.transform(centre[1], centre[0])
                x0, y0 = cx - width / 2, cy + height / 2
            else:
                x0, y0 = to_plane.transform(north_west[1], north_west[0])
            self._plane = _Survey(projected_crs, x0, y0, grid_m)

        def nudge() -> float:
            return rng.uniform(-jitter, jitter)

        def still() -> float:
            return 0.0

        corner = {}
        for r in range(self.rows + 1):
            for c in range(self.cols + 1):
                border = r in (0, self.rows) or c in (0, self.cols)
                corner[r, c] = self._plane.corner(r, c, still if fixed_border and border else nudge)
        # every lattice edge has a midpoint, shared by the two grids along it; a bent edge
        # runs through it
        self._bent = bent_edges
        self._edge: dict[tuple, tuple[float, float]] = {}
        for (r, c), point in corner.items():
            for other in ((r, c + 1), (r + 1, c)):
                if other in corner:
                    self._edge[(r, c), other] = self._plane.midpoint(point, corner[other], nudge if bent_edges else still)
        self._corner = corner
        self.grids: list[Grid] = []
        cw, ch = community
        sw, sh = street[0] * cw, street[1] * ch  # a street's size in grids
        streets_across = math.ceil(self.cols / sw)
        communities_across = street[0]
        for index in range(grids):
            r, c = divmod(index, self.cols)
            street_index = (r // sh) * streets_across + c // sw
            sr, sc = r % sh, c % sw
            community_index = (sr // ch) * communities_across + sc // cw
            seq = (sr % ch) * cw + sc % cw + 1
            if street_index >= 999:
                raise ValueError("too many streets for a 3-digit street code: use larger streets")
            street_name = street_names[street_index] if street_index < len(street_names) else f"第{street_index + 1}街道"
            code = f"{district}{street_index + 1:03d}{community_index + 1:03d}{seq:03d}"
            self.grids.append(Grid(r, c, code, f"{street_name}{community_index + 1}社区{seq}号网格", street_name,
                                   f"{street_name[:-2]}第{community_index + 1}社区", self._ring(r, c)))
        self._by_place = {(g.row, g.col): g for g in self.grids}
        self.seeded = Seeded()

    def _side(self, a: tuple[int, int], b: tuple[int, int]) -> list[tuple[float, float]]:
        """Lattice corner a, and the bent midpoint of edge a–b if edges bend (b excluded)."""
        if not self._bent:
            return [self._corner[a]]
        mid = self._edge.get((a, b)) or self._edge[(b, a)]
        return [self._corner[a], mid]

    def _ring(self, r: int, c: int) -> list[tuple[float, float]]:
        nw, ne, se, sw = (r, c), (r, c + 1), (r + 1, c + 1), (r + 1, c)
        ring = self._side(nw, ne) + self._side(ne, se) + self._side(se, sw) + self._side(sw, nw)
        return [*ring, ring[0]]

    def at(self, row: int, col: int) -> Grid | None:
        return self._by_place.get((row, col))

    def lonlat(self, x: float, y: float) -> tuple[float, float]:
        return self._plane.lonlat(x, y)

    # --- output ---------------------------------------------------------------------

    def geojson(self, crs: str = "EPSG:4326") -> dict:
        """The city as a GeoJSON FeatureCollection in ``crs`` (WGS-84 or the projected CRS).

        Projected coordinates are written to the millimetre, as a survey gives them, and
        WGS-84 is derived from those, so both files describe the same points. A city
        sketched on the map is written in WGS-84 to 1e-7 degrees (about 1 cm).
        """
        if crs not in ("EPSG:4326", self.projected_crs):
            raise ValueError(f"the city is drawn in {self.projected_crs or 'EPSG:4326'}; write it in that or EPSG:4326, not {crs}")
        if self.projected_crs is None:
            rings = [[(round(lon, 7), round(lat, 7)) for lon, lat in g.ring] for g in self.grids]
        else:
            rings = [[(round(x, 3), round(y, 3)) for x, y in g.ring] for g in self.grids]
        if crs == "EPSG:4326" and self.projected_crs is not None:
            xs = [x for ring in rings for x, _ in ring]
            ys = [y for ring in rings for _, y in ring]
            lons, lats = transformer(self.projected_crs, "EPSG:4326").transform(xs, ys)
            points = iter(zip(lons, lats, strict=True))
            rings = [[(round(lon, 9), round(lat, 9)) for _, (lon, lat) in zip(ring, points, strict=False)] for ring in rings]
        features = []
        for g, ring in zip(self.grids, rings, strict=True):
            features.append({
                "type": "Feature",
                "properties": {"code": g.code, "name": g.name, "street_name": g.street_name, "community_name": g.community_name},
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
            })
        return {
            "type": "FeatureCollection",
            "name": self.title or f"{len(self.grids)} unit grids of district {self.district} (generated)",
            "crs": {"type": "name", "properties": {"name": _urn(crs) if crs != "EPSG:4326" else "urn:ogc:def:crs:OGC:1.3:CRS84"}},
            "features": features,
        }

    def write(self, path: str | Path, crs: str = "EPSG:4326") -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.geojson(crs), ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    # --- seeded errors --------------------------------------------------------------

    def seed_errors(self, *, bad_codes: int = 1, duplicates: int = 1, self_intersections: int = 1,
                    overlaps: int = 1, holes: int = 1, seed: int = 0) -> Seeded:
        """Damage the city in known places, each at least two grids away from the others."""
        rng = random.Random(seed)
        taken: set[tuple[int, int]] = set()

        def pick(need_west: bool = False) -> Grid:
            candidates = [g for g in self.grids
                          if 1 + need_west <= g.col < self.cols - 1 and 1 <= g.row < self.rows - 1
                          and all(self.at(g.row + dr, g.col + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1))
                          and not any((g.row + dr, g.col + dc) in taken for dr in range(-2, 3) for dc in range(-3, 3))]
            if not candidates:
                raise ValueError("the city is too small for that many seeded errors")
            grid = rng.choice(candidates)
            taken.add((grid.row, grid.col))
            return grid

        forms = [lambda c: c[:-1], lambda c: c[:-1] + "X", lambda c: c[:12] + "000"]
        for i in range(bad_codes):
            g = pick()
            g.code = forms[i % len(forms)](g.code)
            self.seeded.bad_codes.append(g.code)
        for _ in range(duplicates):
            g = pick()
            original = rng.choice([o for o in self.grids if abs(o.row - g.row) + abs(o.col - g.col) > 3
                                   and (o.row, o.col) not in taken and o.code not in self.seeded.bad_codes])
            g.code = original.code
            self.seeded.duplicate_codes.append(g.code)
        for _ in range(self_intersections):
            g = pick()
            r, c = g.row, g.col
            nw, ne, se, sw = (self._corner[k] for k in ((r, c), (r, c + 1), (r + 1, c + 1), (r + 1, c)))
            g.ring = [nw, ne, sw, se, nw]  # a bow tie: the ring crosses itself in the middle
            self.seeded.self_intersecting.append(g.code)
        for _ in range(overlaps):
            g = pick(need_west=True)
            west = self._by_place[g.row, g.col - 1]  # pick keeps to grids with all eight neighbours
            r, c = g.row, g.col
            # grow over the east half of the west neighbour, along its own top and bottom edges
            top_mid = self._edge[(r, c - 1), (r, c)]
            bottom_mid = self._edge[(r + 1, c - 1), (r + 1, c)]
            nw, sw = (r, c), (r + 1, c)
            ring = [top_mid, *self._side(nw, (r, c + 1)), *self._side((r, c + 1), (r + 1, c + 1)),
                    *self._side((r + 1, c + 1), sw), self._corner[sw], bottom_mid]
            g.ring = [*ring, ring[0]]
            self.seeded.overlaps.append((g.code, west.code))
        for _ in range(holes):
            g = pick()
            x, y = _centroid(g.ring)
            lon, lat = self.lonlat(x, y)
            self.grids.remove(g)
            del self._by_place[g.row, g.col]
            self.seeded.holes.append((g.code, (lat, lon)))
        return self.seeded


class Districts:
    """Cities of several districts written as one file, the way a city platform holds the
    unit grids of all its districts: each district drawn on its own, features in order."""

    def __init__(self, cities: Sequence[City], *, title: str) -> None:
        codes = [c.district for c in cities]
        if not codes:
            raise ValueError("a file of districts needs at least one district")
        if len(set(codes)) != len(codes):
            raise ValueError(f"each district is drawn once, got {codes}")
        drawn_in = {c.projected_crs for c in cities}
        if len(drawn_in) != 1:
            raise ValueError("the districts of one file are drawn in one plane")
        self.cities = list(cities)
        self.title = title

    @property
    def grids(self) -> list[Grid]:
        return [g for city in self.cities for g in city.grids]

    def geojson(self, crs: str = "EPSG:4326") -> dict:
        docs = [city.geojson(crs) for city in self.cities]
        return {**docs[0], "name": self.title, "features": [f for doc in docs for f in doc["features"]]}

    def write(self, path: str | Path, crs: str = "EPSG:4326") -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.geojson(crs), ensure_ascii=False) + "\n", encoding="utf-8")
        return path


def _centroid(ring: list[tuple[float, float]]) -> tuple[float, float]:
    pts = ring[:-1]
    return sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m geofence.citygen", description=__doc__.split("\n\n")[0])
    parser.add_argument("grids", type=int)
    parser.add_argument("file")
    parser.add_argument("--crs", default="EPSG:4326", help=f"EPSG:4326 or {PROJECTED_CRS} (CGCS2000 Gauss-Kruger)")
    parser.add_argument("--district", default=DISTRICT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--damage", action="store_true",
                        help="seed one of each error a real file brings (to try an import's validation report on)")
    args = parser.parse_args(argv)
    city = City(args.grids, district=args.district, seed=args.seed)
    if args.damage:
        seeded = city.seed_errors(bad_codes=1, duplicates=1, self_intersections=1, overlaps=1, holes=1, seed=args.seed)
    city.write(args.file, args.crs)
    print(f"wrote {len(city.grids)} unit grids to {args.file} ({args.crs})")
    if args.damage:
        print(f"  bad code {seeded.bad_codes[0]}; duplicate code {seeded.duplicate_codes[0]}; "
              f"self-intersecting {seeded.self_intersecting[0]}; {seeded.overlaps[0][0]} overlaps {seeded.overlaps[0][1]}; "
              f"hole where {seeded.holes[0][0]} was, at {seeded.holes[0][1][0]:.6f}, {seeded.holes[0][1][1]:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
