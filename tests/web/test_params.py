"""What the API takes: one rule for time (ISO 8601 with an offset, epoch milliseconds, or
a local time read in the city's zone; seconds and far-off years refused by name), the
query parameters each route declares (any other a 400 naming it), days of the city, and
plan exceptions only for collectors the plan knows."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import msgpack
import pytest
import trio
from starlette.routing import Mount, Route, WebSocketRoute
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import connect as ws_connect

from protocols.epoch import datetime_to_ms
from tests.harness import LAT, LON, auth_headers, start_service, ws_url
from tests.helpers import apublish, wait_for
from tests.web.access import CITY_ADMIN, as_principal
from tests.web.districts import COLLECTOR, QILIHE, start_two_districts
from web.app import ROUTES, create_app
from web.params import ANY_PARAMS, accepted_params
from web.principal import Principal, Role

NOW = datetime(2026, 12, 1, 7, 30, tzinfo=UTC)  # 15:30 in Beijing
FIXES = [datetime(2026, 12, 1, 7, minute, tzinfo=UTC) for minute in (0, 10, 20)]
UNKNOWN = "devise"  # a misspelt filter
BODIES = {"PUT /api/patrol/plan": b"{}", "POST /api/patrol/exceptions": b"{}", "POST /api/session": b"{}",
          "POST /api/session/password": b"{}", "POST /api/admin/devices": b"{}"}


def http_routes() -> list[tuple[str, str, Route]]:
    out = []
    for route in ROUTES:
        if isinstance(route, Route):
            out.extend((method, route.path, route) for method in sorted((route.methods or {"GET"}) - {"HEAD"}))
    return out


def test_every_route_declares_the_query_parameters_it_takes():
    undeclared = [path for path in (getattr(r, "path", "") for r in ROUTES)
                  if not any(accepted_params(getattr(r, "endpoint", None)) is not None for r in ROUTES if getattr(r, "path", "") == path)]
    # static files are files, not endpoints (a cache-busting ?v= is theirs to ignore)
    assert undeclared == ["/static"]
    pages = sorted({path for _m, path, route in http_routes() if accepted_params(route.endpoint) == ANY_PARAMS})
    assert pages == ["/", "/login", "/wall"]  # the HTML pages: their query string is the page script's


async def test_every_endpoint_refuses_an_unknown_query_parameter_by_name(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    answers: dict[str, httpx.Response] = {}
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        app = as_principal(create_app(running.web), CITY_ADMIN)
        # the routes an administrator may not use (a case is opened and moved by a commander)
        commander = as_principal(create_app(running.web), Principal("dispatch", Role.COMMANDER, None, 3))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=commander), base_url="http://127.0.0.1") as other:
            for method, path, route in http_routes():
                if accepted_params(route.endpoint) == ANY_PARAMS:
                    continue
                url = (path.replace("{device}", "c0001").replace("{name}", "alarms.csv").replace("{case_id}", "1")
                       .replace("{action}", "file").replace("{department}", "HW").replace("{account}", "nobody")
                       .replace("{format}", "json").replace("{service_code}", "C0101").replace("{service_request_id}", "1"))
                asked = dict(params={UNKNOWN: "c0001"}, content=BODIES.get(f"{method} {path}"))
                answer = await http.request(method, url, **asked)
                if answer.status_code == 403:
                    answer = await other.request(method, url, **asked)
                answers[f"{method} {path}"] = answer
            known = await http.get("/api/alarms", params={"limit": "5"})
        async with ws_connect(ws_url(running) + f"?{UNKNOWN}=1", additional_headers=await auth_headers(store)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        nursery.cancel_scope.cancel()
    assert len(answers) >= 25
    for key, response in answers.items():
        assert response.status_code == 400, (key, response.status_code, response.text)
        body = response.json()
        said = body[0]["description"] if key.split()[1].startswith("/open311/") else body["error"]  # Open311's own form
        assert f"unknown query parameter '{UNKNOWN}'" in said, key
    assert "this endpoint takes: limit" in answers["GET /api/alarms"].json()["error"]
    assert known.status_code == 200
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert f"'{UNKNOWN}'" in closed.value.rcvd.reason


async def test_times_by_the_one_rule_and_the_refused_ones_named(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    now_ms = datetime_to_ms(NOW)
    tracks: dict[str, httpx.Response] = {}
    refused: dict[str, httpx.Response] = {}
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings, clock_ms=lambda: now_ms)
        await apublish(broker, [("gw/v1/620105/collector/c0402/pos",
                                 msgpack.packb({"t": datetime_to_ms(t), "lat": LAT + i * 0.0002, "lon": LON, "acc": 5.0}))
                                for i, t in enumerate(FIXES)])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 3)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            for name, query in {
                "local and offset": {"from": "2026-12-01T15:05:00", "to": "2026-12-01T15:15:00+08:00"},
                "milliseconds and Z": {"from": str(datetime_to_ms(FIXES[0]) - 60_000), "to": "2026-12-01T07:25:00Z"},
                "local with a space": {"from": "2026-12-01 15:21:00", "to": "2026-12-01 15:25:00"},
            }.items():
                tracks[name] = await http.get("/api/devices/c0402/track", params=query)
            for name, query in {
                "from seconds": {"from": "1764572400"},
                "to seconds": {"to": "999999999"},
                "from 1999": {"from": "1999-12-31T12:00:00Z"},
                "to 2101": {"to": "2101-01-01T00:00:00+08:00"},
                "to 1970 ms": {"to": "0"},
                "from words": {"from": "yesterday"},
                "to huge ms": {"to": "99999999999999999999"},
            }.items():
                refused[name] = await http.get("/api/devices/c0402/track", params=query)
            days = {raw: await http.get("/api/reports/coverage", params={"date": raw})
                    for raw in ("9999-12-31", "1999-12-31", "2026-02-30", "20261201")}
        nursery.cancel_scope.cancel()
    one = tracks["local and offset"].json()
    assert datetime.fromisoformat(one["properties"]["from"]) == datetime(2026, 12, 1, 7, 5, tzinfo=UTC)
    assert datetime.fromisoformat(one["properties"]["to"]) == datetime(2026, 12, 1, 7, 15, tzinfo=UTC)
    assert one["geometry"]["type"] == "Point"  # one fix: no line of one position
    assert one["properties"]["times"] == [datetime_to_ms(FIXES[1])]
    three = tracks["milliseconds and Z"].json()
    assert three["geometry"]["type"] == "LineString" and len(three["geometry"]["coordinates"]) == 3
    none = tracks["local with a space"].json()
    assert (none["type"], none["features"]) == ("FeatureCollection", [])
    for name, response in refused.items():
        param = name.split()[0]
        assert response.status_code == 400, (name, response.text)
        assert f"'{param}'" in response.json()["error"], name
    assert "send epoch milliseconds" in refused["from seconds"].json()["error"]
    assert "send epoch milliseconds" in refused["to seconds"].json()["error"]
    assert "between 2000 and 2100" in refused["from 1999"].json()["error"]
    for raw, response in days.items():
        assert response.status_code == 400, raw
        assert "'date'" in response.json()["error"], raw


async def test_an_exception_for_a_collector_the_plan_does_not_know_is_refused_and_changes_nothing(settings, broker, tmp_path):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_two_districts(nursery, settings, tmp_path)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            before = (await http.get("/api/patrol/plan")).json()
            nobody = await http.post("/api/patrol/exceptions", json={"type": "leave", "collector": "c9999", "day": "2026-11-25"})
            taker = await http.post("/api/patrol/exceptions", json={"type": "swap", "day": "2026-11-25",
                                                                     "giver": COLLECTOR[QILIHE], "taker": "c9998"})
            after = (await http.get("/api/patrol/plan")).json()
            known = await http.post("/api/patrol/exceptions", json={"type": "leave", "collector": COLLECTOR[QILIHE],
                                                                     "day": "2026-11-25"})
        nursery.cancel_scope.cancel()
    assert nobody.status_code == 422 and "unknown collector 'c9999'" in nobody.json()["error"]
    assert taker.status_code == 422 and "'c9998'" in taker.json()["error"]
    assert after == before  # the version too
    assert known.status_code == 201 and known.json()["version"] == before["version"] + 1


def test_websocket_and_mount_routes_are_accounted_for():
    kinds = {type(r) for r in ROUTES}
    assert kinds <= {Route, WebSocketRoute, Mount}
    assert all(accepted_params(r.endpoint) == frozenset() for r in ROUTES if isinstance(r, WebSocketRoute))


async def test_a_yes_no_parameter_takes_yes_or_no_and_refuses_anything_else_by_name(settings, broker):
    """``open=`` of the alert list and its export: 1/0 (true/false, yes/no); a typo such as
    ``open=on`` or ``open=True`` is a 400 naming it, not the whole list instead of the open ones."""
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            got = {(path, value): await http.get(path, params={"open": value})
                   for path in ("/api/alerts", "/api/exports/alerts.csv")
                   for value in ("1", "0", "true", "false", "yes", "no", "", "on", "True", "2", "open")}
        nursery.cancel_scope.cancel()
    for (path, value), response in got.items():
        if value in ("1", "0", "true", "false", "yes", "no", ""):
            assert response.status_code == 200, (path, value, response.text)
        else:
            assert response.status_code == 400, (path, value, response.text)
            assert "'open'" in response.json()["error"], (path, value)


async def test_a_parameter_given_twice_is_refused_by_name_not_read_as_one_of_them(settings, broker):
    """``from=…&from=…`` (a page that appended its default and the chosen value) is a 400
    naming it, not whichever came last."""
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            got = {path: await http.get(path) for path in (
                "/api/devices/c0402/track?from=2026-12-01T15:00:00&from=2026-12-02T15:00:00",
                "/api/alerts?open=1&open=0",
                "/api/exports/track.csv?device=c0402&device=c0403",
                "/api/alarms?limit=5&limit=500",
            )}
            once = await http.get("/api/alarms?limit=5")
        nursery.cancel_scope.cancel()
    for path, response in got.items():
        name = path.split("?")[1].split("=")[0]
        assert response.status_code == 400, (path, response.text)
        assert f"'{name}'" in response.json()["error"] and "twice" in response.json()["error"], (path, response.text)
    assert once.status_code == 200
