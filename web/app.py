"""The HTTP and WebSocket edge: the command map, its API, health and metrics.

Thin by design: every route reads from the live state, the grid index or the store that
the service hands over in a ``WebContext``, and turns bad input into a 4xx JSON error.
H3 cells leave as hex strings here and only here. Every route carries its policy (who may
call it, how its data is scoped: ``web.policy``), and ``create_app`` refuses a route
without one.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from web.auth import Authenticate
from web.context import Unavailable, WebContext
from web.guards import CheckHost, LimitBody
from web.params import error
from web.policy import EVERYONE, PUBLIC, READERS, Scoping, allow, guard, policy_of
from web.principal import Role
from web.routes import (
    admin_devices,
    alerts,
    audit,
    cases,
    commandmap,
    devices,
    exports,
    history,
    open311,
    ops,
    patrol,
    readings,
    reports,
    session,
)
from web.routes.commandmap import STATIC
from web.stream import live_feed

# Every route with its policy (web/policy.py): the roles that may call it and how its data
# is scoped. READ = viewer and up (admin, commander, supervisor, viewer); a collector sees
# the page, its own session and its own device only.
READ = allow(*READERS)
ADMIN = allow(Role.ADMIN, scoping=Scoping.CITY)
ROUTES: list[BaseRoute] = [
    guard(Route("/", commandmap.index), allow(*EVERYONE, scoping=Scoping.NONE, page=True)),
    # the same page in its big-screen (大屏) mode: the map and live figures, no controls
    guard(Route("/wall", commandmap.index), allow(*EVERYONE, scoping=Scoping.NONE, page=True)),
    guard(Route("/login", session.login_page), PUBLIC),
    guard(Route("/api/session", session.login, methods=["POST"]), PUBLIC),
    guard(Route("/api/session", session.whoami, methods=["GET"]), allow(*EVERYONE, scoping=Scoping.NONE)),
    guard(Route("/api/session", session.logout, methods=["DELETE"]), allow(*EVERYONE, scoping=Scoping.NONE)),
    guard(Route("/api/session/password", session.change_password, methods=["POST"]), allow(*EVERYONE, scoping=Scoping.NONE)),
    guard(Route("/api/config", commandmap.config), allow(*EVERYONE, scoping=Scoping.NONE)),
    guard(Route("/api/grids", commandmap.grids), READ),
    guard(Route("/api/devices", devices.devices), READ),
    guard(Route("/api/devices/{device}", devices.device), allow(*EVERYONE, scoping=Scoping.OWN_DEVICE)),
    guard(Route("/api/devices/{device}/track", devices.track), allow(*EVERYONE, scoping=Scoping.OWN_DEVICE)),
    guard(Route("/api/devices/{device}/history", history.history), allow(*EVERYONE, scoping=Scoping.OWN_DEVICE)),
    guard(Route("/api/devices/{device}/readings", readings.readings), READ),
    guard(Route("/api/geocode", commandmap.geocode), READ),
    guard(Route("/api/devices/{device}/locate", devices.locate, methods=["POST"]), allow(Role.COMMANDER, Role.ADMIN)),
    guard(Route("/api/alarms", alerts.alarms), READ),
    guard(Route("/api/components", devices.components), READ),
    guard(Route("/api/alerts", alerts.patrol_alerts), READ),
    guard(Route("/api/coverage/live", patrol.coverage_live), READ),
    guard(Route("/api/reports/coverage", reports.coverage_report), READ),
    # alarms, alerts, coverage and tracks as files (web.routes.exports), scoped as those lists
    guard(Route("/api/exports/{name}", exports.export), READ),
    guard(Route("/api/patrol/plan", patrol.plan_get, methods=["GET"]), READ),
    # the whole plan covers every district: replaced by city accounts only
    guard(Route("/api/patrol/plan", patrol.plan_put, methods=["PUT"]),
          allow(Role.SUPERVISOR, Role.ADMIN, scoping=Scoping.CITY)),
    guard(Route("/api/patrol/exceptions", patrol.plan_exception, methods=["POST"]), allow(Role.SUPERVISOR, Role.ADMIN)),
    # raw payloads and their senders' addresses
    guard(Route("/api/dead-letters", ops.dead_letters), allow(Role.ADMIN, scoping=Scoping.CITY)),
    guard(Route("/api/audit", audit.audit_entries), allow(Role.ADMIN, scoping=Scoping.CITY)),
    # the device registry and the broker accounts behind it: the city's administrators
    guard(Route("/api/admin/devices", admin_devices.devices_list, methods=["GET"]), ADMIN),
    guard(Route("/api/admin/devices", admin_devices.devices_add, methods=["POST"]), ADMIN),
    guard(Route("/api/admin/devices/{device}/disable", admin_devices.device_disable, methods=["POST"]), ADMIN),
    guard(Route("/api/admin/devices/{device}/enable", admin_devices.device_enable, methods=["POST"]), ADMIN),
    guard(Route("/api/admin/devices/{device}/rotate", admin_devices.device_rotate, methods=["POST"]), ADMIN),
    # Open311 GeoReport v2: public reads without personal data; a post carries its api_key
    # in the form, as the spec has it (checked by the endpoint: a commander's or supervisor's token)
    guard(Route("/open311/v2/services.{format}", open311.services), PUBLIC),
    guard(Route("/open311/v2/services/{service_code}.{format}", open311.service_definition), PUBLIC),
    guard(Route("/open311/v2/requests.{format}", open311.requests_list, methods=["GET"]), PUBLIC),
    guard(Route("/open311/v2/requests.{format}", open311.request_create, methods=["POST"]), PUBLIC),
    guard(Route("/open311/v2/requests/{service_request_id}.{format}", open311.request_one), PUBLIC),
    # cases: the engine behind them holds each action to the caller's role, district and
    # department (tracker/cases/roles.py); the policy here only keeps out who never may
    guard(Route("/api/cases", cases.cases_list, methods=["GET"]), READ),
    guard(Route("/api/cases", cases.case_create, methods=["POST"]), allow(Role.COMMANDER, Role.SUPERVISOR)),
    # before /api/cases/{case_id}, which would take "summary" for a case's number
    guard(Route("/api/cases/summary", cases.case_figures), READ),
    guard(Route("/api/cases/{case_id}", cases.case_get), READ),
    guard(Route("/api/cases/{case_id}/timeline", cases.case_timeline), READ),
    guard(Route("/api/cases/{case_id}/candidates", cases.case_candidates),
          allow(Role.COMMANDER, Role.SUPERVISOR, Role.ADMIN)),
    guard(Route("/api/cases/{case_id}/actions/{action}", cases.case_action, methods=["POST"]),
          allow(Role.COMMANDER, Role.SUPERVISOR, Role.VIEWER, Role.COLLECTOR)),
    guard(Route("/api/taxonomy", cases.taxonomy_get, methods=["GET"]), allow(*READERS, scoping=Scoping.NONE)),
    guard(Route("/api/taxonomy", cases.taxonomy_put, methods=["PUT"]), ADMIN),
    guard(Route("/api/departments", cases.departments_get), allow(*READERS, scoping=Scoping.NONE)),
    guard(Route("/api/departments/{department}/members/{account}", cases.member_put, methods=["PUT"]), ADMIN),
    guard(Route("/api/departments/{department}/members/{account}", cases.member_delete, methods=["DELETE"]), ADMIN),
    guard(Route("/api/openapi.json", cases.openapi), allow(*EVERYONE, scoping=Scoping.NONE)),
    guard(Route("/healthz", ops.healthz), PUBLIC),
    guard(Route("/metrics", ops.metrics), allow(Role.ADMIN, scoping=Scoping.CITY, metrics_token=True)),
    guard(WebSocketRoute("/ws", live_feed), READ),
    # the login page's assets and the map's (nothing in them is data)
    guard(Mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static"), PUBLIC),
]


async def http_error(request: Request, exc: Exception) -> Response:
    """The endpoints' 4xx and Starlette's own (404, 405), as ``{"error": message}``."""
    assert isinstance(exc, HTTPException)  # the handler of HTTPException only
    return error(exc.status_code, exc.detail)


async def unavailable(request: Request, exc: Exception) -> Response:
    """The database is down or stalled: a 503 that says so, not a 500 with a traceback."""
    return error(503, str(exc))


def create_app(ctx: WebContext, routes: list[BaseRoute] | None = None) -> Starlette:
    """The application over ``routes`` (default ``ROUTES``); every one must carry a policy."""
    routes = ROUTES if routes is None else routes
    unguarded = [getattr(r, "path", repr(r)) for r in routes if policy_of(r) is None]
    if unguarded:
        raise ValueError(f"routes without a policy (web.policy.guard): {', '.join(unguarded)}")
    limits = ctx.settings
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Unavailable: unavailable}, middleware=[
        Middleware(CheckHost, allowed=limits.allowed_hosts, metrics=ctx.metrics),
        Middleware(LimitBody, max_bytes=limits.max_body_bytes, metrics=ctx.metrics),
        Middleware(Authenticate, context=ctx),
    ])
    app.state.context = ctx
    return app
