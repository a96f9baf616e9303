"""A city's unit-grid file goes through `tracker grids import` and comes back out of
`tracker grids export`: validated with every problem named, converted from the survey CRS,
updated in place on re-import, and geocoded by the running service."""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
import trio
from h3.api import basic_int as h3
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pyproj import Geod
from shapely.geometry import shape

from geofence.citygen import PROJECTED_CRS, City
from geofence.importer import cover, parse_features, read_geojson
from tests.harness import REPO, auth_headers, store_task
from tracker.app.service import import_grids, run_service
from tracker.storage.store import open_store

RES = 12  # the configured default, which the CLI uses without a config file
GEOD = Geod(ellps="WGS84")
_fresh = itertools.count()


async def tracker(dsn: str, *args: str, cwd: Path) -> tuple[int, str, str]:
    """Run the `tracker` command line as an operator would, against database ``dsn``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env["TRACKER_DATABASE__DSN"] = dsn
    env["PYTHONPATH"] = str(REPO)
    done = await trio.run_process([sys.executable, "-m", "tracker", *args], cwd=cwd, env=env,
                                  capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def table_counts(dsn: str) -> dict[str, int]:
    async with open_store(dsn) as store:
        rows = await store.fetch(
            "SELECT (SELECT count(*) FROM grids) AS grids, (SELECT count(*) FROM grid_cells) AS cells, "
            "(SELECT count(DISTINCT grid) FROM grid_cells) AS grids_with_cells, "
            "(SELECT count(*) FROM streets) AS streets, (SELECT count(*) FROM communities) AS communities")
    return dict(rows[0])


async def cells_by_grid(store) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for cell, grid in await store.grid_cells():
        out.setdefault(grid, set()).add(cell)
    return out


class FreshDatabases:
    """More fresh migrated databases in one test (the ``database`` fixture gives one)."""

    def __init__(self, postgres) -> None:
        self.postgres = postgres
        self.names: list[str] = []

    def new(self) -> str:
        name = f"gw_import_{os.getpid()}_{next(_fresh)}"
        self.names.append(name)
        return self.postgres.create_database(name)


@pytest.fixture
def fresh_databases(postgres):
    dbs = FreshDatabases(postgres)
    yield dbs
    for name in dbs.names:
        postgres.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_a_5000_grid_city_imports_through_the_cli_with_a_progress_bar(database, tmp_path):
    city = City(5000, seed=1)
    path = city.write(tmp_path / "city.geojson")
    code, out, err = await tracker(database, "grids", "import", str(path), cwd=tmp_path)
    assert code == 0, out + err
    # the bar moves along as features are checked (a chunk of 500 at a time), and ends full
    frames = [re.fullmatch(r"checking grids: +(\d+)%\|(.*)\| (\d+)/5000 \[.*\] *\n?", f) for f in err.split("\r") if f]
    assert frames and all(frames), err
    counts = [int(f.group(3)) for f in frames]
    assert {500, 2500} <= set(counts) and counts == sorted(counts), counts
    *_, last = frames
    assert (last.group(1), last.group(3)) == ("100", "5000") and re.fullmatch("█+|#+", last.group(2)), last.group(0)
    assert err.endswith(last.group(0)) and err.endswith("\n")
    imported = re.search(r"imported 5000 grids, (\d+) H3 cells at resolution 12", out)
    assert imported, out
    counts = await table_counts(database)
    assert counts == {
        "grids": 5000, "cells": int(imported.group(1)), "grids_with_cells": 5000,
        "streets": len({g.code[:9] for g in city.grids}), "communities": len({g.code[:12] for g in city.grids}),
    }
    # ~10,000 m² grids over ~307 m² cells
    assert 28 * 5000 < counts["cells"] < 38 * 5000


async def test_a_file_with_errors_is_refused_with_each_error_named_and_nothing_imported(database, tmp_path):
    city = City(300, seed=4)
    seeded = city.seed_errors(bad_codes=3, duplicates=1, self_intersections=1, overlaps=1, holes=1, seed=9)
    path = city.write(tmp_path / "damaged.geojson")
    code, out, err = await tracker(database, "grids", "import", str(path), cwd=tmp_path)
    assert code == 1, out + err
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    warnings = [line for line in out.splitlines() if line.startswith("warning: ")]

    def one(pattern: str, lines: list[str]) -> str:
        found = [line for line in lines if re.search(pattern, line)]
        assert len(found) == 1, (pattern, lines)
        return found[0]

    for bad in seeded.bad_codes:
        one(rf"bad code '{re.escape(bad)}'", errors)
    (duplicate,) = seeded.duplicate_codes
    one(rf"duplicate code {duplicate}, also used by feature \d+", errors)
    (bow_tie,) = seeded.self_intersecting
    one(rf"\({bow_tie}\): self-intersecting polygon", errors)
    (grown, neighbour) = seeded.overlaps[0]
    one(rf"overlap: grids ({grown} and {neighbour}|{neighbour} and {grown}) overlap by", errors)
    assert len(errors) == 3 + 1 + 1 + 1, errors
    (_removed, (lat, lon)), = seeded.holes
    hole = one(r"hole of [\d.]+ m² at", warnings)
    at = re.search(r"at ([\d.]+), ([\d.]+) enclosed by grids ([\d, ]+):", hole)
    assert GEOD.inv(lon, lat, float(at.group(2)), float(at.group(1)))[2] < 60  # inside the missing 100 m grid
    assert len(at.group(3).split(", ")) == 8  # its eight neighbours
    assert f"refused: {len(errors)} error(s); nothing imported" in out
    assert (await table_counts(database))["grids"] == 0


def test_a_hole_alone_is_a_warning_and_the_rest_imports(tmp_path):
    city = City(100, seed=8)
    seeded = city.seed_errors(bad_codes=0, duplicates=0, self_intersections=0, overlaps=0, holes=1, seed=1)
    report = read_geojson(city.write(tmp_path / "lake.geojson"))
    assert report.ok and len(report.grids) == 99
    (warning,) = report.warnings
    assert "positions there belong to no grid" in warning and seeded.holes[0][0] not in warning


async def test_an_export_reimports_identically_and_source_keeps_the_survey_crs(database, fresh_databases, tmp_path):
    city = City(150, seed=11)
    original = city.write(tmp_path / "survey.geojson", PROJECTED_CRS)
    async with open_store(database) as store:
        assert (await import_grids(store, str(original), RES)).ok
    wgs, source = tmp_path / "export.geojson", tmp_path / "export-source.geojson"
    await exports(database, wgs, source, cwd=tmp_path)

    # the source export is the survey file again: same CRS, same coordinates to the digit
    survey, kept = json.loads(original.read_text()), json.loads(source.read_text())
    assert kept["crs"] == {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4544"}}
    assert [(f["properties"]["code"], f["geometry"]) for f in kept["features"]] == sorted(
        (f["properties"]["code"], f["geometry"]) for f in survey["features"])

    # WGS-84 export → import into a fresh database → export: the same document
    second = fresh_databases.new()
    code, out, err = await tracker(second, "grids", "import", str(wgs), cwd=tmp_path)
    assert code == 0, out + err
    again = tmp_path / "export-again.geojson"
    assert (await tracker(second, "grids", "export", str(again), cwd=tmp_path))[0] == 0
    assert again.read_bytes() == wgs.read_bytes()
    assert json.loads(wgs.read_text())["features"][0]["properties"] == {
        "code": "620102001001001", "name": "酒泉路街道1社区1号网格", "district": "620102", "street": "620102001",
        "street_name": "酒泉路街道", "community": "620102001001", "community_name": "酒泉路第1社区"}

    # the source export imports too (in place, over the WGS-84 copy), and exports the same both ways
    code, out, err = await tracker(second, "grids", "import", str(source), cwd=tmp_path)
    assert code == 0, out + err
    again_source = tmp_path / "export-source-again.geojson"
    await exports(second, again, again_source, cwd=tmp_path)
    assert again.read_bytes() == wgs.read_bytes()
    assert again_source.read_bytes() == source.read_bytes()


async def exports(dsn: str, wgs: Path, source: Path, *, cwd: Path) -> None:
    """`tracker grids export` and `tracker grids export --source`, side by side."""
    results = []

    async def run(*args: str) -> None:
        results.append(await tracker(dsn, "grids", "export", *args, cwd=cwd))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, str(wgs))
        nursery.start_soon(run, "--source", str(source))
    assert [r[0] for r in results] == [0, 0], results


async def test_reimport_updates_in_place_and_the_changed_grid_gets_new_cells(database, tmp_path):
    city = City(120, seed=5)
    path = city.write(tmp_path / "city.geojson")
    async with open_store(database) as store:
        first = await import_grids(store, str(path), RES)
        before = await cells_by_grid(store)
        # the surveyors redraw the north-west corner grid: its outer corner moves 40 m out
        corner = city.at(0, 0)
        x, y = corner.ring[0]
        corner.ring[0] = corner.ring[-1] = (x - 40, y + 40)
        city.write(path)
        second = await import_grids(store, str(path), RES)
        after = await cells_by_grid(store)
        rows = await store.fetch("SELECT code, count(*) OVER () AS n FROM grids WHERE code = $1", corner.code)
        (total,) = await store.fetch("SELECT count(*) AS grids, (SELECT count(*) FROM grid_cells) AS cells FROM grids")
    assert first.ok and second.ok
    assert after[corner.code] > before[corner.code]  # grew, keeping what it had
    assert {c: v for c, v in after.items() if c != corner.code} == {c: v for c, v in before.items() if c != corner.code}
    assert [r["n"] for r in rows] == [1]
    assert (total["grids"], total["cells"]) == (120, len(second.cover))
    assert {cell for cells in after.values() for cell in cells} == set(second.cover)


def test_a_gauss_kruger_file_lands_within_centimetres_of_the_same_city_in_wgs84(tmp_path):
    city = City(400, seed=2)
    in_wgs84 = read_geojson(city.write(tmp_path / "wgs84.geojson"))
    in_gk = read_geojson(city.write(tmp_path / "gk.geojson", PROJECTED_CRS))
    assert in_wgs84.ok and in_gk.ok and not in_gk.warnings
    assert {g.source_crs for g in in_gk.grids} == {"EPSG:4544"}
    worst = 0.0
    for a, b in zip(in_wgs84.grids, in_gk.grids, strict=True):
        assert a.code == b.code and abs(a.area_m2 - b.area_m2) <= 0.2  # rounded to 0.1 m² each
        for (lon1, lat1), (lon2, lat2) in zip(a.geometry["coordinates"][0], b.geometry["coordinates"][0], strict=True):
            worst = max(worst, GEOD.inv(lon1, lat1, lon2, lat2)[2])
    assert worst < 0.01  # metres
    assert cover(in_gk.grids, RES)[0] == cover(in_wgs84.grids, RES)[0]
    # the city is where it was drawn: around Shimin Square
    centre = shape({"type": "MultiPolygon", "coordinates": [g.geometry["coordinates"] for g in in_gk.grids]}).centroid
    assert GEOD.inv(103.835, 36.062, centre.x, centre.y)[2] < 100

    # a survey file that does not say its CRS: refused as it stands, right with --crs
    doc = json.loads((tmp_path / "gk.geojson").read_text())
    del doc["crs"]
    bare = tmp_path / "gk-bare.geojson"
    bare.write_text(json.dumps(doc))
    refused = read_geojson(bare)
    assert len(refused.errors) == 400 and "not positions on Earth" in refused.errors[0]
    assert [g.geometry for g in read_geojson(bare, crs="EPSG:4544").grids] == [g.geometry for g in in_gk.grids]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
positions = st.lists(st.one_of(st.tuples(st.floats(-200, 200), st.floats(-100, 100)).map(list), json_values), max_size=6)
geometries = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.sampled_from(["Polygon", "MultiPolygon", "Point"]),
                           "coordinates": st.one_of(json_values, st.lists(positions, max_size=3),
                                                    st.lists(st.lists(positions, max_size=3), max_size=2))}))
features = st.one_of(json_values, st.fixed_dictionaries(
    {"type": st.just("Feature"), "geometry": geometries,
     "properties": st.one_of(json_values, st.fixed_dictionaries({"code": st.one_of(json_values, st.just("620102001001001"))}))},
    optional={"crs": json_values}))


@hsettings(max_examples=150, deadline=None)
@given(st.lists(features, max_size=4), st.sampled_from(["EPSG:4326", "EPSG:4544", "GCJ02", "EPSG:0", "nonsense"]))
def test_any_json_in_the_features_gives_a_report_not_an_exception(features, crs):
    report = parse_features(features, crs)
    assert len(report.grids) <= len(features)
    assert report.ok or report.errors


# --- GET /api/geocode on the running service --------------------------------------------

async def _serve(nursery, settings, path: Path):
    store = await nursery.start(store_task, settings.database.dsn)
    report = await import_grids(store, str(path), settings.grid.h3_resolution)
    assert report.ok, report.errors
    running = await nursery.start(run_service, settings, store)
    return report, running, await auth_headers(store)


numbers = st.one_of(st.floats().map(repr), st.integers(-10**6, 10**6).map(str), st.decimals(allow_nan=True).map(str))
values = st.one_of(numbers, st.text(max_size=24), st.sampled_from(
    ["", " ", "nan", "NaN", "inf", "-Infinity", "1e999", "36,06", "0x24", "36.06\x00", "٣٦", "1_0", "+36", "--3", "%", "%zz", "%ff%fe"]))
queries = st.one_of(
    st.builds(lambda lat, lon: urlencode({"lat": lat, "lon": lon}), values, values),
    st.builds(lambda pairs: urlencode(pairs), st.lists(st.tuples(st.sampled_from(["lat", "lon", "lat ", "LAT", ""]), values), max_size=4)),
    st.text(max_size=60).map(lambda raw: quote(raw, safe="=&%+;")),
)


async def test_geocode_names_district_street_community_and_grid_and_refuses_garbage(settings, tmp_path):
    city = City(48, seed=6)
    path = city.write(tmp_path / "city.geojson")
    async with trio.open_nursery() as nursery:
        report, running, headers = await _serve(nursery, settings, path)

        def probe() -> None:
            with httpx.Client(base_url=running.url, timeout=10, headers=headers) as client:
                for grid in report.grids:
                    middle = shape(grid.geometry).centroid
                    body = client.get("/api/geocode", params={"lat": middle.y, "lon": middle.x}).json()
                    assert body == {
                        "lat": middle.y, "lon": middle.x, "cell": h3.int_to_str(h3.latlng_to_cell(middle.y, middle.x, RES)),
                        "district": "620102", "street": grid.code[:9], "community": grid.code[:12], "grid": grid.code}
                off = client.get("/api/geocode", params={"lat": 36.5, "lon": 103.835})
                assert off.status_code == 200 and off.json()["grid"] is None and off.json()["district"] is None
                for query in ["", "lat=36.06", "lon=103.8", "lat=abc&lon=103.8", "lat=91&lon=103.8", "lat=36&lon=181",
                              "lat=nan&lon=103.8", "lat=36&lon=inf"]:
                    refused = client.get(f"/api/geocode?{query}")
                    assert refused.status_code == 400 and "error" in refused.json(), query

                @hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
                @given(query=queries)
                def never_a_server_error(query: str) -> None:
                    response = client.get(f"/api/geocode?{query}")
                    assert response.status_code in (200, 400), (query, response.status_code, response.text)
                    body = response.json()
                    if response.status_code == 200:
                        assert -90 <= body["lat"] <= 90 and -180 <= body["lon"] <= 180
                    else:
                        assert set(body) == {"error"}

                never_a_server_error()

        await trio.to_thread.run_sync(probe)
        nursery.cancel_scope.cancel()


def _write_vector(doc: dict, path: Path, driver: str, crs: str) -> Path:
    """What a surveyor's GIS exports: the same grids as a GeoPackage or a Shapefile."""
    import numpy as np
    import pyogrio.raw

    features = doc["features"]
    fields = ["code", "name", "street_name", "community_name"]
    geometry = np.array([shape(f["geometry"]).wkb for f in features], dtype=object)
    values = [np.array([f["properties"].get(k) or "" for f in features], dtype=object) for k in fields]
    if driver == "ESRI Shapefile":  # field names of at most 10 characters, as GDAL writes them
        fields = ["code", "name", "street_nam", "community_"]
    pyogrio.raw.write(str(path), geometry, values, fields, driver=driver, geometry_type="Polygon", crs=crs, encoding="UTF-8")
    return path


async def test_geopackage_and_shapefile_import_like_the_same_city_in_geojson(tmp_path, fresh_databases):
    city = City(60, seed=5)
    reference = read_geojson(city.write(tmp_path / "city.geojson"))
    gpkg = _write_vector(city.geojson(PROJECTED_CRS), tmp_path / "city.gpkg", "GPKG", PROJECTED_CRS)
    shp = _write_vector(city.geojson(), tmp_path / "city.shp", "ESRI Shapefile", "EPSG:4326")
    results = {}
    names = {}
    for path in (gpkg, shp):
        dsn = fresh_databases.new()
        code, _out, _err = await tracker(dsn, "grids", "import", str(path), cwd=tmp_path)
        async with open_store(dsn) as store:
            rows = await store.grids()
            results[path.suffix] = (code, await cells_by_grid(store), {r["code"]: r["source_crs"] for r in rows})
            names[path.suffix] = {r["code"]: (r["street_name"], r["community_name"]) for r in rows}
    expected = {}
    for cell, grid in cover(reference.grids, RES)[0].items():
        expected.setdefault(grid, set()).add(cell)
    assert results[".gpkg"][:2] == (0, expected)
    assert results[".shp"][:2] == (0, expected)
    assert set(results[".gpkg"][2].values()) == {"EPSG:4544"} and set(results[".shp"][2].values()) == {"EPSG:4326"}
    assert names[".shp"] == names[".gpkg"] == {g.code: (g.street_name, g.community_name) for g in reference.grids}
