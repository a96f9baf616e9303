"""Patrol alerts on the live feed go to their district's clients and the city's: with an
Anning and a Qilihe collector who both fail to start their slot, each district's map is
told of its own collector only (trio's MockClock; the watchdog raises "not started" 15
minutes into the slot)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import trio
from h3.api import basic_int as h3

from tracker import config
from tracker.live.fanout import Hub
from tracker.live.patrol import Patrol
from tracker.live.state import LiveState
from tracker.metrics import Metrics

T0 = int(datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)  # Monday 08:00
ANNING, QILIHE = "620105", "620103"
GRIDS = {ANNING: ("620105003003010", 36.1050, 103.7200), QILIHE: ("620103001001001", 36.0650, 103.7600)}
COLLECTORS = {ANNING: "c1001", QILIHE: "c3001"}


class PlanOnlyStore:
    """The patrol's view of the database, in memory: a plan, and the alerts it records."""

    def __init__(self, plan: dict) -> None:
        self.plan = plan
        self.recorded: list[tuple] = []

    async def latest_plan(self):
        return 1, self.plan

    async def load_checkpoint(self):
        return None

    async def pings_retried(self, devices, start, end):
        return []

    async def close_open_patrol_alerts(self, at, resolution):
        return 0

    async def record_patrol_alerts(self, rows):
        self.recorded.extend(rows)

    async def patrol_alert_ids(self, keys):
        return list(range(len(keys)))

    async def save_checkpoint(self, state):
        pass


def plan() -> dict:
    areas = {grid[:12]: {"name": district, "grids": [grid]} for district, (grid, _, _) in GRIDS.items()}
    shifts = [{"collector": COLLECTORS[d], "area": GRIDS[d][0][:12], "days": "Mon-Sun", "start": "08:00", "end": "10:00"}
              for d in GRIDS]
    return {"areas": areas, "shifts": shifts}


async def test_each_districts_map_hears_of_its_own_collectors_alerts(autojump_clock):
    settings = config.load(None, environ={}).replace("patrol", evaluate_s=30.0, not_started_min=15.0, warning_lead_min=0.0)
    cover = {c: grid for grid, lat, lon in GRIDS.values() for c in h3.grid_disk(h3.latlng_to_cell(lat, lon, 12), 2)}
    metrics = Metrics()
    live = LiveState()
    hub = Hub(live, metrics, 50, 1000)
    clients = {ANNING: hub.join(ANNING), QILIHE: hub.join(QILIHE), None: hub.join(None)}
    store = PlanOnlyStore(plan())
    patrol = Patrol(settings, store, cover, hub, metrics, clock_ms=lambda: T0 + int(trio.current_time() * 1000))
    await patrol.load()
    async with trio.open_nursery() as nursery:
        await nursery.start(patrol.run)
        await trio.sleep(16 * 60)
        nursery.cancel_scope.cancel()
    assert sorted((row[0], row[1]) for row in store.recorded) == [("not_started", "c1001"), ("not_started", "c3001")]
    heard = {}
    for key, client in clients.items():
        with trio.fail_after(1):
            heard[key] = sorted(f["alert"]["collector"] for f in map(json.loads, await client.next_frames(live)) if f["type"] == "alert")
    assert heard == {ANNING: ["c1001"], QILIHE: ["c3001"], None: ["c1001", "c3001"]}
