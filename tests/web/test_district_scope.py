"""District scoping on real Mosquitto and PostgreSQL: an Anning (620105) commander sees
nothing of Qilihe (620103) through any route (devices, tracks, locate, grids, geocode,
components, alarms, patrol alerts, live coverage, the coverage report, the patrol plan)
nor on /ws, while a city account sees both districts. The web application is called as
each principal (tests/web/access.py), as authentication will have it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio

from tests.helpers import apublish, wait_for
from tests.web.access import as_principal
from tests.web.districts import (
    ANNING,
    ANNING_COMMANDER,
    CITY_COMMANDER,
    COLLECTOR,
    DEVICES,
    QILIHE,
    QILIHE_COMMANDER,
    area,
    assert_isolated,
    check_live_feeds,
    grid_codes,
    ids,
    moves,
    places,
    seed_records,
    start_two_districts,
    tilt,
)
from tracker.app.web_server import serve_web, web_config
from web.app import create_app
from web.principal import Role

EVERYONE = {ANNING: ANNING_COMMANDER, QILIHE: QILIHE_COMMANDER, None: CITY_COMMANDER}
# the plan is the supervisors' to change
SUPERVISORS = {key: dataclasses.replace(who, account=who.account.replace("commander", "supervisor"), role=Role.SUPERVISOR)
               for key, who in EVERYONE.items()}


@asynccontextmanager
async def clients(running, locates: list[str] | None = None,
                  principals: dict | None = None) -> AsyncIterator[dict[str | None, httpx.AsyncClient]]:
    """An HTTP client of the service's web application per principal: Anning's, Qilihe's,
    the city's (None). ``locates``: the devices the application asked the downlink to
    reach, in order."""
    ctx = running.web
    if locates is not None:
        downlink = ctx.locate

        async def locate(device: str) -> dict[str, Any] | None:
            locates.append(device)
            return await downlink(device)

        ctx = dataclasses.replace(ctx, locate=locate)
    app = create_app(ctx)
    out = {}
    try:
        for key, who in (principals or EVERYONE).items():
            out[key] = httpx.AsyncClient(transport=httpx.ASGITransport(app=as_principal(app, who)),
                                         base_url="http://localhost", timeout=10)
        yield out
    finally:
        for client in out.values():
            await client.aclose()


async def ingest_both_districts(broker, running, store) -> None:
    """Both districts' devices placed twice (a track), their sensors' alarms raised, all stored."""
    t0 = int(time.time() * 1000) - 10 * 60_000
    await apublish(broker, moves(0, t0) + moves(1, t0 + 60_000))
    await apublish(broker, [m for d in (ANNING, QILIHE) for m in tilt(DEVICES[d][2], t0 + 60_000)])
    every = ids(ANNING) | ids(QILIHE)
    await wait_for(lambda: every <= set(running.pipeline.live.devices))
    with trio.fail_after(10):
        while len(await store.fetch("SELECT 1 FROM alarm_events WHERE raised")) < 2 or \
                len(await store.fetch("SELECT 1 FROM devices")) < len(every) or \
                len(await store.fetch("SELECT 1 FROM components")) < 2:
            await trio.sleep(0.05)
    await seed_records(store)


def codes_of(doc: Any, key: str) -> set[str]:
    return {item[key] for item in doc}


async def test_every_route_answers_the_callers_district_only(settings, broker, tmp_path):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_two_districts(nursery, settings, tmp_path)
        await ingest_both_districts(broker, running, store)
        got: dict[str | None, dict[str, Any]] = {}
        locates: list[str] = []
        async with clients(running, locates) as http:
            for key, client in http.items():
                answers: dict[str, Any] = {}
                for name, path in (("devices", "/api/devices"), ("grids", "/api/grids"), ("components", "/api/components"),
                                   ("alarms", "/api/alarms"), ("alerts", "/api/alerts"), ("live", "/api/coverage/live"),
                                   ("report", "/api/reports/coverage"), ("plan", "/api/patrol/plan"),
                                   ("qilihe_components", "/api/components?code=620103")):
                    response = await client.get(path)
                    assert response.status_code == 200, (key, path, response.text)
                    answers[name] = response.json()
                for device in ("c1001", "c3001", "v3001"):
                    answers[f"device {device}"] = (await client.get(f"/api/devices/{device}")).status_code
                    answers[f"track {device}"] = await client.get(f"/api/devices/{device}/track")
                answers["locate v3001"] = (await client.post("/api/devices/v3001/locate")).status_code
                for district in (ANNING, QILIHE):
                    middle = places(district)[0]
                    answers[f"geocode {district}"] = (await client.get("/api/geocode", params={"lat": middle.lat, "lon": middle.lon})).json()
                got[key] = answers
        nursery.cancel_scope.cancel()

    def district_of_grid(code: str | None) -> str | None:
        return None if code is None else code[:6]

    for key, sees in ((ANNING, {ANNING}), (QILIHE, {QILIHE}), (None, {ANNING, QILIHE})):
        a = got[key]
        shown_ids = set().union(*(ids(d) for d in sees))
        assert {d["id"] for d in a["devices"]["devices"]} == shown_ids, key
        assert {f["properties"]["code"][:6] for f in a["grids"]["features"]} == sees, key
        assert len(a["grids"]["features"]) == 8 * len(sees)
        assert {c["code"][:6] for c in a["components"]["components"]} == sees, key
        assert {c["device"] for c in a["alarms"]["alarms"]} == {DEVICES[d][2].id for d in sees}, key
        alerts = a["alerts"]["alerts"]
        seeded = {(x["collector"], x["grid"]) for x in alerts if x["slot_id"].endswith("-slot")}
        assert seeded == {(COLLECTOR[d], g) for d in sees for g in (min(grid_codes(d)), None)}, key
        assert {x["collector"] for x in alerts} <= {COLLECTOR[d] for d in sees}, key
        assert {district_of_grid(g) for g in a["live"]["grids"]} == sees, key
        assert {s["area"] for s in a["live"]["slots"]} == {area(d) for d in sees}, key
        assert {district_of_grid(g) for g in a["live"]["unvisited"]} <= sees, key
        assert {g["grid"][:6] for g in a["report"]["grids"]} == sees, key
        assert codes_of(a["report"]["collectors"], "collector") == {COLLECTOR[d] for d in sees}, key
        plan = a["plan"]["plan"]
        assert set(plan["areas"]) == {area(d) for d in sees}, key
        assert {s["collector"] for s in plan["shifts"]} == {COLLECTOR[d] for d in sees}, key
        assert {(e["type"], e.get("collector")) for e in plan["exceptions"]} == {("holiday", None)} | {("leave", COLLECTOR[d]) for d in sees}
        assert set(plan["rules"]["areas"]) == {area(d) for d in sees}, key
        for district in (ANNING, QILIHE):
            geocoded = a[f"geocode {district}"]
            expected = places(district)[0].grid if district in sees else None
            assert (geocoded["grid"], geocoded["district"]) == (expected, district if district in sees else None), key
    # another district's device does not exist for a district account: 404, not 403
    assert (got[ANNING]["device c1001"], got[ANNING]["device c3001"], got[ANNING]["device v3001"]) == (200, 404, 404)
    assert got[ANNING]["track c3001"].status_code == 404
    assert got[ANNING]["locate v3001"] == 404
    assert locates == ["v3001", "v3001"]  # Qilihe's and the city's: Anning's request never reached the downlink
    assert got[QILIHE]["locate v3001"] == 202
    assert got[ANNING]["qilihe_components"]["components"] == []
    assert (got[QILIHE]["device c1001"], got[QILIHE]["device c3001"]) == (404, 200)
    assert (got[None]["device c1001"], got[None]["device c3001"]) == (200, 200)
    for key, device in ((ANNING, "c1001"), (QILIHE, "c3001"), (None, "c3001")):
        track = got[key][f"track {device}"]
        assert track.status_code == 200 and len(track.json()["geometry"]["coordinates"]) == 2, (key, track.text)
    assert got[None]["locate v3001"] == 202  # the handset's downlink went out


async def test_a_district_account_changes_only_its_own_part_of_the_plan(settings, broker, tmp_path):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        _store, running = await start_two_districts(nursery, settings, tmp_path)
        async with clients(running, principals=SUPERVISORS) as http:
            anning, city = http[ANNING], http[None]
            whole = (await city.get("/api/patrol/plan")).json()["plan"]
            refused_put = await anning.put("/api/patrol/plan", json=whole)
            refused = [await anning.post("/api/patrol/exceptions", json=item) for item in (
                {"type": "leave", "collector": COLLECTOR[QILIHE], "day": "2020-11-25"},
                {"type": "leave", "collector": "c9999", "day": "2020-11-25"},  # nobody's: as another district's
                {"type": "swap", "day": "2020-11-25", "giver": COLLECTOR[ANNING], "taker": COLLECTOR[QILIHE]},
                {"type": "reassign", "collector": COLLECTOR[ANNING], "day": "2020-11-25", "area": area(QILIHE)},
                {"type": "holiday", "day": "2020-10-02", "name": "国庆节"},
            )]
            added = await anning.post("/api/patrol/exceptions", json={"type": "leave", "collector": COLLECTOR[ANNING], "day": "2020-11-26"})
            bad = await anning.post("/api/patrol/exceptions", json={"type": "leave", "collector": COLLECTOR[ANNING], "day": "someday"})
            after = (await city.get("/api/patrol/plan")).json()["plan"]
            anning_view = (await anning.get("/api/patrol/plan")).json()["plan"]
            city_put = await city.put("/api/patrol/plan", json=whole)
        nursery.cancel_scope.cancel()
    assert refused_put.status_code == 403 and "city" in refused_put.json()["error"]
    assert [r.status_code for r in refused] == [403] * 5
    assert added.status_code == 201
    assert bad.status_code == 422
    # the one exception was added; nothing else changed, Qilihe's part least of all
    new_leave = {"type": "leave", "collector": COLLECTOR[ANNING], "day": "2020-11-26", "start": None}
    assert after == whole | {"exceptions": whole["exceptions"] + [new_leave]}
    assert new_leave in anning_view["exceptions"] and COLLECTOR[QILIHE] not in str(anning_view)
    assert city_put.status_code == 200  # the whole plan is the city's to replace


async def test_a_district_client_of_ws_gets_its_own_devices_and_alarms_only(settings, broker, tmp_path):
    """The live feed served as each principal: snapshot and deltas while both districts'
    devices move, and the alarms of both districts' sensors."""
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        _store, running = await start_two_districts(nursery, settings, tmp_path)
        app = create_app(running.web)
        urls = {}
        for key, who in EVERYONE.items():
            bound = await nursery.start(serve_web, as_principal(app, who), web_config("127.0.0.1", 0), running.pipeline.metrics)
            urls[key] = bound[0].replace("http://", "ws://") + "/ws"
        every = ids(ANNING) | ids(QILIHE)

        async def all_live() -> None:
            await wait_for(lambda: every <= set(running.pipeline.live.devices))

        watched = await check_live_feeds(broker, urls, {key: {} for key in urls}, all_live)
        nursery.cancel_scope.cancel()
    assert_isolated(watched)
