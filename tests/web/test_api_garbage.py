"""Every API route, fed garbage: query strings, path segments and bodies never produce a
server error, and the service keeps serving."""

from __future__ import annotations

import string
from urllib.parse import quote

import httpx
import trio
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.harness import start_service

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
        _store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
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
        _store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
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
        "/api/devices/nobody/track?to=0001-01-01T00:10:00Z": 404,
        "/api/devices/nobody/track?to=0001-01-01T00:00:00%2B01:00": 400,
        "/api/reports/coverage?date=0001-01-01": 400,
        "/api/reports/coverage?date=9999-12-31": 400,
    }
    assert (exception.status_code, exception.json()) == (422, {"error": "a plan exception is a JSON object"})
