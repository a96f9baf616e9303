"""A handset ping travels the whole spine on real Mosquitto and PostgreSQL: published with
paho, it reaches a WebSocket client of the live map and a row in the database, with its
H3 cell and unit grid."""

from __future__ import annotations

import json
import random
import time

import msgpack
import trio
from h3.api import basic_int as h3
from websockets.trio.client import connect as ws_connect

from protocols.epoch import datetime_to_ms
from tests.harness import GRID, LAT, LON, auth_headers, start_service, ws_url
from tests.helpers import apublish, wait_for, ws_until

TOPIC = "gw/v1/620105/collector/{}/pos"


async def test_msgpack_ping_reaches_websocket_and_database(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with ws_connect(ws_url(running), additional_headers=await auth_headers(store)) as ws:
            snapshot = json.loads(await ws.recv())
            assert snapshot == {"type": "snapshot", "devices": []}
            t = int(time.time() * 1000)
            await apublish(broker, [(TOPIC.format("c0001"), msgpack.packb({"t": t, "lat": LAT, "lon": LON, "acc": 6.5, "bat": 81, "seq": 1}))])
            frame = await ws_until(ws, lambda f: f["type"] == "delta")
        (device,) = frame["devices"]
        assert (device["id"], device["grid"], device["cell"], device["t"]) == ("c0001", GRID, h3.int_to_str(h3.latlng_to_cell(LAT, LON, 12)), t)
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 1)
        (row,) = await store.fetch("SELECT device, t, lat, lon, acc, bat, cell, grid, late, crs FROM pings")
        assert dict(row) | {"t": datetime_to_ms(row["t"])} == {
            "device": "c0001", "t": t, "lat": LAT, "lon": LON, "acc": 6.5, "bat": 81.0,
            "cell": h3.latlng_to_cell(LAT, LON, 12), "grid": GRID, "late": False, "crs": "wgs84",
        }
        nursery.cancel_scope.cancel()


async def test_json_ping_is_detected_and_stored(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        t = int(time.time() * 1000)
        await apublish(broker, [(TOPIC.format("c0002"), json.dumps({"t": t, "lat": LAT, "lon": LON, "acc": 4}).encode())])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 1)
        rows = await store.fetch("SELECT device, grid FROM pings")
        assert [tuple(r) for r in rows] == [("c0002", GRID)]
        nursery.cancel_scope.cancel()


async def test_batch_of_50_out_of_order_pings_is_stored_in_full_and_newest_shown_live(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        base = int(time.time() * 1000) - 60_000
        fixes = [{"t": base + i * 1000, "lat": LAT + i * 1e-5, "lon": LON, "acc": 5, "seq": i} for i in range(50)]
        shuffled = fixes[:]
        random.Random(3).shuffle(shuffled)
        async with ws_connect(ws_url(running), additional_headers=await auth_headers(store)) as ws:
            await ws.recv()  # snapshot
            await apublish(broker, [(TOPIC.format("c0003"), msgpack.packb(shuffled))])
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 50)
            frame = await ws_until(ws, lambda f: f["type"] == "delta")
        assert frame["devices"][0]["t"] == base + 49_000
        rows = await store.fetch("SELECT t, seq, grid FROM pings WHERE device = 'c0003' ORDER BY t")
        assert [(datetime_to_ms(r["t"]), r["seq"]) for r in rows] == [(f["t"], f["seq"]) for f in fixes]
        nursery.cancel_scope.cancel()
