"""A stock OwnTracks app pointed at the broker works as a collector handset."""

from __future__ import annotations

import json
import threading
import time

import httpx
import paho.mqtt.client as paho
import pytest
import trio

from protocols.epoch import datetime_to_ms
from protocols.model import DeviceClass
from tests.harness import BROKER_USERS, auth_headers, start_service
from tests.helpers import apublish, wait_for
from tracker.ingest.dynsec import ControlAccount, create_device, delete_device, open_dynsec

ALICE = "alice-secret"


@pytest.fixture
async def alice(broker):
    """The phone's broker account: OwnTracks user "alice", provisioned as a collector's
    account is (its role lets it use owntracks/alice/# only)."""
    control = ControlAccount("127.0.0.1", broker.port, "gridwatch-control", BROKER_USERS["gridwatch-control"])
    async with open_dynsec(control) as dynsec:
        await dynsec.execute(delete_device("alice"), ignore=("Client not found", "Role not found"))
        await dynsec.execute(create_device("alice", DeviceClass.COLLECTOR, "620105", ALICE))


async def test_owntracks_location_appears_as_the_mapped_collector(settings, broker, alice):
    settings = settings.replace("owntracks", devices=("alice/phone=c0042",))
    tst = int(time.time())
    # exactly what the OwnTracks Android app publishes (retained, QoS 1)
    payload = json.dumps({"_type": "location", "acc": 12, "alt": 1521, "batt": 64, "bs": 1, "conn": "m", "created_at": tst,
                          "lat": 36.1051, "lon": 103.7199, "m": 1, "t": "u", "tid": "ph", "tst": tst, "vac": 3, "vel": 4}).encode()
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        await apublish(broker, [("owntracks/alice/phone", payload)], username="alice", password=ALICE)
        await wait_for(lambda: "c0042" in running.pipeline.live.devices)
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store)) as http:
            devices = (await http.get("/api/devices")).json()["devices"]
        nursery.cancel_scope.cancel()
    (c42,) = [d for d in devices if d["id"] == "c0042"]
    assert (c42["class"], c42["t"], c42["grid"], c42["bat"], round(c42["spd"], 3)) == (
        "collector", tst * 1000, "620105003003010", 64.0, round(4 / 3.6, 3))


async def test_a_location_whose_numbers_no_column_holds_is_refused_and_the_service_goes_on(settings, broker, alice):
    settings = settings.replace("owntracks", devices=("alice/phone=c0042",))
    tst = int(time.time())
    base = {"_type": "location", "lat": 36.1051, "lon": 103.7199, "tst": tst, "t": "u", "tid": "ph"}
    messages = [
        {**base, "tst": tst - 20, "acc": 1e308, "alt": 1e308, "vel": 1e308},  # the driver's "value out of float32 range"
        {**base, "tst": tst - 10, "acc": -1},  # the phone has no accuracy to give
        {**base, "acc": 12, "alt": 1521, "vel": 4},
    ]
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        await apublish(broker, [("owntracks/alice/phone", json.dumps(m).encode()) for m in messages], username="alice", password=ALICE)
        metrics = running.pipeline.metrics
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= 2)
        rows = await store.fetch("SELECT t, acc, alt FROM pings WHERE device = 'c0042' ORDER BY t")
        refused = metrics.get("gridwatch_rejected_total", protocol="owntracks", reason="bad_value")
        nursery.cancel_scope.cancel()
    assert ([(datetime_to_ms(r["t"]), r["acc"], r["alt"]) for r in rows], refused) == (
        [((tst - 10) * 1000, None, None), (tst * 1000, 12.0, 1521.0)], 1)


async def test_report_location_command_reaches_the_phone(settings, broker, alice):
    settings = settings.replace("owntracks", devices=("alice/phone=c0042",))
    received: list[bytes] = []
    subscribed = threading.Event()

    def phone() -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="alice-phone", protocol=paho.MQTTv311)
        client.username_pw_set("alice", ALICE)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe("owntracks/alice/phone/cmd", 1)
        client.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
        client.on_message = lambda c, u, msg: received.append(msg.payload)
        client.connect("127.0.0.1", broker.port)
        deadline = time.time() + 10
        while not received and time.time() < deadline:
            client.loop(0.1)
        client.disconnect()

    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        nursery.start_soon(trio.to_thread.run_sync, phone)
        await trio.to_thread.run_sync(subscribed.wait, 5)
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store)) as http:
            answer = await http.post("/api/devices/c0042/locate")
        await wait_for(lambda: received)
        # the command reached the service too (it reads owntracks/#): set aside, not refused
        metrics = running.pipeline.metrics
        await wait_for(lambda: metrics.get("gridwatch_ignored_total", protocol="owntracks", type="downlink") == 1)
        rejected = sum(metrics.labelled.get("gridwatch_rejected_total", {}).values())
        nursery.cancel_scope.cancel()
    assert (answer.status_code, json.loads(received[0])) == (202, {"_type": "cmd", "action": "reportLocation"})
    assert rejected == 0
