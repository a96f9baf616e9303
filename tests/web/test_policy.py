"""Who may call which route: every route of the application declares a policy, and the
role × route matrix below (the access rules of the service, written out) holds: without
credentials 401 (JSON, with a reason), a role not allowed 403 (JSON), an allowed role
neither. Roles are given with ``as_principal``; the 401s go over real HTTP to the real
service, with no credentials at all."""

from __future__ import annotations

import json

import httpx
import pytest
import trio
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import connect as ws_connect

from tests.harness import start_service, ws_url
from tests.web.access import as_principal
from web.app import ROUTES, create_app
from web.policy import PUBLIC, guard, policy_of
from web.principal import Principal, Role

ADMIN, COMMANDER, SUPERVISOR, VIEWER, COLLECTOR = Role.ADMIN, Role.COMMANDER, Role.SUPERVISOR, Role.VIEWER, Role.COLLECTOR
EVERYONE = {ADMIN, COMMANDER, SUPERVISOR, VIEWER, COLLECTOR}
READERS = {ADMIN, COMMANDER, SUPERVISOR, VIEWER}

# Every route: the roles that may call it ("public": no credentials asked).
MATRIX: dict[str, set[Role] | str] = {
    "GET /": EVERYONE,
    "GET /wall": EVERYONE,
    "GET /login": "public",
    "POST /api/session": "public",
    "GET /api/session": EVERYONE,
    "DELETE /api/session": EVERYONE,
    "POST /api/session/password": EVERYONE,
    "GET /api/config": EVERYONE,
    "GET /api/grids": READERS,
    "GET /api/devices": READERS,
    "GET /api/devices/{device}": EVERYONE,  # a collector: its own device only
    "GET /api/devices/{device}/track": EVERYONE,  # likewise
    "GET /api/devices/{device}/history": EVERYONE,  # likewise
    "GET /api/devices/{device}/readings": READERS,
    "GET /api/geocode": READERS,
    "POST /api/devices/{device}/locate": {COMMANDER, ADMIN},
    "GET /api/alarms": READERS,
    "GET /api/components": READERS,
    "GET /api/alerts": READERS,
    "GET /api/coverage/live": READERS,
    "GET /api/reports/coverage": READERS,
    "GET /api/exports/{name}": READERS,
    "GET /api/patrol/plan": READERS,
    "PUT /api/patrol/plan": {SUPERVISOR, ADMIN},
    "POST /api/patrol/exceptions": {SUPERVISOR, ADMIN},
    "GET /api/dead-letters": {ADMIN},
    "GET /api/audit": {ADMIN},
    "GET /api/admin/devices": {ADMIN},
    "POST /api/admin/devices": {ADMIN},
    "POST /api/admin/devices/{device}/disable": {ADMIN},
    "POST /api/admin/devices/{device}/enable": {ADMIN},
    "POST /api/admin/devices/{device}/rotate": {ADMIN},
    "GET /open311/v2/services.{format}": "public",
    "GET /open311/v2/services/{service_code}.{format}": "public",
    "GET /open311/v2/requests.{format}": "public",
    "POST /open311/v2/requests.{format}": "public",  # the endpoint asks the form's api_key
    "GET /open311/v2/requests/{service_request_id}.{format}": "public",
    "GET /api/cases": READERS,
    "POST /api/cases": {COMMANDER, SUPERVISOR},
    "GET /api/cases/summary": READERS,
    "GET /api/cases/{case_id}": READERS,
    "GET /api/cases/{case_id}/timeline": READERS,
    "GET /api/cases/{case_id}/candidates": {COMMANDER, SUPERVISOR, ADMIN},
    # department members are accounts of any of these roles; the engine checks membership
    "POST /api/cases/{case_id}/actions/{action}": {COMMANDER, SUPERVISOR, VIEWER, COLLECTOR},
    "GET /api/taxonomy": READERS,
    "PUT /api/taxonomy": {ADMIN},
    "GET /api/departments": READERS,
    "PUT /api/departments/{department}/members/{account}": {ADMIN},
    "DELETE /api/departments/{department}/members/{account}": {ADMIN},
    "GET /api/openapi.json": EVERYONE,
    "GET /healthz": "public",
    "GET /metrics": {ADMIN},
    "WS /ws": READERS,
    "GET /static/{path}": "public",
}
OWN_DEVICE = "c0001"
CONCRETE = {"{device}": OWN_DEVICE, "{path}": "app.css", "{name}": "alarms.csv", "{case_id}": "1", "{action}": "file",
            "{department}": "HW", "{account}": "nobody", "{format}": "json", "{service_code}": "C0101",
            "{service_request_id}": "1"}
BODIES = {"PUT /api/patrol/plan": b"{}", "POST /api/patrol/exceptions": b"{}", "POST /api/session": b"{}",
          "POST /api/session/password": b"{}", "POST /api/admin/devices": b"{}"}


def route_keys() -> list[str]:
    keys = []
    for route in ROUTES:
        if isinstance(route, Route):
            keys.extend(f"{m} {route.path}" for m in sorted((route.methods or {"GET"}) - {"HEAD"}))
        elif isinstance(route, WebSocketRoute):
            keys.append(f"WS {route.path}")
        elif isinstance(route, Mount):
            keys.append(f"GET {route.path}/{{path}}")
    return keys


def url_of(key: str) -> tuple[str, str]:
    method, path = key.split(" ", 1)
    for name, value in CONCRETE.items():
        path = path.replace(name, value)
    return method, path


def test_every_route_has_a_policy():
    assert [getattr(r, "path", r) for r in ROUTES if policy_of(r) is None] == []


def test_an_application_with_a_route_without_a_policy_is_refused():
    async def endpoint(request):  # never called
        raise AssertionError

    with pytest.raises(ValueError, match="/api/new"):
        create_app(None, [*ROUTES, Route("/api/new", endpoint)])  # type: ignore[arg-type]
    guarded = guard(Route("/api/new", endpoint), PUBLIC)
    assert policy_of(guarded) is PUBLIC


def test_the_matrix_names_every_route_and_nothing_else():
    assert sorted(route_keys()) == sorted(MATRIX)


def _principal(role: Role, district: str | None = None, device: str | None = None) -> Principal:
    return Principal(f"{role.value}-{district or 'city'}", role, district, 1, "token", device)


async def test_each_role_gets_403_where_not_allowed_and_through_where_allowed(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    answers: dict[tuple[str, Role], int] = {}
    async with trio.open_nursery() as nursery:
        _store, running = await start_service(nursery, settings)
        for role in Role:
            app = as_principal(create_app(running.web), _principal(role, device=OWN_DEVICE if role is COLLECTOR else None))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
                for key in MATRIX:
                    if key.startswith("WS "):
                        continue
                    method, path = url_of(key)
                    response = await http.request(method, path, content=BODIES.get(key))
                    answers[(key, role)] = response.status_code
                    if response.status_code == 403:
                        assert "error" in response.json(), key
        nursery.cancel_scope.cancel()
    for (key, role), status in answers.items():
        allowed = MATRIX[key]
        if allowed == "public" or role in allowed:
            assert status not in (401, 403), (key, role, status)
        else:
            assert status == 403, (key, role, status)


async def test_a_collector_sees_only_its_own_device_and_a_district_account_no_city_wide_route(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        _store, running = await start_service(nursery, settings)
        collector = as_principal(create_app(running.web), _principal(COLLECTOR, "620105", OWN_DEVICE))
        district_admin = as_principal(create_app(running.web), _principal(ADMIN, "620105"))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=collector), base_url="http://127.0.0.1") as http:
            own = (await http.get(f"/api/devices/{OWN_DEVICE}/track")).status_code
            other = await http.get("/api/devices/c0002/track")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=district_admin), base_url="http://127.0.0.1") as http:
            dead = await http.get("/api/dead-letters")
            audit = (await http.get("/api/audit")).status_code
            devices = (await http.get("/api/devices")).status_code
        nursery.cancel_scope.cancel()
    assert own == 404  # through the policy: a device never heard of
    assert (other.status_code, other.json()) == (403, {"error": "a collector sees its own device only"})
    assert (dead.status_code, dead.json()["error"]) == (403, "city-wide data: not for an account scoped to one district")
    assert (audit, devices) == (403, 200)


async def test_without_credentials_every_route_but_the_public_ones_answers_401_json(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    answers: dict[str, httpx.Response] = {}
    async with trio.open_nursery() as nursery:
        _store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            for key in MATRIX:
                if not key.startswith("WS "):
                    method, path = url_of(key)
                    answers[key] = await http.request(method, path, content=BODIES.get(key))
        async with ws_connect(ws_url(running)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        nursery.cancel_scope.cancel()
    for key, response in answers.items():
        if MATRIX[key] == "public":
            assert response.status_code not in (401, 403), key
        elif key == "GET /":
            assert (response.status_code, response.headers["location"]) == (303, "/login")
        elif key == "GET /wall":  # the big screen logs in again into its own mode
            assert (response.status_code, response.headers["location"]) == (303, "/login?next=/wall")
        else:
            assert response.status_code == 401, key
            assert response.headers["content-type"] == "application/json"
            assert json.loads(response.text)["error"].startswith("authentication required"), key
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith("authentication required")
