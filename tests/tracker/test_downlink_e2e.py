"""A command the service publishes to a device comes back to it (its subscriptions match
the command topics): it is ignored as the service's own downlink, not refused as a bad
topic, counted as a rejection or kept as a dead letter."""

from __future__ import annotations

import json
import threading
import time

import httpx
import msgpack
import paho.mqtt.client as paho
import trio

from tests.harness import BROKER_USERS, LAT, LON, auth_headers, start_service
from tests.helpers import apublish, wait_for

CMD = "gw/v1/620105/collector/c0001/cmd"


def _handset(port: int, received: list[bytes], subscribed: threading.Event) -> None:
    """The handset's side of the command topic (an account that may read every device's)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="handset-c0001", protocol=paho.MQTTv311)
    client.username_pw_set("simulator", BROKER_USERS["simulator"])
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(CMD, 1)
    client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    client.on_message = lambda c, u, msg: received.append(msg.payload)
    client.connect("127.0.0.1", port)
    deadline = time.time() + 10
    while not received and time.time() < deadline:
        client.loop(0.1)
    client.disconnect()


async def test_a_locate_reaches_the_handset_and_the_service_does_not_ingest_its_own_command(settings, broker):
    received: list[bytes] = []
    subscribed = threading.Event()
    now = int(time.time() * 1000)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        metrics = running.pipeline.metrics
        await apublish(broker, [("gw/v1/620105/collector/c0001/pos", msgpack.packb({"t": now, "lat": LAT, "lon": LON, "acc": 5.0}))])
        await wait_for(lambda: "c0001" in running.pipeline.live.devices)
        nursery.start_soon(trio.to_thread.run_sync, _handset, broker.port, received, subscribed)
        await trio.to_thread.run_sync(subscribed.wait, 5)
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store, role="commander")) as http:
            answer = await http.post("/api/devices/c0001/locate")
        await wait_for(lambda: received)
        # the command came back to the service too: it was taken and set aside
        await wait_for(lambda: metrics.get("gridwatch_ignored_total", protocol="handset", type="downlink") == 1)
        await apublish(broker, [("gw/v1/620105/collector/c0001/pos", msgpack.packb({"t": now + 1000, "lat": LAT, "lon": LON, "acc": 5.0}))])
        await wait_for(lambda: running.pipeline.live.devices["c0001"].fix.t_ms == now + 1000)
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= 2)
        rejected = sum(metrics.labelled.get("gridwatch_rejected_total", {}).values())
        dead = await store.fetch("SELECT source, reason FROM dead_letters")
        nursery.cancel_scope.cancel()
    assert (answer.status_code, answer.json()["topic"], json.loads(received[0])) == (202, CMD, {"cmd": "reportLocation"})
    assert (rejected, [tuple(r) for r in dead]) == (0, [])
