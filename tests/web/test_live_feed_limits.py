"""The live feed in bounded pieces: a large snapshot goes out in frames of a few hundred
devices, and a client that does not read is closed and costs bounded memory meanwhile."""

from __future__ import annotations

import json

import httpx
import trio
from websockets.trio.client import connect as ws_connect

from geofence.placed import Placed
from protocols.model import DeviceClass, Fix
from tests.harness import LAT, LON, auth_headers, start_service, ws_url
from tests.helpers import wait_for
from tests.web.raw_wire import open_websocket, rss_bytes
from tracker.live.state import LiveState

MiB = 1 << 20
T0 = 1_795_000_000_000


def fleet(live: LiveState, count: int) -> list[str]:
    """``count`` collectors in live state, as a warm start puts them there."""
    ids = [f"c{n:05d}" for n in range(count)]
    for n, device in enumerate(ids):
        fix = Fix(device, DeviceClass.COLLECTOR, "620105", T0 + n, LAT + n * 1e-6, LON, T0 + n, 5.0, None, None, None, 80.0)
        live.devices[device] = Placed(fix, 0x8C3DA9A4A4CC1FF, None, False)
    return ids


async def test_a_large_snapshot_comes_in_parts_that_add_up_to_every_device(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("web", ws_snapshot_devices=100)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        ids = fleet(running.pipeline.live, 250)
        async with ws_connect(ws_url(running), additional_headers=headers) as ws:
            frames = [json.loads(await ws.recv()) for _ in range(3)]
        nursery.cancel_scope.cancel()
    assert [(f["type"], len(f["devices"]), f.get("more")) for f in frames] == [
        ("snapshot", 100, True), ("snapshot_part", 100, True), ("snapshot_part", 50, None)]
    assert [d["id"] for f in frames for d in f["devices"]] == ids


async def test_clients_that_never_read_are_closed_and_hold_no_copy_of_the_map(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("web", ws_max_unsent_bytes=256 * 1024, send_stall_s=5.0)
    clients = 20
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        live = running.pipeline.live
        metrics = running.pipeline.metrics
        ids = fleet(live, 20_000)  # a snapshot of ~4 MB
        before = rss_bytes()
        streams = []
        try:
            for _ in range(clients):
                streams.append(await open_websocket(running.url, headers))  # and never read
            await trio.sleep(0.5)  # every snapshot under way
            grown = rss_bytes() - before

            async def keep_moving() -> None:
                while True:
                    live.dirty.update(ids[:2000])
                    await trio.sleep(0.025)

            nursery.start_soon(keep_moving)
            await wait_for(lambda: metrics.get("gridwatch_ws_dropped_total", reason="too_slow") >= clients, timeout=30)
            await wait_for(lambda: not running.pipeline.hub.clients, timeout=30)
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
                health = (await http.get("/healthz")).status_code
        finally:
            for stream in streams:
                await stream.aclose()
        nursery.cancel_scope.cancel()
    assert grown < 40 * MiB  # a copy of the snapshot per client would be 80 MB and more
    assert metrics.get("gridwatch_ws_dropped_total", reason="too_slow") == clients
    assert health == 200


async def test_control_messages_other_than_ping_close_the_socket_with_1003(settings, broker):
    """A deeply nested message (which ends a recursive JSON parser), a large one, binary
    data and unknown types each close that socket only; a ping does not."""
    settings = settings.replace("jt808", enabled=False)
    messages: list[str | bytes] = ["[" * 4000, "[" * 3000 + "]" * 3000, "x" * 10_000, b"\x00\x01", '{"type": "subscribe"}', "{"]
    codes = []
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        headers = await auth_headers(store)
        for message in messages:
            async with ws_connect(ws_url(running), additional_headers=headers) as ws:
                await ws.recv()  # the snapshot
                await ws.send('{"type": "ping"}')
                await ws.send(message)
                with trio.fail_after(5):
                    await ws.wait_closed()
                codes.append(ws.close_code)
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            health = (await http.get("/healthz")).status_code
        dropped = running.pipeline.metrics.get("gridwatch_ws_dropped_total", reason="bad_input")
        nursery.cancel_scope.cancel()
    assert codes == [1003] * len(messages)
    assert dropped == len(messages)
    assert health == 200
