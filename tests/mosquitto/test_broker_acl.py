"""The broker ACL pins a device to its own topics: the user name is the device id."""

from __future__ import annotations

import time

import msgpack
import paho.mqtt.client as paho
import trio

from tests.harness import LAT, LON, start_service
from tests.helpers import apublish, wait_for


async def test_device_can_publish_only_as_itself(settings, broker):
    fix = msgpack.packb({"t": int(time.time() * 1000), "lat": LAT, "lon": LON, "acc": 5})
    async with trio.open_nursery() as nursery:
        _store, running = await start_service(nursery, settings)
        await apublish(broker, [("gw/v1/620105/collector/c9002/pos", fix), ("gw/v1/620105/collector/c9001/pos", fix)], username="c9001")
        await wait_for(lambda: "c9001" in running.pipeline.live.devices)
        await trio.sleep(0.3)  # time enough for a second message to arrive, if the broker let it through
        assert set(running.pipeline.live.devices) == {"c9001"}
        nursery.cancel_scope.cancel()


def _sys_topics_seen(broker, username: str, seconds: float) -> set[str]:
    """$SYS topics a client of ``username`` receives within ``seconds`` (retained ones at once)."""
    seen: set[str] = set()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sys-reader-{username}", protocol=paho.MQTTv311)
    client.username_pw_set(username, broker.users[username])
    client.on_message = lambda _c, _u, msg: seen.add(msg.topic)
    client.connect("127.0.0.1", broker.port)
    client.subscribe("$SYS/#", 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return seen


def test_the_service_reads_the_broker_counters_and_a_device_does_not(broker):
    assert "$SYS/broker/publish/messages/dropped" in _sys_topics_seen(broker, "gridwatch", 1.0)
    assert _sys_topics_seen(broker, "c9001", 1.0) == set()
