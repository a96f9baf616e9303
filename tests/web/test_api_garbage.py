"""Every API route, fed garbage: query strings, path segments and bodies never produce a
server error, and the service keeps serving."""

from __future__ import annotations

import json
import re
import string
from urllib.parse import quote

import httpx
import trio
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from starlette.routing import Mount, Route

from tests.harness import auth_headers, start_service
from web.app import ROUTES

GET_ROUTES = ["/api/config", "/api/grids", "/api/devices", "/api/devices/{x}", "/api/devices/{x}/track", "/api/geocode",
              "/api/dead-letters", "/api/alarms", "/api/components", "/api/alerts", "/api/coverage/live", "/api/reports/coverage",
              "/api/patrol/plan", "/healthz", "/metrics", "/static/{x}", "/"]
BODY_ROUTES = [("PUT", "/api/patrol/plan"), ("POST", "/api/patrol/exceptions"), ("POST", "/api/devices/{x}/locate")]
KEYS = ["from", "to", "lat", "lon", "limit", "open", "date", "code", "x"]

text = st.text(alphabet=string.printable + "测试网格\x00\u202e", max_size=40)
junk_value = st.one_of(text, st.sampled_from(["NaN", "inf", "-1", "1e309", "99999999999999999999", "2026-13-45", "", "0x10",
                                              "1795000000000", "-90.0001", "null", "[]"]))
query = st.dictionaries(st.sampled_from(KEYS), junk_value, max_size=4)
bodies = st.one_of(st.binary(max_size=200), st.just(b"{}"), st.just(b'{"areas": 1}'), st.just(b'{"type": "leave"}'),
                   st.just(b'{"shifts": [{"area": "x"}]}'), st.just(b"[" * 5000), st.just(b'{"type": "holiday", "day": "not a day"}'))


async def test_no_route_answers_garbage_with_a_server_error(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=headers) as http:
            statuses: list[tuple[str, int]] = []

            @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(st.sampled_from(GET_ROUTES + [f"{m} {p}" for m, p in BODY_ROUTES]), text, query, bodies)
            def case(route, segment, params, body):
                method, _, path = route.rpartition(" ")
                url = path.replace("{x}", quote(segment, safe="") or "x")
                statuses.append((route, trio.from_thread.run(_request, http, method or "GET", url, params, body)))

            await trio.to_thread.run_sync(case)
            health = (await http.get("/healthz")).status_code
        nursery.cancel_scope.cancel()
    errors = [(r, s) for r, s in statuses if s >= 500 and not (r == "/healthz" and s == 503)]
    assert errors == []
    assert health == 200
    assert len({r for r, _ in statuses}) >= 12  # the examples reached most routes


async def _request(http: httpx.AsyncClient, method: str, url: str, params: dict, body: bytes) -> int:
    if method == "GET":
        return (await http.get(url, params=params)).status_code
    return (await http.request(method, url, params=params, content=body)).status_code


async def test_inputs_at_the_edges_of_the_calendar_and_impossible_ids_are_client_errors(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=headers) as http:
            assert (await http.put("/api/patrol/plan", content=b"{}")).status_code == 200  # a plan: reports are computed
            answers = {url: (await http.get(url)).status_code for url in [
                "/api/devices/c%000001/track",
                "/api/devices/c0001%0A/track",
                "/api/devices/nobody/track?to=0001-01-01T00:10:00Z",
                "/api/devices/nobody/track?to=0001-01-01T00:00:00%2B01:00",
                "/api/reports/coverage?date=0001-01-01",
                "/api/reports/coverage?date=9999-12-31",
            ]}
            exception = await http.post("/api/patrol/exceptions", content=b"5")
        nursery.cancel_scope.cancel()
    assert answers == {
        "/api/devices/c%000001/track": 404,
        "/api/devices/c0001%0A/track": 404,
        "/api/devices/nobody/track?to=0001-01-01T00:10:00Z": 400,  # before 2000: no time the API takes
        "/api/devices/nobody/track?to=0001-01-01T00:00:00%2B01:00": 400,
        "/api/reports/coverage?date=0001-01-01": 400,
        "/api/reports/coverage?date=9999-12-31": 400,
    }
    assert (exception.status_code, exception.json()) == (422, {"error": "a plan exception is a JSON object"})


def route_table() -> list[tuple[str, str, list[str]]]:
    """(method, path template, path parameters) of every route the application serves."""
    table = []
    for route in ROUTES:
        if isinstance(route, Route):
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                table.append((method, route.path, list(route.param_convertors)))
        elif isinstance(route, Mount):
            table.append(("GET", route.path + "/{path}", ["path"]))
    return table


ROUTE_TABLE = route_table()
# routes an admin may not call, and the role that feeds them garbage instead
AS_ROLE = {"POST /api/cases": "commander", "POST /api/cases/{case_id}/actions/{action}": "commander"}
json_docs = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                         lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                         max_leaves=20)
any_body = st.one_of(json_docs.map(lambda doc: json.dumps(doc).encode()), st.binary(max_size=100),
                     st.sampled_from([b"null", b"5", b'"x"', b"NaN", b"[]", b"[1, 2]", b"-Infinity", b"1e999"]))
any_query = st.dictionaries(st.sampled_from([*KEYS, "type", "device", "area"]), junk_value, max_size=4)


PARAMETERS = {*KEYS, "device", "path", "Host", "Origin", "Content-Length", "Authorization", "name", "password", "current", "new"}


def names_what_is_wrong(message: str) -> bool:
    """A 4xx message names the query parameter (quoted), the device, the body, or the member of
    a JSON body (``exceptions[0].type must ...``) it is about. Open311's own error form
    (``[{"code": 400, "description": ...}]``) is read for its description, which may also
    begin with the parameter it is about (``service_code: ...``)."""
    if message.startswith('[{"code"'):
        message = json.loads(message)[0]["description"]
        named = re.match(r"([A-Za-z_]+):? ", message)
        if named and named.group(1) in PARAMETERS:
            return True
    quoted = set(re.findall(r"'([A-Za-z_-]+)'", message))
    member = re.match(r"[A-Za-z_]+(\[\d+\]|\.[A-Za-z_]+)* (must|is|has|needs) ", message)
    return bool(quoted & PARAMETERS) or member is not None or message.startswith(
        ("unknown device ", "unknown query parameter ", "body ", "body: ", "the body ", "a patrol plan ", "a plan exception "))


async def test_every_route_answers_garbage_with_a_client_error_that_names_the_parameter(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        # a route an admin may not call (the case actions) is fed as a commander
        commander = await auth_headers(store, role="commander")
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=headers) as http:
            assert (await http.put("/api/patrol/plan", content=b"{}")).status_code == 200  # a plan: every route is live
            answers: list[tuple[str, str, int, str]] = []

            @hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
            @given(text, any_query, any_body)
            def case(route, segment, params, body):
                method, template, path_params = route
                url = template
                for name in path_params:
                    url = url.replace("{" + name + "}", quote(segment, safe="") or "x")
                answer = trio.from_thread.run(_answer, http, method, url, params, body, AS_ROLE.get(f"{method} {template}")
                                              and commander)
                answers.append((f"{method} {template}", url, *answer))
                note = f"{method} {url} {params} -> {answer}"
                assert answer[0] < 500, note
                if 400 <= answer[0] < 500 and template not in ("/static/{path}",) and answer[0] not in (404, 405):
                    assert names_what_is_wrong(answer[1]), note

            for route in ROUTE_TABLE:
                await trio.to_thread.run_sync(case, route)
            health = (await http.get("/healthz")).status_code
        nursery.cancel_scope.cancel()
    assert health == 200
    assert {route for route, *_ in answers} == {f"{m} {p}" for m, p, _ in ROUTE_TABLE}


async def _answer(http: httpx.AsyncClient, method: str, url: str, params: dict, body: bytes,
                  headers: dict[str, str] | None = None) -> tuple[int, str]:
    response = await http.request(method, url, params=params or None, content=body if method != "GET" else None,
                                  headers=headers or None)
    try:
        message = str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        message = response.text[:200]
    return response.status_code, message


async def test_inputs_that_once_gave_server_errors_are_client_errors_naming_the_parameter(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=headers) as http:
            assert (await http.put("/api/patrol/plan", content=b"{}")).status_code == 200
            gets = {url: await _answer(http, "GET", url, {}, b"") for url in [
                "/api/devices/c%000001/track",
                "/api/devices/nobody/track?to=0001-01-01",
                "/api/alerts?limit=" + "9" * 100,
                "/api/dead-letters?limit=" + "1" * 100,
            ]}
            exceptions = {body: await _answer(http, "POST", "/api/patrol/exceptions", {}, body)
                          for body in [b"null", b"5", b'"leave"', b"NaN", b"[]", b'[{"type": "leave"}]']}
            # refused, and audited with what was sent: NaN and Infinity, which PostgreSQL's json refuses
            infinite = await _answer(http, "POST", "/api/patrol/exceptions", {}, b'{"type": "leave", "day": Infinity}')
        nursery.cancel_scope.cancel()
    assert gets["/api/devices/c%000001/track"] == (404, "unknown device 'c\\x000001'")
    assert gets["/api/devices/nobody/track?to=0001-01-01"][0] in (400, 404)
    assert gets["/api/alerts?limit=" + "9" * 100] == (400, f"'limit' must be 1..5000, got '{'9' * 100}'")
    assert gets["/api/dead-letters?limit=" + "1" * 100][0] == 400
    assert infinite[0] == 422 and infinite[1].startswith("body: "), infinite
    assert exceptions == {body: (422, "a plan exception is a JSON object")
                          for body in [b"null", b"5", b'"leave"', b"NaN", b"[]", b'[{"type": "leave"}]']}
