"""The MQTT client under trio, on a real Mosquitto: messages arrive intact whatever their
QoS, a QoS 1 publisher is acknowledged, and a broker restart is survived."""

from __future__ import annotations

import paho.mqtt.publish as paho_publish
import trio

from tests.harness import BROKER_USERS
from tests.helpers import apublish, discard_session, wait_for
from tracker.devcity.starters import start_mosquitto
from tracker.ingest.broker import BrokerClient, BrokerParams


def _subscriber(port: int, inbox: list, client_id: str = "t-sub") -> BrokerClient:
    async def deliver(batch, receipt):
        inbox.extend(batch)
        receipt.settle()

    params = BrokerParams("127.0.0.1", port, "gridwatch", BROKER_USERS["gridwatch"], client_id,
                          subscriptions=("gw/v1/#",), qos=1, reconnect_min_s=0.05, reconnect_max_s=0.2)
    return BrokerClient(params, deliver)


async def test_qos0_and_qos1_messages_arrive_intact_and_qos1_is_acknowledged(broker):
    inbox: list = []
    payloads = [(f"gw/v1/620105/collector/c{i:04d}/pos", bytes([i % 256]) * (i * 37 % 3000 + 1)) for i in range(300)]
    async with trio.open_nursery() as nursery:
        await nursery.start(_subscriber(broker.port, inbox).run)
        await apublish(broker, payloads)  # QoS 1: returns once every PUBACK came back
        await trio.to_thread.run_sync(lambda: paho_publish.single("gw/v1/620105/sensor/s1/alarm", b"\x81\xa1t\x01", qos=0, port=broker.port,
                                                            auth={"username": "simulator", "password": BROKER_USERS["simulator"]}))
        await wait_for(lambda: len(inbox) == len(payloads) + 1)
        nursery.cancel_scope.cancel()
    assert [(t, p) for t, p, _ in inbox] == [*payloads, ("gw/v1/620105/sensor/s1/alarm", b"\x81\xa1t\x01")]
    assert all(isinstance(p, bytes) and rx > 0 for _, p, rx in inbox)


async def test_the_client_reconnects_and_resubscribes_after_a_broker_restart(tmp_path):
    first = start_mosquitto(tmp_path / "m", 0, BROKER_USERS)
    port = first.port
    inbox: list = []
    client = _subscriber(port, inbox, "t-restart")
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await apublish(first, [("gw/v1/620105/collector/c1/pos", b"before")])
            await wait_for(lambda: len(inbox) == 1)
            first.stop()
            await wait_for(lambda: not client.connected)
            second = await trio.to_thread.run_sync(lambda: start_mosquitto(tmp_path / "m", port, BROKER_USERS))
            try:
                await wait_for(lambda: client.subscribed and client.connects == 2, timeout=15)
                await apublish(second, [("gw/v1/620105/collector/c1/pos", b"after")])
                await wait_for(lambda: any(payload == b"after" for _, payload, _ in inbox))
            finally:
                second.stop()
            nursery.cancel_scope.cancel()
    finally:
        first.stop()
    got = [p for _, p, _ in inbox]
    # QoS 1 on a kept session is at least once: when the broker stopped before the PUBACK
    # of "before" reached it, its saved state hands "before" over again after the restart
    # (the service's writes absorb such a copy); "after" comes only through the new session
    assert got[0] == b"before" and got[-1] == b"after" and set(got) == {b"before", b"after"}, got
    assert got.count(b"after") == 1


async def test_a_clean_stop_reads_nothing_more_acknowledges_what_was_settled_then_disconnects(broker):
    inbox: list = []
    held: list = []  # receipts, settled only when the test says (the consumer storing them)

    async def deliver(batch, receipt):
        inbox.extend(batch)
        held.append(receipt)

    params = BrokerParams("127.0.0.1", broker.port, "gridwatch", BROKER_USERS["gridwatch"], "t-clean-stop",
                          subscriptions=("gw/v1/#",), qos=1, reconnect_min_s=0.05, reconnect_max_s=0.2)
    # many of both: PUBACKs for hundreds go out while the broker keeps the paused client's
    # socket full, which is when a close that resets the connection would lose them
    before = [(f"gw/v1/620105/collector/c{i:04d}/pos", i.to_bytes(2)) for i in range(400)]
    after = [(f"gw/v1/620105/collector/c{i:04d}/pos", b"after the pause %d" % i) for i in range(1000, 1400)]
    try:
        client = BrokerClient(params, deliver)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(client.run)
                await wait_for(lambda: client.subscribed)
                await apublish(broker, before)
                await wait_for(lambda: len(inbox) == len(before))
                await client.pause()
                await apublish(broker, after)  # the broker has it; the paused client does not read it
                await trio.sleep(0.3)
                read_while_paused = len(inbox)
                for receipt in held:
                    receipt.settle()
                await client.close()
                # run() returns on its own: no reconnect after a close
        again: list = []
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(_subscriber(broker.port, again, "t-clean-stop").run)
                await trio.sleep(0.5)  # whatever the broker still holds for the session comes now
                nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(discard_session, broker, "t-clean-stop")
    assert (read_while_paused, client.connects) == (len(before), 1)
    assert sorted((t, p) for t, p, _ in again) == after, len(again)  # the settled ones were acknowledged before the DISCONNECT
