"""What needs attention: patrol alerts and device alarms, newest first, of the caller's
district (the store derives each record's district, see its ``district`` arguments)."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from protocols.epoch import datetime_to_ms
from web.context import context
from web.params import accepts, limit_param
from web.principal import principal


@accepts("open", "limit")
async def patrol_alerts(request: Request) -> Response:
    """Patrol alerts; ``open=1`` for the unresolved ones only."""
    open_only = request.query_params.get("open", "0") in ("1", "true", "yes")
    limit = limit_param(request, 200, 5000)
    rows = await context(request).records.patrol_alerts(open_only, limit, principal(request).district)
    return JSONResponse({"alerts": [
        {"id": r["id"], "kind": r["kind"], "collector": r["collector"], "slot_id": r["slot_id"], "area": r["area"],
         "grid": r["grid"], "raised_at": datetime_to_ms(r["raised_at"]), "updated_at": datetime_to_ms(r["updated_at"]),
         "resolved_at": datetime_to_ms(r["resolved_at"]) if r["resolved_at"] else None, "resolution": r["resolution"],
         "detail": json.loads(r["detail"]), "text": r["text"]}
        for r in rows
    ]})


@accepts("limit")
async def alarms(request: Request) -> Response:
    """Alarm events of sensors and vehicles, raised and cleared."""
    limit = limit_param(request, 100, 1000)
    rows = await context(request).records.alarm_events(limit, principal(request).district)
    return JSONResponse({"alarms": [
        {"id": r["id"], "source": r["source"], "device": r["device"], "component": r["component"], "kind": r["kind"],
         "raised": r["raised"], "t": datetime_to_ms(r["t"]), "value": r["value"], "detail": r["detail"],
         "lat": r["lat"], "lon": r["lon"], "grid": r["grid"]}
        for r in rows
    ]})
