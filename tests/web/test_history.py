"""A device's history (GET /api/devices/{id}/history) on a real service: a jittery walk
with a pause, published over MQTT, stored in PostgreSQL, answered filtered."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, date, datetime, time, timedelta

import httpx
import msgpack
import trio

from protocols.coords import distance_m
from protocols.epoch import datetime_to_ms
from tests.harness import DEMO_CITY, LAT, LON, auth_headers, start_service
from tests.helpers import apublish, wait_for

MINUTE = 60_000
AREA = "620105001001"
M_PER_DEG_LAT = 111_320.0


def jittery_walk(start_ms: int) -> tuple[list[tuple[int, float, float, float]], float]:
    """10 minutes north at 1.2 m/s, 8 minutes standing, 10 minutes east; a fix every 5 s
    scattered ±10 m around the true place (acc 12 m). Returns the fixes and the true distance."""
    rng = random.Random(7)
    m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians(LAT))
    fixes, north, east, t = [], 0.0, 0.0, start_ms
    legs = [(120, 1.2, 0.0), (96, 0.0, 0.0), (120, 0.0, 1.2)]  # (fixes, north m/s, east m/s)
    for count, vn, ve in legs:
        for _ in range(count):
            fixes.append((t, LAT + (north + rng.uniform(-10, 10)) / M_PER_DEG_LAT,
                          LON + (east + rng.uniform(-10, 10)) / m_per_deg_lon, 12.0))
            north, east, t = north + vn * 5, east + ve * 5, t + 5000
    return fixes, 2 * 120 * 1.2 * 5


async def test_the_history_filters_jitter_measures_the_filtered_track_and_finds_the_stop(settings, broker):
    day = date.today() - timedelta(days=400)
    now = datetime.combine(day, time(9, 0), UTC)
    now_ms = datetime_to_ms(now)
    start_ms = now_ms - 40 * MINUTE
    fixes, true_m = jittery_walk(start_ms)
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings, clock_ms=lambda: now_ms)
        await apublish(broker, [("gw/v1/620105/collector/c0401/pos",
                                 msgpack.packb({"t": t, "lat": lat, "lon": lon, "acc": acc})) for t, lat, lon, acc in fixes])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= len(fixes))
        async with httpx.AsyncClient(base_url=running.url, timeout=20, headers=await auth_headers(store)) as http:
            whole = (await http.get("/api/devices/c0401/history")).json()
            short_stops = (await http.get("/api/devices/c0401/history", params={"stop_min": 10})).json()
            first_leg = (await http.get("/api/devices/c0401/history",
                                        params={"from": start_ms, "to": start_ms + 10 * MINUTE - 1})).json()
            bad = [await http.get("/api/devices/c0401/history", params=p)
                   for p in ({"stop_min": "soon"}, {"from": now_ms, "to": start_ms}, {"from": "yesterday"},
                             {"from": now_ms - 9 * 24 * 60 * MINUTE})]
            # once c0401 is on a slot of the plan (16:00-18:00 in Lanzhou, 08:00-10:00 UTC), the
            # default range is the shift so far
            grids = sorted(f["properties"]["code"] for f in json.loads(DEMO_CITY.read_text(encoding="utf-8"))["features"]
                           if f["properties"]["code"].startswith(AREA))
            plan = {"zone": "Asia/Shanghai", "areas": {AREA: {"name": "万里社区", "grids": grids}},
                    "shifts": [{"collector": "c0401", "area": AREA, "days": "Mon-Sun", "start": "16:00", "end": "18:00"}]}
            assert (await http.put("/api/patrol/plan", json=plan)).status_code == 200
            in_slot = (await http.get("/api/devices/c0401/history")).json()
        other_district = await auth_headers(store, role="supervisor", district="620103")
        async with httpx.AsyncClient(base_url=running.url, timeout=20, headers=other_district) as http:
            hidden = await http.get("/api/devices/c0401/history")
        nursery.cancel_scope.cancel()

    # no slot in a plan for c0401: the last 8 hours, up to the service's now
    assert (whole["from"], whole["to"]) == (now_ms - 8 * 60 * MINUTE, now_ms)
    assert whole["raw"]["points"] == len(fixes) and not whole["raw"]["truncated"]
    # joining the raw fixes counts the jitter as walking; the filtered track does not
    assert whole["raw"]["distance_m"] > 2 * true_m
    assert abs(whole["distance_m"] - true_m) < 0.15 * true_m, (whole["distance_m"], true_m)
    coords = whole["track"]["geometry"]["coordinates"]
    times = whole["track"]["properties"]["times"]
    assert len(coords) == len(times) < len(fixes) and times == sorted(times)
    (stop,) = whole["stops"]
    assert abs(stop["start"] - (start_ms + 10 * MINUTE)) <= MINUTE and abs(stop["minutes"] - 8) <= 1.5
    assert distance_m(stop["lat"], stop["lon"], LAT + 720 / M_PER_DEG_LAT, LON) < 15
    assert whole["method"]["zh"].startswith("去抖") and "accuracy-weighted" in whole["method"]["en"]
    assert short_stops["stops"] == []  # an 8-minute pause is no 10-minute stop
    assert first_leg["raw"]["points"] == 120 and abs(first_leg["distance_m"] - 720) < 0.2 * 720
    assert [r.status_code for r in bad] == [400, 400, 400, 400]
    assert all("error" in r.json() for r in bad)
    assert hidden.status_code == 404 and "error" in hidden.json()
    slot_start = datetime_to_ms(datetime.combine(day, time(8, 0), UTC))
    assert in_slot["slot"] == {"start": slot_start, "end": slot_start + 120 * MINUTE, "area": AREA}
    assert (in_slot["from"], in_slot["to"]) == (slot_start, now_ms)
    assert in_slot["raw"]["points"] == len([f for f in fixes if f[0] >= slot_start])
