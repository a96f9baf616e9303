"""Who may call each route, declared next to it in ``web.app.ROUTES`` and enforced here.

Every route is wrapped with ``guard(route, policy)``: the policy names the roles allowed
and how the route's data is scoped, and the wrapper refuses before the endpoint runs:

- no principal (authentication found no valid cookie or token): 401 ``{"error": ...}``;
  the map page itself redirects to the login page instead; a WebSocket is accepted and
  closed with 1008 (policy violation), so the client sees why;
- a role not in the policy, or a district account on a city-only route, or a collector
  asking for a device that is not its own: 403;
- a state-changing request authenticated by the session cookie without the session's
  ``X-CSRF-Token``: 403 (bearer tokens need none: browsers never send them on their own).

``create_app`` refuses to build an application with a route that has no policy, and
``tests/web/test_policy.py`` enumerates the routes, so a route cannot be added without
saying who may call it.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from web.principal import PRINCIPAL_KEY, Principal, Role

CSRF_KEY = "gridwatch.csrf"  # the session's anti-forgery token, put in the scope by authentication
METRICS_KEY = "gridwatch.metrics_token"  # True: the request carried the configured metrics token
UNAVAILABLE_KEY = "gridwatch.auth_unavailable"  # why credentials could not be checked (database out)
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


class Scoping(StrEnum):
    """How a route's data is limited to the caller's scope."""

    NONE = "none"  # holds no district's data (the page, configuration, the caller's own session)
    DISTRICT = "district"  # the endpoint keeps to Principal.district (None: the whole city)
    CITY = "city"  # city-wide data that no district account may see (refused with 403)
    OWN_DEVICE = "own-device"  # as DISTRICT; a collector only for its own device ({device})


@dataclass(frozen=True, slots=True)
class Policy:
    roles: frozenset[Role]  # empty: public, no authentication asked
    scoping: Scoping = Scoping.NONE
    page: bool = False  # a browser page: without a session, redirect to the login page
    metrics_token: bool = False  # also answers the configured [auth] metrics_token

    @property
    def public(self) -> bool:
        return not self.roles


def allow(*roles: Role, scoping: Scoping = Scoping.DISTRICT, **flags: bool) -> Policy:
    return Policy(frozenset(roles), scoping, **flags)


PUBLIC = Policy(frozenset())
EVERYONE = (Role.ADMIN, Role.COMMANDER, Role.SUPERVISOR, Role.VIEWER, Role.COLLECTOR)
READERS = (Role.ADMIN, Role.COMMANDER, Role.SUPERVISOR, Role.VIEWER)  # "viewer and up"


def guard(route: BaseRoute, policy: Policy) -> BaseRoute:
    """``route`` with ``policy`` enforced in front of its endpoint (and kept on it as
    ``route.policy`` for whoever enumerates the routes)."""
    app = getattr(route, "app", None)
    if app is None:
        raise TypeError(f"cannot guard {route!r}: it has no ASGI app")
    route.app = _Enforce(app, policy)  # type: ignore[attr-defined]
    route.policy = policy  # type: ignore[attr-defined]
    return route


def policy_of(route: BaseRoute) -> Policy | None:
    found = getattr(route, "policy", None)
    return found if isinstance(found, Policy) else None


def refusal(principal: Principal | None, policy: Policy, scope: Scope) -> tuple[int, str] | None:
    """Why ``principal`` may not make this request (status, reason), None when it may."""
    if policy.public:
        return None
    if principal is None:
        return 401, "authentication required: log in, or send 'Authorization: Bearer <token>'"
    if principal.role not in policy.roles:
        return 403, f"role {principal.role.value!r} may not use this route"
    if policy.scoping is Scoping.CITY and principal.district is not None:
        return 403, "city-wide data: not for an account scoped to one district"
    if policy.scoping is Scoping.OWN_DEVICE and principal.role is Role.COLLECTOR:
        asked = scope.get("path_params", {}).get("device")
        if principal.device is None or asked != principal.device:
            return 403, "a collector sees its own device only"
    expected = scope.get(CSRF_KEY)  # only there when the session cookie authenticated the request
    if expected is not None and scope["type"] == "http" and scope.get("method") not in SAFE_METHODS:
        given = _header(scope, CSRF_HEADER)
        if given is None or not hmac.compare_digest(given.encode(), str(expected).encode()):
            return 403, "missing or wrong 'X-CSRF-Token' (GET /api/session gives it)"
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class _Enforce:
    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        who = scope.get(PRINCIPAL_KEY)
        principal = who if isinstance(who, Principal) else None
        if self.policy.metrics_token and scope.get(METRICS_KEY) is True:
            await self.app(scope, receive, send)
            return
        refused = refusal(principal, self.policy, scope)
        if refused is not None and refused[0] == 401 and scope.get(UNAVAILABLE_KEY):
            refused = 503, str(scope[UNAVAILABLE_KEY])
        if refused is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await _close_websocket(receive, send, TRY_AGAIN_LATER if refused[0] == 503 else POLICY_VIOLATION, refused[1])
        elif refused[0] == 401 and self.policy.page:
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", _login_location(scope)), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
        else:
            await _json_error(send, *refused)


def bearer_of(scope: Scope) -> str | None:
    header = _header(scope, b"authorization")
    if header is None:
        return None
    kind, _, value = header.partition(" ")
    return value.strip() if kind.lower() == "bearer" and value.strip() else None


def bearer_matches(scope: Scope, expected: str) -> bool:
    given = bearer_of(scope)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def _json_error(send: Send, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="gridwatch"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _close_websocket(receive: Receive, send: Send, code: int, reason: str) -> None:
    """Accept, then close with 1008: a handshake refused outright reaches a browser as a
    bare failure, while a close frame carries the code and the reason."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": code, "reason": reason[:120]})


def _login_location(scope: Scope) -> bytes:
    """The login page, told which page to come back to when it is not the map's root (the
    big screen at /wall, or /?wall=1, logs in again into its own mode)."""
    query = scope.get("query_string", b"")
    here = scope.get("path", "/") + (f"?{query.decode('latin-1')}" if query else "")
    return b"/login" if here == "/" else b"/login?next=" + quote(here, safe="/").encode("ascii")
