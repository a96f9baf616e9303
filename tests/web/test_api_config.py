"""``GET /api/config`` names the districts the served unit grids span, with the bounding
box of each district's grids, so the page can name and frame them."""

from __future__ import annotations

import httpx
import pytest
import trio

from geofence.districts import district_extents, district_name
from tests.harness import auth_headers, start_service


async def test_config_names_the_demo_citys_two_districts_and_frames_each(settings):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            answer = await http.get("/api/config")
            grids = (await http.get("/api/grids")).json()
        qilihe_headers = await auth_headers(store, role="supervisor", district="620103")
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=qilihe_headers) as http:
            district_config = (await http.get("/api/config")).json()
        nursery.cancel_scope.cancel()
    # a district's account is told of its own district only, so its map frames that
    assert [d["code"] for d in district_config["districts"]] == ["620103"]
    assert district_config["district"] == "620103"
    assert answer.status_code == 200
    districts = answer.json()["districts"]
    assert [(d["code"], d["name"], d["grids"]) for d in districts] == [("620103", "七里河区", 192), ("620105", "安宁区", 384)]
    for d in districts:
        west, south, east, north = d["bbox"]
        points = [p for f in grids["features"] if f["properties"]["code"].startswith(d["code"])
                  for p in f["geometry"]["coordinates"][0]]
        assert (west, south, east, north) == (min(p[0] for p in points), min(p[1] for p in points),
                                              max(p[0] for p in points), max(p[1] for p in points))
    qilihe, anning = (d["bbox"] for d in districts)
    assert qilihe[3] < anning[1]  # Qilihe lies wholly south of Anning, across the river


def _square(code: str, lon: float, lat: float) -> dict:
    ring = [[lon, lat], [lon + 0.001, lat], [lon + 0.001, lat + 0.001], [lon, lat + 0.001], [lon, lat]]
    return {"type": "Feature", "properties": {"code": code}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_extents_span_every_grid_of_a_district_multipolygons_included_in_code_order():
    multi = {"type": "Feature", "properties": {"code": "620102001001002"},
             "geometry": {"type": "MultiPolygon", "coordinates": [_square("", 103.80, 36.05)["geometry"]["coordinates"],
                                                                   _square("", 103.83, 36.07)["geometry"]["coordinates"]]}}
    features = [_square("620105001001001", 103.72, 36.10), multi, _square("620102001001001", 103.81, 36.04)]
    extents = district_extents(features)
    assert [(e.code, e.name, e.grids) for e in extents] == [("620102", "城关区", 2), ("620105", "安宁区", 1)]
    assert extents[0].bbox == pytest.approx((103.80, 36.04, 103.831, 36.071))
    assert district_extents([]) == []


def test_a_district_the_table_does_not_name_is_called_by_its_code():
    assert district_name("320582") == "320582"
    assert district_name("620103") == "七里河区"
    (extent,) = district_extents([_square("320582110152102", 120.55, 31.87)])
    assert extent.to_dict() == {"code": "320582", "name": "320582", "grids": 1, "bbox": pytest.approx([120.55, 31.87, 120.551, 31.871])}
