"""The HTTP and WebSocket edge: the command map, its API, health and metrics.

Thin by design: every route reads from the live state, the grid index or the store that
the service hands over in a ``WebContext``, and turns bad input into a 4xx JSON error.
H3 cells leave as hex strings here and only here.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from web.context import Unavailable, WebContext
from web.guards import CheckHost, LimitBody
from web.params import error
from web.routes import admin_devices, alerts, commandmap, devices, ops, patrol, reports
from web.routes.commandmap import STATIC
from web.stream import live_feed

ROUTES: list[BaseRoute] = [
    Route("/", commandmap.index),
    Route("/api/config", commandmap.config),
    Route("/api/grids", commandmap.grids),
    Route("/api/devices", devices.devices),
    Route("/api/devices/{device}", devices.device),
    Route("/api/devices/{device}/track", devices.track),
    Route("/api/geocode", commandmap.geocode),
    Route("/api/devices/{device}/locate", devices.locate, methods=["POST"]),
    Route("/api/alarms", alerts.alarms),
    Route("/api/components", devices.components),
    Route("/api/alerts", alerts.patrol_alerts),
    Route("/api/coverage/live", patrol.coverage_live),
    Route("/api/reports/coverage", reports.coverage_report),
    Route("/api/patrol/plan", patrol.plan_get, methods=["GET"]),
    Route("/api/patrol/plan", patrol.plan_put, methods=["PUT"]),
    Route("/api/patrol/exceptions", patrol.plan_exception, methods=["POST"]),
    Route("/api/dead-letters", ops.dead_letters),
    Route("/api/admin/devices", admin_devices.devices_list, methods=["GET"]),
    Route("/api/admin/devices", admin_devices.devices_add, methods=["POST"]),
    Route("/api/admin/devices/{device}/disable", admin_devices.device_disable, methods=["POST"]),
    Route("/api/admin/devices/{device}/enable", admin_devices.device_enable, methods=["POST"]),
    Route("/api/admin/devices/{device}/rotate", admin_devices.device_rotate, methods=["POST"]),
    Route("/healthz", ops.healthz),
    Route("/metrics", ops.metrics),
    WebSocketRoute("/ws", live_feed),
    Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"),
]


async def http_error(request: Request, exc: Exception) -> Response:
    """The endpoints' 4xx and Starlette's own (404, 405), as ``{"error": message}``."""
    assert isinstance(exc, HTTPException)  # the handler of HTTPException only
    return error(exc.status_code, exc.detail)


async def unavailable(request: Request, exc: Exception) -> Response:
    """The database is down or stalled: a 503 that says so, not a 500 with a traceback."""
    return error(503, str(exc))


def create_app(ctx: WebContext) -> Starlette:
    limits = ctx.settings
    app = Starlette(routes=ROUTES, exception_handlers={HTTPException: http_error, Unavailable: unavailable}, middleware=[
        Middleware(CheckHost, allowed=limits.allowed_hosts, metrics=ctx.metrics),
        Middleware(LimitBody, max_bytes=limits.max_body_bytes, metrics=ctx.metrics),
    ])
    app.state.context = ctx
    return app
