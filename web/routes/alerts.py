"""What needs attention: patrol alerts and device alarms, newest first, of the caller's
district (the store derives each record's district, see its ``district`` arguments)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from alerts.messages import Catalogue, Lang, Severity, negotiate
from alerts.patrol import AlertKind
from protocols.epoch import datetime_to_ms
from web.context import WebContext, context
from web.params import accepts, flag_param, limit_param
from web.principal import principal


@accepts("open", "limit", "lang")
async def patrol_alerts(request: Request) -> Response:
    """Patrol alerts; ``open=1`` for the unresolved ones only."""
    open_only = flag_param(request, "open")
    limit = limit_param(request, 200, 5000)
    lang = negotiate(request.query_params.get("lang"), request.headers.get("accept-language"))
    ctx = context(request)
    rows = await ctx.records.patrol_alerts(open_only, limit, principal(request).district)
    return JSONResponse({"lang": lang.value, "alerts": [_alert(ctx.alert_messages, r, lang) for r in rows]})


def _alert(messages: Catalogue, r: Any, lang: Lang) -> dict[str, Any]:
    """A stored alert, its text rendered again from its facts in the asker's language."""
    detail = json.loads(r["detail"])
    kind = AlertKind(r["kind"]) if r["kind"] in AlertKind.__members__.values() else None
    severity = messages.severity(kind).value if kind is not None else Severity.WARNING.value
    try:
        texts = messages.texts(kind, detail, r["grid"], r["resolution"]) if kind is not None else {}
    except (ValueError, KeyError, TypeError):
        texts = {}  # a detail the catalogue's templates do not fit (a row older than them)
    text = texts.get(lang.value, r["text"])  # else: as stored
    return {"id": r["id"], "kind": r["kind"], "collector": r["collector"], "slot_id": r["slot_id"], "area": r["area"],
            "grid": r["grid"], "raised_at": datetime_to_ms(r["raised_at"]), "updated_at": datetime_to_ms(r["updated_at"]),
            "resolved_at": datetime_to_ms(r["resolved_at"]) if r["resolved_at"] else None, "resolution": r["resolution"],
            "detail": detail, "text": text, "texts": texts, "severity": severity}


@accepts("limit")
async def alarms(request: Request) -> Response:
    """Alarm events of sensors and vehicles, raised and cleared."""
    limit = limit_param(request, 100, 1000)
    ctx = context(request)
    rows = await ctx.records.alarm_events(limit, principal(request).district)
    return JSONResponse({"alarms": [
        {"id": r["id"], "source": r["source"], "device": r["device"], "component": r["component"], "kind": r["kind"],
         "raised": r["raised"], "t": datetime_to_ms(r["t"]), "value": r["value"], "limit": r["alarm_limit"],
         "label": _label(ctx, r["device"]), "detail": r["detail"],
         "lat": r["lat"], "lon": r["lon"], "grid": r["grid"]}
        for r in rows
    ]})


def _label(ctx: WebContext, device: str) -> str:
    """What the map calls the device (the registry's name, plate or person), else its id."""
    view = ctx.live.view(device)
    return view.get("label", device) if view is not None else device
