"""The patrol watchdog on trio's MockClock: it judges every evaluate_s, and at once when a
late batch arrives; "not started" is raised 15 minutes into a slot with no fix."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import trio
import trio.testing
from h3.api import basic_int as h3

from geofence.placed import Placed
from protocols.model import DeviceClass, Fix
from tracker import config
from tracker.live.fanout import Hub
from tracker.live.patrol import Patrol
from tracker.live.state import LiveState
from tracker.metrics import Metrics

T0 = int(datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)  # Monday 08:00
GRID = "620105003003010"
LAT, LON = 36.1050, 103.7200


class PlanOnlyStore:
    """The patrol's view of the database, in memory: a plan, and what it records."""

    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self.recorded: list[tuple[float, tuple]] = []

    async def latest_plan(self):
        return 1, self.plan

    async def load_checkpoint(self):
        return None

    async def pings_of(self, devices, start, end):
        return []

    async def pings_retried(self, devices, start, end):
        return await self.pings_of(devices, start, end)

    async def close_open_patrol_alerts(self, at, resolution):
        return 0

    async def record_patrol_alerts(self, rows):
        self.recorded.extend((trio.current_time(), r) for r in rows)

    async def patrol_alert_ids(self, keys):
        return list(range(len(keys)))

    async def save_checkpoint(self, state):
        pass


def _patrol(store) -> Patrol:
    settings = config.load(None, environ={}).replace("patrol", evaluate_s=30.0, not_started_min=15.0, warning_lead_min=0.0)
    cell = h3.latlng_to_cell(LAT, LON, 12)
    cover = {c: GRID for c in h3.grid_disk(cell, 3)}
    metrics = Metrics()
    hub = Hub(LiveState(), metrics, 50, 1000)
    return Patrol(settings, store, cover, hub, metrics, clock_ms=lambda: T0 + int(trio.current_time() * 1000))


def _plan() -> dict:
    return {"areas": {"620105003003": {"name": "A", "grids": [GRID]}},
            "shifts": [{"collector": "c0001", "area": "620105003003", "days": "Mon-Sun", "start": "08:00", "end": "10:00"}]}


async def test_not_started_is_raised_by_the_watchdog_fifteen_minutes_into_the_slot(autojump_clock):
    store = PlanOnlyStore(_plan())
    patrol = _patrol(store)
    await patrol.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(patrol.run)
        await trio.sleep(20 * 60)
        nursery.cancel_scope.cancel()
    kinds = [(round(t), row[0]) for t, row in store.recorded]
    # judged every 30 s, so the judgement at 15:00 is the one that raises it
    assert kinds == [(900, "not_started")]


async def test_a_late_batch_is_judged_at_once_not_at_the_next_tick(autojump_clock):
    store = PlanOnlyStore(_plan())
    patrol = _patrol(store)
    await patrol.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(patrol.run)
        await trio.sleep(20 * 60 + 5)  # not_started raised at 15:00; the next tick is due at 20:30
        fix = Fix("c0001", DeviceClass.COLLECTOR, "620105", T0 + 60_000, LAT, LON, T0 + 20 * 60_000, 5.0)
        patrol.observe([Placed(fix, h3.latlng_to_cell(LAT, LON, 12), GRID, True)])
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    resolved = [(round(t), row[0], row[10]) for t, row in store.recorded if row[9] is not None]
    assert resolved == [(1205, "not_started", "late fixes show it did not happen")]
