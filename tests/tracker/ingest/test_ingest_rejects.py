"""Malformed payloads are refused, counted by reason in /metrics and logged with the
device id; they never stop the pipeline nor cost the good data next to them."""

from __future__ import annotations

import logging
import math
import time

import httpx
import msgpack
import trio

from tests.harness import LAT, LON, auth_headers, start_service
from tests.helpers import apublish, wait_for


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_bad_payloads_are_counted_logged_and_do_not_stop_ingest(settings, broker, caplog):
    caplog.set_level(logging.WARNING, logger="tracker.ingest.pipeline")
    now = int(time.time() * 1000)
    good = {"t": now, "lat": LAT, "lon": LON, "acc": 5}
    topic = "gw/v1/620105/collector/{}/pos"
    bad = [
        (topic.format("c0101"), b"\xc1\xc1 garbage bytes"),
        (topic.format("c0102"), msgpack.packb({**good, "lat": "north"})),
        (topic.format("c0103"), msgpack.packb({**good, "lat": 91.0})),
        (topic.format("c0104"), msgpack.packb({**good, "lon": math.nan})),
        (topic.format("c0105"), msgpack.packb({**good, "t": now + 365 * 86_400_000})),
        (topic.format("c0106"), b"\x00" * (1 << 20)),
        ("gw/v1/620105/tank/c0107/pos", msgpack.packb(good)),
    ]
    mixed_batch = msgpack.packb([{**good, "seq": 1}, {**good, "lat": 91.0}, {**good, "seq": 3, "t": now + 1}])
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        await apublish(broker, [*bad, (topic.format("c0199"), mixed_batch), (topic.format("c0200"), msgpack.packb(good))])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 3)
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store)) as http:
            text = (await http.get("/metrics")).text
            letters = (await http.get("/api/dead-letters")).json()["dead_letters"]
        rows = await store.fetch("SELECT device, seq FROM pings ORDER BY device, seq")
        nursery.cancel_scope.cancel()
    assert {r: _metric(text, "gridwatch_rejected_total", protocol="handset", reason=r)
            for r in ("bad_msgpack", "bad_type", "lat_range", "not_finite", "future_time", "too_large", "bad_topic")} == {
        "bad_msgpack": 1, "bad_type": 1, "lat_range": 2, "not_finite": 1, "future_time": 1, "too_large": 1, "bad_topic": 1}
    assert [tuple(r) for r in rows] == [("c0199", 1), ("c0199", 3), ("c0200", None)]
    assert "c0103" in caplog.text and "lat_range" in caplog.text
    assert {d["device"] for d in letters} >= {"c0101", "c0102", "c0103", "c0104", "c0105", "c0106", "c0199"}
