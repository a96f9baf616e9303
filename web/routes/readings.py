"""A sensor's readings over time (fill level, water level, tilt, battery, ...): the chart
in the map's details panel. Of the caller's district only: a sensor is its component's
district's, as its alarms are."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from protocols.epoch import datetime_to_ms, ms_to_datetime
from protocols.model import DEVICE_ID
from web.context import context
from web.params import accepts, error, limit_param, time_param
from web.principal import principal

READINGS_DEFAULT = timedelta(days=1)
READINGS_MAX_SPAN = timedelta(days=31)
# the fields a record may carry, in the order the page lists them
FIELDS = ("fill", "level", "water", "tilt", "gas", "smoke", "bat")


@accepts("from", "to", "limit")
async def readings(request: Request) -> Response:
    """The sensor's records between ``from`` and ``to`` (ISO 8601 or epoch ms; default the
    last day), oldest first, at most ``limit`` (the newest ones when there are more)."""
    ctx = context(request)
    district = principal(request).district
    device_id = request.path_params["device"]
    end = time_param(request, "to", ms_to_datetime(ctx.clock_ms()))
    start = time_param(request, "from", end - READINGS_DEFAULT)
    if start > end:
        return error(400, "'from' is after 'to'")
    if end - start > READINGS_MAX_SPAN:
        return error(400, f"'from' to 'to' spans more than {READINGS_MAX_SPAN.days} days")
    limit = limit_param(request, 2000, 10000)
    if not DEVICE_ID.fullmatch(device_id):
        return error(404, f"unknown device {device_id!r}")
    rows = await ctx.records.sensor_readings(device_id, start, end, limit, district)
    view = ctx.live.view(device_id)
    if not rows and (view is None or (district is not None and view["district"] != district)):
        return error(404, f"unknown device {device_id!r}")
    return JSONResponse({
        "device": device_id, "from": start.isoformat(), "to": end.isoformat(),
        "readings": [{"t": datetime_to_ms(r["t"]), "kind": r["kind"], **{f: r[f] for f in FIELDS if r[f] is not None}}
                     for r in rows],
    })
