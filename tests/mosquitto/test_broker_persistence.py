"""mosquitto/mosquitto.conf keeps persistent sessions across a broker restart: the broker,
running as its own unprivileged user, writes its database where the starter puts it,
and a QoS 1 message queued for a session that was away is delivered after the restart."""

from __future__ import annotations

import time

import paho.mqtt.client as paho

from tests.harness import BROKER_USERS
from tests.helpers import publish
from tracker.devcity.starters import start_mosquitto

TOPIC = "gw/v1/620105/collector/c0042/pos"


def _session(port: int, received: list, flags: list) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="persist-test", protocol=paho.MQTTv311, clean_session=False)
    client.username_pw_set("gridwatch", BROKER_USERS["gridwatch"])
    client.on_connect = lambda c, u, f, rc, props: flags.append(f.session_present)
    client.on_message = lambda c, u, msg: received.append((msg.payload, msg.qos))
    client.connect("127.0.0.1", port)
    return client


def _loop_until(client: paho.Client, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        client.loop(0.05)


def test_a_restart_keeps_the_session_and_the_qos1_messages_queued_for_it(tmp_path):
    broker = start_mosquitto(tmp_path / "m", 0, BROKER_USERS)
    port = broker.port
    try:
        received: list = []
        flags: list = []
        client = _session(port, received, flags)
        subscribed: list = []
        client.on_subscribe = lambda *args: subscribed.append(True)
        _loop_until(client, lambda: flags)
        client.subscribe("gw/v1/#", 1)
        _loop_until(client, lambda: subscribed)
        client.disconnect()
        client.loop(0.05)
        publish(broker, [(TOPIC, b"queued while away")])  # the broker acknowledged it: it must survive
        broker.stop()
        assert ((broker.scratch or tmp_path / "m") / "mosquitto.db").stat().st_size > 0  # written as the broker's user
        broker = start_mosquitto(tmp_path / "m", port, BROKER_USERS)
        received.clear()
        flags.clear()
        client = _session(port, received, flags)
        _loop_until(client, lambda: received)
        client.disconnect()
    finally:
        broker.discard()
    assert flags == [True] and received == [(b"queued while away", 1)]
