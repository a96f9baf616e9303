"""The command map: its page, its configuration, the unit grids and the geocoder."""

from __future__ import annotations

from pathlib import Path

from h3.api import basic_int as h3
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from geofence.districts import district_extents
from web.basemaps import base_map
from web.context import context
from web.params import accepts, float_param, page_params
from web.principal import principal
from web.scoping import grid_collections

STATIC = Path(__file__).resolve().parent.parent / "static"


@page_params
async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


@accepts()
async def config(request: Request) -> Response:
    ctx = context(request)
    who = principal(request)
    s = ctx.settings
    # the districts of the grids this caller is served, so a page can name and frame them;
    # bbox is [west, south, east, north] in WGS-84, as the grids are served
    districts = [d.to_dict() for d in district_extents(ctx.grids.get("features", [])) if who.sees(d.code)]
    # basemap: the preset's tile layers and the datum they are drawn in ({"preset": "none"}
    # draws the grids alone); tile_url and map_datum stay for pages that read only those
    basemap = s.basemap if s.basemap is not None else base_map("none", legacy_url=s.tile_url, legacy_datum=s.map_datum)
    return JSONResponse({"tile_url": s.tile_url, "map_datum": s.map_datum, "basemap": basemap.to_dict(),
                         "center": list(s.center), "zoom": s.zoom,
                         "district": who.district or s.district, "districts": districts, "zone": ctx.zone(),
                         "online_s": dict(s.online_s)})


@accepts()
async def grids(request: Request) -> Response:
    """The unit grids of the caller's district (a city account: all of them)."""
    return Response(grid_collections(request).encoded(principal(request).district), media_type="application/json")


@accepts("lat", "lon")
async def geocode(request: Request) -> Response:
    """The H3 cell and the unit grid (with its community, street and district) of a point.
    A point in a grid of another district than the caller's is answered as outside every
    grid."""
    who = principal(request)
    index = context(request).index
    lat = float_param(request, "lat", -90, 90)
    lon = float_param(request, "lon", -180, 180)
    place = index.place(lat, lon)
    body = {"lat": lat, "lon": lon, "cell": h3.int_to_str(index.cell(lat, lon)),
            "grid": None, "community": None, "street": None, "district": None}
    if place is not None and who.sees_code(place.grid):
        body.update(grid=place.grid, community=place.community, street=place.street, district=place.district)
    return JSONResponse(body)
