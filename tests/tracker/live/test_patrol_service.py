"""Patrol coverage in the running service, on real Mosquitto and PostgreSQL: alerts are
judged from the fixes, stored as episodes, streamed, and withdrawn when a late backlog
proves them wrong."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import msgpack
import pytest
import trio
from h3.api import basic_int as h3
from websockets.trio.client import connect as ws_connect

from tests.harness import DEMO_CITY, auth_headers, ws_url
from tests.helpers import apublish, wait_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
AREA = "620105003003"  # a community of the demo city: 12 unit grids
COLLECTOR = "c0500"
TOPIC = f"gw/v1/620105/collector/{COLLECTOR}/pos"
# The service runs on the test's clock (receive times included), so the scenario can be
# played on any day: yesterday in the city, and the same day a year ahead.
YESTERDAY = datetime.now(SHANGHAI).date() - timedelta(days=1)
DAYS = {"yesterday": YESTERDAY, "a year ahead": YESTERDAY + timedelta(days=365)}
DAY = YESTERDAY.isoformat()


@pytest.fixture(params=list(DAYS), autouse=True)
def day(request):
    """Every test here runs once per entry of DAYS; ``at`` reads the day chosen."""
    global DAY
    DAY = DAYS[request.param].isoformat()
    yield DAY


def at(hhmm: str) -> int:
    return int(datetime.fromisoformat(f"{DAY}T{hhmm}").replace(tzinfo=SHANGHAI).timestamp() * 1000)


def plan(grids: list[str]) -> dict:
    return {"areas": {AREA: {"name": "银滩路第3社区", "grids": grids}},
            "shifts": [{"collector": COLLECTOR, "area": AREA, "days": "Mon-Sun", "start": "08:00", "end": "10:00"}],
            "rules": {"areas": {AREA: {"min_cell_share": 0.3}}}}


def walk(cells_by_grid: dict[str, list[int]], grids: list[str], start_ms: int, step_ms: int) -> list[dict]:
    """A collector stepping from cell centre to cell centre through 40% of each grid."""
    fixes, t = [], start_ms
    for grid in grids:
        cells = sorted(cells_by_grid[grid], key=lambda c: h3.cell_to_latlng(c))
        for cell in cells[: int(len(cells) * 0.4) + 1]:
            lat, lon = h3.cell_to_latlng(cell)
            fixes.append({"t": t, "lat": round(lat, 7), "lon": round(lon, 7), "acc": 5.0})
            t += step_ms
    return fixes


async def test_a_backlog_uploaded_after_an_outage_withdraws_the_alerts_it_disproves(settings, broker):
    now = [at("08:00")]
    settings = settings.replace("patrol", offline_min=15.0, warning_lead_min=0.0, not_started_min=15.0, stationary_min=60.0)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(_store_for, settings.database.dsn)
        from tracker.app.service import import_grids, run_service

        await import_grids(store, str(DEMO_CITY), 12)
        cover = dict(await store.grid_cells())
        grids = sorted(g for g in set(cover.values()) if g.startswith(AREA))
        cells_by_grid = {g: [c for c, owner in cover.items() if owner == g] for g in grids}
        await store.save_plan(plan(grids))
        running = await nursery.start(lambda task_status: run_service(settings, store, clock_ms=lambda: now[0], task_status=task_status))
        patrol = running.patrol
        async with ws_connect(ws_url(running), additional_headers=await auth_headers(store)) as ws:
            await ws.recv()
            # 08:00–08:30: the first half of the grids, live
            first = walk(cells_by_grid, grids[:6], at("08:00"), 20_000)
            now[0] = first[-1]["t"]  # received as they were taken: the service's clock has moved on
            await apublish(broker, [(TOPIC, msgpack.packb(f)) for f in first])
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_fixes_ingested_total") >= len(first))
            # 09:00: nothing heard since 08:3x → offline
            now[0] = at("09:00")
            changes = await patrol.evaluate_now()
            assert [(c.change.value, c.alert.kind.value) for c in changes] == [("raised", "offline")]
            # 10:00: slot over, six grids never visited → one alert each
            now[0] = at("10:00")
            changes = await patrol.evaluate_now()
            assert sorted((c.change.value, c.alert.kind.value, c.alert.grid) for c in changes if c.alert.kind.value == "grid_not_covered") == [
                ("raised", "grid_not_covered", g) for g in grids[6:]]
            # 10:05: the handset uploads what it recorded from 08:40 to 09:5x in one batch
            now[0] = at("10:05")
            backlog = walk(cells_by_grid, grids[6:], at("08:40"), 45_000)
            assert backlog[-1]["t"] < at("10:00")
            await apublish(broker, [(TOPIC, msgpack.packb(backlog))])
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_fixes_ingested_total") >= len(first) + len(backlog))
            changes = await patrol.evaluate_now()
            resolved = sorted((c.alert.kind.value, c.alert.grid, c.alert.resolution.name) for c in changes if c.change.value == "resolved")
            frames = []
            with trio.move_on_after(2):
                while len([f for f in frames if f.get("type") == "alert"]) < 9 + len(resolved):
                    frames.append(json.loads(await ws.recv()))
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store)) as http:
            still_open = (await http.get("/api/alerts?open=1")).json()["alerts"]
            everything = (await http.get("/api/alerts")).json()["alerts"]
            report = (await http.get(f"/api/reports/coverage?date={DAY}")).json()
        nursery.cancel_scope.cancel()
    assert resolved == sorted([("offline", None, "DISPROVED")] + [("grid_not_covered", g, "DISPROVED") for g in grids[6:]])
    assert still_open == []
    assert {(a["kind"], a["resolution"]) for a in everything} == {("offline", "late fixes show it did not happen"),
                                                                  ("grid_not_covered", "late fixes show it did not happen")}
    streamed = [(f["change"], f["alert"]["kind"]) for f in frames if f.get("type") == "alert"]
    assert streamed.count(("resolved", "grid_not_covered")) == 6 and ("resolved", "offline") in streamed
    # the feed says it in both languages of the catalogue, with the kind's severity
    offline = [f["alert"] for f in frames if f.get("type") == "alert" and f["alert"]["kind"] == "offline"]
    assert {a["severity"] for a in offline} == {"major"}
    assert offline[-1]["text"].endswith("（已解除：迟到定位表明未发生）")
    assert offline[-1]["texts"]["en"].endswith("(resolved: late fixes show it did not happen)")
    (slot,) = report["collectors"]
    assert (slot["collector"], slot["grids_covered"], slot["grids_total"]) == (COLLECTOR, 12, 12)


async def _store_for(dsn, *, task_status=trio.TASK_STATUS_IGNORED):
    from tracker.storage.store import open_store

    async with open_store(dsn) as store:
        task_status.started(store)
        await trio.sleep_forever()


async def test_patrol_state_survives_a_restart_without_raising_an_alert_twice(settings, broker):
    now = [at("08:00")]
    settings = settings.replace("patrol", offline_min=15.0, warning_lead_min=0.0)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(_store_for, settings.database.dsn)
        from tracker.app.service import import_grids, run_service

        await import_grids(store, str(DEMO_CITY), 12)
        cover = dict(await store.grid_cells())
        grids = sorted(g for g in set(cover.values()) if g.startswith(AREA))
        cells_by_grid = {g: [c for c, owner in cover.items() if owner == g] for g in grids}
        await store.save_plan(plan(grids))

        def service(task_status):
            return run_service(settings, store, clock_ms=lambda: now[0], task_status=task_status)

        running = await nursery.start(service)
        first = walk(cells_by_grid, grids[:6], at("08:00"), 20_000)
        now[0] = first[-1]["t"]
        await apublish(broker, [(TOPIC, msgpack.packb(f)) for f in first])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= len(first))
        now[0] = at("09:00")
        before = [c.alert for c in await running.patrol.evaluate_now()]
        await running.patrol.checkpoint()
        await running.stop()
        running = await nursery.start(service)  # the next life, same database
        warm = running.pipeline.live.devices.get(COLLECTOR)
        again = await running.patrol.evaluate_now()
        open_after = running.patrol.state.open_alerts
        now[0] = at("10:00")
        at_slot_end = await running.patrol.evaluate_now()
        nursery.cancel_scope.cancel()
    assert [a.kind.value for a in before] == ["offline"]
    assert again == []
    assert warm is not None and warm.fix.t_ms == first[-1]["t"]  # the map shows where it was last seen
    assert [(a.kind.value, a.raised_at_ms) for a in open_after] == [(a.kind.value, a.raised_at_ms) for a in before]
    assert sorted(c.alert.grid for c in at_slot_end if c.alert.kind.value == "grid_not_covered") == grids[6:]


async def test_after_a_crash_without_checkpoint_orphaned_alerts_are_closed_and_judged_afresh(settings, broker):
    now = [at("08:00")]
    settings = settings.replace("patrol", offline_min=15.0, warning_lead_min=0.0, checkpoint_s=3600.0)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(_store_for, settings.database.dsn)
        from tracker.app.service import import_grids, run_service
        from tracker.live.patrol import RESTARTED

        await import_grids(store, str(DEMO_CITY), 12)
        cover = dict(await store.grid_cells())
        grids = sorted(g for g in set(cover.values()) if g.startswith(AREA))
        await store.save_plan(plan(grids))
        fixes = walk({g: [c for c, o in cover.items() if o == g] for g in grids}, grids[:2], at("08:00"), 20_000)

        def service(task_status):
            return run_service(settings, store, clock_ms=lambda: now[0], task_status=task_status)

        running = await nursery.start(service)
        now[0] = fixes[-1]["t"]
        await apublish(broker, [(TOPIC, msgpack.packb(f)) for f in fixes])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= len(fixes))
        now[0] = at("09:00")
        assert [c.alert.kind.value for c in await running.patrol.evaluate_now()] == ["offline"]
        running.cancel_scope.cancel()  # killed: no stop(), so no checkpoint
        await wait_for(lambda: not running.pipeline.broker.connected)
        running = await nursery.start(service)
        closed = await store.fetch("SELECT kind, resolution FROM patrol_alerts WHERE resolved_at IS NOT NULL")
        afresh = [c.alert.kind.value for c in await running.patrol.evaluate_now()]
        nursery.cancel_scope.cancel()
    assert [tuple(r) for r in closed] == [("offline", RESTARTED)]
    assert afresh == ["offline"]
