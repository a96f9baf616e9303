"""Devices: where they are, where they went, "report now", and the city components that
sensors are bound to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from protocols.epoch import datetime_to_ms, ms_to_datetime
from protocols.model import DEVICE_ID
from web.audit import audited
from web.context import Row, WebContext, context
from web.params import accepts, error, time_param
from web.principal import principal

TRACK_DEFAULT = timedelta(minutes=30)
EARLIEST = datetime.min.replace(tzinfo=UTC)
MAX_COMPONENTS = 5000


@accepts()
async def devices(request: Request) -> Response:
    """The devices of the caller's district (a city account: all of them)."""
    return JSONResponse({"devices": context(request).live.snapshot(principal(request).district)})


@accepts()
async def device(request: Request) -> Response:
    """One device; 404 for another district's, as for one that does not exist."""
    who = principal(request)
    device_id = request.path_params["device"]
    view = context(request).live.view(device_id)
    if view is None or not who.sees(view["district"]):
        return error(404, f"unknown device {device_id!r}")
    return JSONResponse(view)


@accepts("from", "to")
async def track(request: Request) -> Response:
    """The device's fixes between ``from`` and ``to`` (default: the last 30 minutes)."""
    ctx = context(request)
    district = principal(request).district
    device_id = request.path_params["device"]
    end = time_param(request, "to", ms_to_datetime(ctx.clock_ms()))
    start = time_param(request, "from", max(end, EARLIEST + TRACK_DEFAULT) - TRACK_DEFAULT)
    if start > end:
        return error(400, "'from' is after 'to'")
    if not await _known(ctx, device_id, district):
        return error(404, f"unknown device {device_id!r}")
    rows = await ctx.records.track(device_id, start, end, ctx.settings.track_max_points, district)
    return JSONResponse(track_geojson(device_id, start, end, rows, label=_label(ctx, device_id)))


def track_geojson(device_id: str, start: datetime, end: datetime, rows: Sequence[Row], label: str | None = None) -> dict[str, Any]:
    """A track as GeoJSON: a LineString needs two positions (RFC 7946 3.1.4), so one fix
    is a Point and none an empty FeatureCollection."""
    properties = {"device": device_id, "label": label or device_id, "from": start.isoformat(), "to": end.isoformat(),
                  "times": [datetime_to_ms(r["t"]) for r in rows]}
    if not rows:
        return {"type": "FeatureCollection", "features": [], "properties": properties}
    coordinates = [[r["lon"], r["lat"]] for r in rows]
    geometry = {"type": "Point", "coordinates": coordinates[0]} if len(rows) == 1 else \
        {"type": "LineString", "coordinates": coordinates}
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def _label(ctx: WebContext, device_id: str) -> str:
    """What the map calls the device (its registry name), else its id."""
    view = ctx.live.view(device_id)
    return view.get("label", device_id) if view is not None else device_id


async def _known(ctx: WebContext, device_id: str, district: str | None) -> bool:
    """Live now, or ever seen, and of ``district`` (None: any); an id no device can have
    is not looked up."""
    if not DEVICE_ID.fullmatch(device_id):
        return False
    view = ctx.live.view(device_id)
    if view is not None and (district is None or view["district"] == district):
        return True
    return await ctx.records.has_device(device_id, district)


@accepts()
async def locate(request: Request) -> Response:
    """Ask a device to report its position now (OwnTracks ``reportLocation``, the handset
    command of the same name, or JT/T 808's position query). Another district's device is
    unknown to a district account: 404, nothing sent."""
    ctx = context(request)
    district = principal(request).district
    device_id = request.path_params["device"]
    if ctx.locate is None:
        return error(503, "no downlink in this service")
    if district is not None and not await _known(ctx, device_id, district):
        return error(404, f"unknown device {device_id!r}")
    try:
        sent = await ctx.locate(device_id)
    except trio.BrokenResourceError as exc:
        await audited(request, "device.locate", device_id, outcome="failed", detail=str(exc) or "link down")
        return error(503, str(exc) or "the device's link is down")
    if sent is None:
        return error(404, f"unknown device {device_id!r}")
    await audited(request, "device.locate", device_id, after=sent)
    return JSONResponse(sent | {"sent": True}, status_code=202)


@accepts("code")
async def components(request: Request) -> Response:
    """Sensors bound to city components ("one manhole, one number"), by code prefix:
    admin code, then major and minor class (e.g. 6201050101 = water-supply covers); of the
    caller's district only."""
    prefix = request.query_params.get("code", "")
    if (not prefix.isdigit() and prefix != "") or len(prefix) > 16:
        return error(400, f"'code' must be up to 16 digits, got {prefix!r}")
    rows = await context(request).records.components(prefix, MAX_COMPONENTS, principal(request).district)
    return JSONResponse({"components": [
        {"code": r["code"], "device": r["device"], "lat": r["lat"], "lon": r["lon"], "grid": r["grid"],
         "updated_at": datetime_to_ms(r["updated_at"])} for r in rows]})
