"""The HTTP and WebSocket edge: the command map, its API, health and metrics.

Thin by design: every route reads from the live state, the grid index or the store, and
turns bad input into a 4xx JSON error. H3 cells leave as hex strings here and only here.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo
from pathlib import Path

import trio
from h3.api import basic_int as h3
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from geofence.importer import to_feature_collection
from geofence.index import GridIndex
from geofence.plan import PlanError
from tracker.config import Settings
from tracker.live.fanout import ClientTooSlow, Hub
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from protocols.epoch import datetime_to_ms
from tracker.storage.store import Store

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"


@dataclass
class WebContext:
    settings: Settings
    store: Store
    index: GridIndex
    live: LiveState
    hub: Hub
    metrics: Metrics
    grids_geojson: dict = field(default_factory=lambda: {"type": "FeatureCollection", "features": []})
    healthy: Callable[[], tuple[bool, str]] = lambda: (True, "ok")
    # (device, placed or None) → how the "report now" request went out, None if unknown;
    # raises trio.BrokenResourceError when the device's link is down
    locate: Callable[[str, object], Awaitable[dict | None]] | None = None
    patrol: object = None  # tracker.live.patrol.Patrol, when patrol coverage is on

    async def reload_grids(self) -> None:
        self.grids_geojson = to_feature_collection(await self.store.grids())


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _parse_time(value: str | None, name: str, default: datetime) -> datetime:
    if value is None or value == "":
        return default
    try:
        if value.lstrip("-").isdigit():
            ms = int(value)
            if abs(ms) > 10**14:
                raise ValueError
            return datetime.fromtimestamp(ms / 1000, UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise HTTPException(400, f"{name!r} must be an ISO 8601 time or epoch milliseconds, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_float(request: Request, name: str, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        raise HTTPException(400, f"missing query parameter {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise HTTPException(400, f"{name!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise HTTPException(400, f"{name!r} must be between {low} and {high}, got {raw!r}")
    return value


def create_app(ctx: WebContext) -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def config(request: Request) -> Response:
        w = ctx.settings.web
        plan = getattr(ctx.patrol, "plan", None)
        return JSONResponse({"tile_url": w.tile_url, "map_datum": w.map_datum, "center": list(w.center), "zoom": w.zoom,
                             "district": ctx.settings.grid.district,
                             "zone": plan.zone if plan is not None else "Asia/Shanghai"})

    async def grids(request: Request) -> Response:
        return JSONResponse(ctx.grids_geojson)

    async def devices(request: Request) -> Response:
        return JSONResponse({"devices": ctx.live.snapshot()})

    async def device(request: Request) -> Response:
        view = ctx.live.view(request.path_params["device"])
        if view is None:
            return _error(404, f"unknown device {request.path_params['device']!r}")
        return JSONResponse(view)

    async def track(request: Request) -> Response:
        device_id = request.path_params["device"]
        now = datetime.now(UTC)
        end = _parse_time(request.query_params.get("to"), "to", now)
        start = _parse_time(request.query_params.get("from"), "from", end - timedelta(minutes=30))
        if start > end:
            return _error(400, "'from' is after 'to'")
        if device_id not in ctx.live.devices and not await ctx.store.fetch("SELECT 1 FROM devices WHERE id = $1", device_id):
            return _error(404, f"unknown device {device_id!r}")
        rows = await ctx.store.track(device_id, start, end, ctx.settings.web.track_max_points)
        return JSONResponse({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[r["lon"], r["lat"]] for r in rows]},
            "properties": {"device": device_id, "from": start.isoformat(), "to": end.isoformat(),
                           "times": [datetime_to_ms(r["t"]) for r in rows]},
        })

    async def geocode(request: Request) -> Response:
        lat = _parse_float(request, "lat", -90, 90)
        lon = _parse_float(request, "lon", -180, 180)
        cell = ctx.index.cell(lat, lon)
        place = ctx.index.place(lat, lon)
        body = {"lat": lat, "lon": lon, "cell": h3.int_to_str(cell), "grid": None, "community": None, "street": None, "district": None}
        if place is not None:
            body.update(grid=place.grid, community=place.community, street=place.street, district=place.district)
        return JSONResponse(body)

    async def dead_letters(request: Request) -> Response:
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            return _error(400, f"'limit' must be 1..1000, got {raw_limit!r}")
        rows = await ctx.store.dead_letters(int(raw_limit))
        return JSONResponse({"dead_letters": [
            {"id": r["id"], "at": r["at"].isoformat(), "protocol": r["protocol"], "source": r["source"], "device": r["device"],
             "reason": r["reason"], "error": r["error"], "raw_hex": bytes(r["raw"][:512]).hex()}
            for r in rows
        ]})

    async def locate(request: Request) -> Response:
        """Ask a device to report its position now (OwnTracks ``reportLocation``, or the
        handset command of the same name)."""
        device_id = request.path_params["device"]
        if ctx.locate is None:
            return _error(503, "no downlink in this service")
        try:
            sent = await ctx.locate(device_id, ctx.live.devices.get(device_id))
        except trio.BrokenResourceError as exc:
            return _error(503, str(exc) or "the device's link is down")
        if sent is None:
            return _error(404, f"unknown device {device_id!r}")
        return JSONResponse(sent | {"sent": True}, status_code=202)

    async def components(request: Request) -> Response:
        """Sensors bound to city components ("one manhole, one number"), by code prefix:
        admin code, then major and minor class (e.g. 6201050101 = water-supply covers)."""
        prefix = request.query_params.get("code", "")
        if not prefix.isdigit() and prefix != "" or len(prefix) > 16:
            return _error(400, f"'code' must be up to 16 digits, got {prefix!r}")
        rows = await ctx.store.components(prefix, 5000)
        return JSONResponse({"components": [
            {"code": r["code"], "device": r["device"], "lat": r["lat"], "lon": r["lon"], "grid": r["grid"],
             "updated_at": datetime_to_ms(r["updated_at"])} for r in rows]})

    async def alarms(request: Request) -> Response:
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            return _error(400, f"'limit' must be 1..1000, got {raw_limit!r}")
        rows = await ctx.store.alarm_events(int(raw_limit))
        return JSONResponse({"alarms": [
            {"id": r["id"], "source": r["source"], "device": r["device"], "component": r["component"], "kind": r["kind"],
             "raised": r["raised"], "t": datetime_to_ms(r["t"]), "value": r["value"], "detail": r["detail"],
             "lat": r["lat"], "lon": r["lon"], "grid": r["grid"]}
            for r in rows
        ]})

    def _patrol():
        if ctx.patrol is None:
            raise HTTPException(404, "patrol coverage is switched off ([patrol] enabled)")
        return ctx.patrol

    async def patrol_alerts(request: Request) -> Response:
        open_only = request.query_params.get("open", "0") in ("1", "true", "yes")
        raw_limit = request.query_params.get("limit", "200")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 5000:
            return _error(400, f"'limit' must be 1..5000, got {raw_limit!r}")
        rows = await ctx.store.patrol_alerts(open_only, int(raw_limit))
        return JSONResponse({"alerts": [
            {"id": r["id"], "kind": r["kind"], "collector": r["collector"], "slot_id": r["slot_id"], "area": r["area"], "grid": r["grid"],
             "raised_at": datetime_to_ms(r["raised_at"]), "updated_at": datetime_to_ms(r["updated_at"]),
             "resolved_at": datetime_to_ms(r["resolved_at"]) if r["resolved_at"] else None, "resolution": r["resolution"],
             "detail": json.loads(r["detail"]), "text": r["text"]}
            for r in rows
        ]})

    async def coverage_live(request: Request) -> Response:
        return JSONResponse(_patrol().live())

    async def coverage_report(request: Request) -> Response:
        patrol = _patrol()
        raw = request.query_params.get("date")
        try:
            day = date.fromisoformat(raw) if raw else datetime.now(UTC).astimezone(ZoneInfo(patrol.plan.zone if patrol.plan else "Asia/Shanghai")).date()
        except ValueError:
            return _error(400, f"'date' must be YYYY-MM-DD, got {raw!r}")
        return JSONResponse(await patrol.report(day))

    async def plan_get(request: Request) -> Response:
        patrol = _patrol()
        if patrol.plan is None:
            return _error(404, "no patrol plan has been loaded")
        return JSONResponse({"version": patrol.plan_version, "plan": patrol.plan.to_dict()})

    async def plan_put(request: Request) -> Response:
        patrol = _patrol()
        doc = await _json_body(request)
        try:
            version = await patrol.replace_plan(doc, note="PUT /api/patrol/plan")
        except PlanError as exc:
            return _error(422, str(exc))
        return JSONResponse({"version": version}, status_code=200)

    async def plan_exception(request: Request) -> Response:
        patrol = _patrol()
        if patrol.plan is None:
            return _error(404, "no patrol plan has been loaded")
        item = await _json_body(request)
        try:
            version = await patrol.replace_plan(patrol.plan.with_exception(item).to_dict(), note=f"exception {item.get('type') if isinstance(item, dict) else '?'}")
        except (PlanError, AttributeError) as exc:
            return _error(422, str(exc))
        return JSONResponse({"version": version}, status_code=201)

    async def healthz(request: Request) -> Response:
        ok, detail = ctx.healthy()
        return JSONResponse({"status": "ok" if ok else "degraded", "detail": detail}, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        client, snapshot = ctx.hub.connect()
        outcome: dict[str, tuple[int, str]] = {}
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_ws_reader, websocket, nursery.cancel_scope, outcome)
                nursery.start_soon(_ws_writer, websocket, client, snapshot, ctx.live, nursery.cancel_scope, outcome)
        finally:
            ctx.hub.disconnect(client)
        if "close" in outcome:
            code, reason = outcome["close"]
            ctx.metrics.inc("gridwatch_ws_dropped_total", reason="too_slow" if code == 1013 else "bad_input")
            try:
                await websocket.close(code=code, reason=reason)
            except (RuntimeError, WebSocketDisconnect):
                pass  # the peer went away first

    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, exc.detail)

    routes = [
        Route("/", index),
        Route("/api/config", config),
        Route("/api/grids", grids),
        Route("/api/devices", devices),
        Route("/api/devices/{device}", device),
        Route("/api/devices/{device}/track", track),
        Route("/api/geocode", geocode),
        Route("/api/devices/{device}/locate", locate, methods=["POST"]),
        Route("/api/alarms", alarms),
        Route("/api/components", components),
        Route("/api/alerts", patrol_alerts),
        Route("/api/coverage/live", coverage_live),
        Route("/api/reports/coverage", coverage_report),
        Route("/api/patrol/plan", plan_get, methods=["GET"]),
        Route("/api/patrol/plan", plan_put, methods=["PUT"]),
        Route("/api/patrol/exceptions", plan_exception, methods=["POST"]),
        Route("/api/dead-letters", dead_letters),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        WebSocketRoute("/ws", ws),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


async def _json_body(request: Request) -> object:
    body = await request.body()
    if len(body) > 4 << 20:
        raise HTTPException(413, "body larger than 4 MiB")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(400, "body must be JSON") from None


async def _ws_writer(websocket: WebSocket, client, snapshot: str, live: LiveState, cancel_scope: trio.CancelScope, outcome: dict) -> None:
    try:
        await websocket.send_text(snapshot)
        while True:
            for frame in await client.next_frames(live):
                await websocket.send_text(frame)
    except ClientTooSlow:
        outcome["close"] = (1013, "client too slow; reconnect for a snapshot")
    except (WebSocketDisconnect, RuntimeError):
        pass  # closed under us
    cancel_scope.cancel()


async def _ws_reader(websocket: WebSocket, cancel_scope: trio.CancelScope, outcome: dict) -> None:
    """The stream is server → client; the client may only send small JSON control
    messages (``{"type": "ping"}``, ignored). Anything else closes the socket with 1003."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            break
        text = message.get("text")
        problem = None
        if text is None or len(text) > 4096:
            problem = "expected a small JSON text message"
        else:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError:
                doc, problem = None, "malformed JSON"
            if problem is None and (not isinstance(doc, dict) or doc.get("type") != "ping"):
                problem = "unknown control message"
        if problem:
            outcome["close"] = (1003, problem)
            break
    cancel_scope.cancel()
