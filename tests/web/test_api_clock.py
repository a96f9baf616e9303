"""The API's defaults ("the last 30 minutes", "today") follow the service's clock, not the
machine's: a service running on a day over a year back answers for that day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import httpx
import msgpack
import trio

from protocols.epoch import datetime_to_ms
from tests.harness import LAT, LON, auth_headers, start_service
from tests.helpers import apublish, wait_for

MINUTE = 60_000


async def test_track_and_coverage_report_default_to_the_service_clock(settings, broker):
    # 23:40 UTC, when it is already 07:40 the next day in Asia/Shanghai, the zone of "today"
    day = date.today() - timedelta(days=400)
    now = datetime.combine(day, time(23, 40), UTC)
    now_ms = datetime_to_ms(now)
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings, clock_ms=lambda: now_ms)
        fixes = [(now_ms - 45 * MINUTE, LAT), (now_ms - 20 * MINUTE, LAT + 0.0002), (now_ms - MINUTE, LAT + 0.0004)]
        await apublish(broker, [("gw/v1/620105/collector/c0401/pos", msgpack.packb({"t": t, "lat": lat, "lon": LON, "acc": 5.0}))
                                for t, lat in fixes])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 3)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            track = (await http.get("/api/devices/c0401/track")).json()
            report = (await http.get("/api/reports/coverage")).json()
        nursery.cancel_scope.cancel()
    assert track["properties"]["to"] == now.isoformat()
    assert track["properties"]["from"] == (now - timedelta(minutes=30)).isoformat()
    assert track["properties"]["times"] == [now_ms - 20 * MINUTE, now_ms - MINUTE]
    assert report["date"] == (day + timedelta(days=1)).isoformat()
