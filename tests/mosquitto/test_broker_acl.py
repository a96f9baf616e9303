"""The broker's accounts and roles (dynamic security plugin): the service reads $SYS, a
device does not; the ingest account cannot change accounts, the control account can and
can do nothing else. What a device may publish: tests/tracker/registry."""

from __future__ import annotations

import time

import paho.mqtt.client as paho
import pytest
import trio

from protocols.model import DeviceClass
from tests.harness import BROKER_USERS
from tracker.ingest.dynsec import ControlAccount, DynsecError, create_device, delete_device, open_dynsec


def _sys_topics_seen(broker, username: str, password: str, seconds: float) -> set[str]:
    """$SYS topics a client of ``username`` receives within ``seconds`` (retained ones at once)."""
    seen: set[str] = set()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sys-reader-{username}", protocol=paho.MQTTv311)
    client.username_pw_set(username, password)
    client.on_message = lambda _c, _u, msg: seen.add(msg.topic)
    client.connect("127.0.0.1", broker.port)
    client.subscribe("$SYS/#", 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return seen


def _control(broker, username: str = "gridwatch-control") -> ControlAccount:
    return ControlAccount("127.0.0.1", broker.port, username, BROKER_USERS[username], timeout_s=3)


async def test_the_service_reads_the_broker_counters_and_a_device_does_not(broker):
    async with open_dynsec(_control(broker)) as dynsec:
        await dynsec.execute(delete_device("c9301"), ignore=("Client not found", "Role not found"))
        await dynsec.execute(create_device("c9301", DeviceClass.COLLECTOR, "620105", "device-secret"))
    # a retained counter, there from the broker's start (the dropped-messages one comes once it moves)
    assert "$SYS/broker/clients/connected" in await trio.to_thread.run_sync(
        _sys_topics_seen, broker, "gridwatch", BROKER_USERS["gridwatch"], 1.0)
    assert await trio.to_thread.run_sync(_sys_topics_seen, broker, "c9301", "device-secret", 1.0) == set()


async def test_only_the_control_account_changes_accounts(broker):
    # the ingest account may not even hear the plugin's answer: no answer, no change
    with pytest.raises(DynsecError, match="no answer"):
        async with open_dynsec(_control(broker, "gridwatch")) as dynsec:
            await dynsec.execute(create_device("c9302", DeviceClass.COLLECTOR, "620105", "x"))
    async with open_dynsec(_control(broker)) as dynsec:
        (answer,) = await dynsec.execute([{"command": "getClient", "username": "c9302"}], ignore=("Client not found",))
        assert answer.get("error") == "Client not found"


def test_the_control_account_reads_no_device_traffic(broker):
    assert _sys_topics_seen(broker, "gridwatch-control", BROKER_USERS["gridwatch-control"], 1.0) == set()
