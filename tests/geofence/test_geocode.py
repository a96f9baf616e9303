"""Properties of the H3 cover and of geocoding, over generated cities of any shape: every
cell belongs to exactly one grid, every grid has cells, and a position is placed in the
grid whose polygon holds it, except within one H3 cell of a grid border."""

from __future__ import annotations

import numpy as np
import shapely
from h3.api import basic_int as h3
from hypothesis import given, settings, strategies as st
from pyproj import Transformer
from shapely.geometry import Point, shape

from geofence.citygen import PROJECTED_CRS, City
from geofence.importer import cover, parse_features
from geofence.index import GridIndex
from protocols.model import DeviceClass, Fix

RES = 12
# A cell's centre is never further than this from any point of the cell (its circumradius
# around Lanzhou is ~10.6 m), so a position and the centre of its cell can fall in
# different grids only that close to a border between them.
EDGE_M = h3.average_hexagon_edge_length(RES, "m")
TO_METRES = Transformer.from_crs("EPSG:4326", PROJECTED_CRS, always_xy=True)

cities = st.builds(
    lambda grids, grid_m, jitter, lat, lon, seed, drawn, fixed_border, bent_edges: City(
        grids, grid_m=grid_m, jitter_m=grid_m * jitter, centre=(lat, lon), seed=seed, community=(3, 2), street=(2, 2),
        projected_crs=drawn, fixed_border=fixed_border, bent_edges=bent_edges),
    grids=st.integers(1, 90),
    grid_m=st.floats(40, 160),
    jitter=st.floats(0, 0.2),
    lat=st.floats(35.9, 36.3),
    lon=st.floats(103.55, 104.1),
    seed=st.integers(0, 2**16),
    drawn=st.sampled_from([PROJECTED_CRS, None]),  # surveyed in Gauss-Krüger, or sketched on the map
    fixed_border=st.booleans(),
    bent_edges=st.booleans(),
)


def imported(city: City):
    report = parse_features(city.geojson()["features"], "EPSG:4326")
    assert report.ok and report.warnings == [], (report.errors, report.warnings)
    owner, problems = cover(report.grids, RES)
    assert problems == []
    return report.grids, owner


def metric(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(TO_METRES.transform(xy[:, 0], xy[:, 1])))


@settings(max_examples=60, deadline=None)
@given(city=cities)
def test_every_cell_of_a_city_belongs_to_exactly_one_grid_and_every_grid_has_cells(city):
    grids, owner = imported(city)
    assert set(owner.values()) == {g.code for g in grids}
    polygons = [shape(g.geometry) for g in grids]
    codes = np.array([g.code for g in grids])
    tree = shapely.STRtree(polygons)
    centres = [Point(lon, lat) for lat, lon in (h3.cell_to_latlng(c) for c in owner)]
    inside = tree.query(centres, predicate="intersects")
    holders: dict[int, list[str]] = {}
    for point_index, polygon_index in zip(*inside, strict=True):
        holders.setdefault(int(point_index), []).append(str(codes[polygon_index]))
    for i, code in enumerate(owner.values()):
        # its centre lies in its grid, and (off the borders themselves) in no other
        assert code in holders[i]
        assert len(holders[i]) == 1 or polygons[list(codes).index(code)].boundary.distance(centres[i]) < 1e-9
    # and every cell whose centre is in the city is in the cover
    city_outline = shapely.union_all(polygons)
    assert set(owner) == set(h3.geo_to_cells(city_outline, RES))


@settings(max_examples=100, deadline=None)
@given(city=cities, spots=st.lists(st.tuples(st.floats(-0.1, 1.1), st.floats(-0.1, 1.1)), min_size=1, max_size=60))
def test_place_agrees_with_point_in_polygon_except_within_a_cell_of_a_border(city, spots):
    grids, owner = imported(city)
    index = GridIndex(RES, owner.items())
    polygons = [shape(g.geometry) for g in grids]
    borders = metric(shapely.union_all([p.boundary for p in polygons]))
    west, south, east, north = shapely.total_bounds(polygons)
    for fx, fy in spots:
        lon, lat = west + fx * (east - west), south + fy * (north - south)
        here = Point(lon, lat)
        truth = [g for g, p in zip(grids, polygons, strict=True) if p.covers(here)]
        place = index.place(lat, lon)
        if borders.distance(metric(here)) <= EDGE_M:
            continue  # the fix's cell may have its centre in the neighbour
        assert len(truth) <= 1
        if not truth:
            assert place is None, (lat, lon)
            continue
        grid = truth[0].code
        assert place is not None, (lat, lon, grid)
        assert (place.district, place.street, place.community, place.grid) == (grid[:6], grid[:9], grid[:12], grid)


def test_the_border_allowance_is_one_cell_around_lanzhou():
    # the allowance above holds where the generated cities lie: no res-12 cell reaches
    # further from its centre than the average edge length
    for lat, lon in [(35.9, 103.55), (36.06, 103.835), (36.3, 104.1)]:
        cell = h3.latlng_to_cell(lat, lon, RES)
        c_lat, c_lon = h3.cell_to_latlng(cell)
        centre = metric(Point(c_lon, c_lat))
        reach = max(metric(Point(b_lon, b_lat)).distance(centre) for b_lat, b_lon in h3.cell_to_boundary(cell))
        assert reach <= EDGE_M


@settings(max_examples=20, deadline=None)
@given(city=cities, spots=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=50))
def test_placing_a_slice_a_column_at_a_time_agrees_with_one_fix_at_a_time(city, spots):
    grids, owner = imported(city)
    index = GridIndex(RES, owner.items())
    west, south, east, north = shapely.total_bounds([shape(g.geometry) for g in grids])
    fixes = [Fix("c01", DeviceClass.COLLECTOR, "620105", 0, south + fy * (north - south), west + fx * (east - west), 0)
             for fx, fy in spots]
    cells, codes = index.locate_all(fixes)
    assert list(zip(cells, codes, strict=True)) == [index.locate(f.lat, f.lon) for f in fixes]
