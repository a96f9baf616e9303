"""Durable delivery on real processes: numbered QoS 1 fixes through Mosquitto into the
service and PostgreSQL, each stored exactly once across a crash of the service, a
restart of the broker, and a message delivered twice."""

from __future__ import annotations

import functools
import threading
import time

import msgpack
import paho.mqtt.client as paho
import trio

from tests.harness import BROKER_USERS, DEMO_CITY, LAT, LON, store_task
from tests.helpers import apublish, wait_for
from tracker.app.service import import_grids, run_service
from tracker.devcity.starters import start_mosquitto

DEVICES = 20


def fix_message(i: int, base_ms: int) -> tuple[str, bytes]:
    """Fix number i: device i % DEVICES walks about a metre a second (passes the filters)."""
    device, step = i % DEVICES, i // DEVICES
    fix = {"t": base_ms + step * 1000, "lat": round(LAT + device * 1e-4 + step * 1e-5, 7),
           "lon": round(LON + step * 1e-5, 7), "acc": 5.0, "spd": 1.2, "bat": 80.0, "seq": i}
    return f"gw/v1/620105/collector/dd{device:03d}/pos", msgpack.packb(fix)


class Publisher(threading.Thread):
    """Publishes fixes 0..n-1 with QoS 1 at a steady pace, riding out broker restarts;
    ``acked()`` is the numbers the broker acknowledged (n stays below 65,536: a packet
    id is never reused)."""

    def __init__(self, port: int, n: int, base_ms: int, per_s: float) -> None:
        super().__init__(daemon=True)
        self.n, self.base_ms, self.per_s = n, base_ms, per_s
        self.sent = 0
        self._mids: dict[int, int] = {}  # number → packet id
        self._acked_mids: set[int] = set()
        self._lock = threading.Lock()  # the publishing thread and paho's network thread write, the test reads
        client = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"durable-pub-{id(self)}",
                                           protocol=paho.MQTTv311, clean_session=False)
        client.username_pw_set("simulator", BROKER_USERS["simulator"])
        client.max_inflight_messages_set(500)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(0.05, 0.2)
        client.on_publish = self._on_publish
        client.connect("127.0.0.1", port)
        client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._acked_mids.add(mid)

    def acked(self) -> set[int]:
        with self._lock:
            acked = set(self._acked_mids)
            mids = list(self._mids.items())
        return {i for i, mid in mids if mid in acked}

    def run(self) -> None:
        start = time.monotonic()
        for i in range(self.n):
            topic, payload = fix_message(i, self.base_ms)
            mid = self.client.publish(topic, payload, qos=1).mid
            with self._lock:
                self._mids[i] = mid
            self.sent = i + 1
            delay = start + (i + 1) / self.per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def settle(self, timeout: float = 30) -> None:
        """Wait until every message sent was acknowledged by the broker (or timeout), then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.acked()) < self.n:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


async def stored_numbers(store) -> list[int]:
    rows = await store.fetch("SELECT seq FROM pings WHERE device LIKE 'dd%'")
    return [r["seq"] for r in rows]


async def start(nursery, settings, store):
    return await nursery.start(functools.partial(run_service, settings, store))


async def test_a_crash_mid_stream_loses_nothing_and_stores_nothing_twice(settings):
    n, base = 6000, int(time.time() * 1000) - 3_600_000
    settings = settings.replace("mqtt", qos=1)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        await import_grids(store, str(DEMO_CITY), settings.grid.h3_resolution)
        running = await start(nursery, settings, store)
        publisher = Publisher(settings.mqtt.port, n, base, per_s=3000)
        publisher.start()
        metrics = running.pipeline.metrics
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= n // 4, timeout=30)
        # crash while messages are received and not yet stored
        await wait_for(lambda: metrics.get("gridwatch_messages_total") - metrics.get("gridwatch_persisted_total") >= 200, timeout=30,
                       interval=0.001)
        running.cancel_scope.cancel()  # a crash: what is in the pipeline is dropped, not acknowledged
        await wait_for(lambda: not running.pipeline.broker.connected)
        crashed_with = len(await stored_numbers(store))
        assert crashed_with < n  # mid-stream indeed
        await trio.sleep(0.3)  # the broker queues for the absent session meanwhile
        again = await start(nursery, settings, store)
        await trio.to_thread.run_sync(publisher.settle)
        assert len(publisher.acked()) == n
        await wait_for(lambda: again.pipeline.metrics.get("gridwatch_persisted_total") >= n - crashed_with, timeout=60)
        await trio.sleep(0.5)  # anything delivered twice would be in by now
        numbers = await stored_numbers(store)
        nursery.cancel_scope.cancel()
    assert sorted(numbers) == list(range(n))  # every fix, once


async def test_a_clean_stop_mid_stream_acknowledges_what_it_stored_so_nothing_comes_again(settings):
    n, base = 6000, int(time.time() * 1000) - 3_600_000
    settings = settings.replace("mqtt", qos=1)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        await import_grids(store, str(DEMO_CITY), settings.grid.h3_resolution)
        running = await start(nursery, settings, store)
        publisher = Publisher(settings.mqtt.port, n, base, per_s=3000)
        publisher.start()
        metrics = running.pipeline.metrics
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= n // 4, timeout=30)
        # stop while messages are received and not yet stored: they are stored, then acknowledged
        await wait_for(lambda: metrics.get("gridwatch_messages_total") - metrics.get("gridwatch_persisted_total") >= 200, timeout=30,
                       interval=0.001)
        await running.stop()
        first = (metrics.get("gridwatch_messages_total"), metrics.get("gridwatch_persisted_total"))
        stopped_with = len(await stored_numbers(store))
        assert stopped_with < n  # mid-stream indeed
        await trio.sleep(0.3)  # the broker queues for the absent session meanwhile
        again = await start(nursery, settings, store)
        await trio.to_thread.run_sync(publisher.settle)
        assert len(publisher.acked()) == n
        metrics = again.pipeline.metrics
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= n - stopped_with, timeout=60)
        await trio.sleep(0.5)  # anything delivered again would be in by now
        second = (metrics.get("gridwatch_messages_total"), metrics.get("gridwatch_pings_already_stored_total"))
        numbers = await stored_numbers(store)
        nursery.cancel_scope.cancel()
    assert first == (stopped_with, stopped_with)  # the first run stored everything it received
    assert second == (n - stopped_with, 0)  # the second received only the rest: nothing delivered again
    assert sorted(numbers) == list(range(n))  # every fix, once


async def test_a_broker_restart_mid_stream_loses_nothing_it_acknowledged_and_doubles_nothing(settings, tmp_path):
    broker = start_mosquitto(tmp_path / "mosquitto", 0, BROKER_USERS)
    n, base = 6000, int(time.time() * 1000) - 3_600_000
    settings = settings.replace("mqtt", port=broker.port, qos=1, reconnect_max_s=0.5)
    try:
        async with trio.open_nursery() as nursery:
            store = await nursery.start(store_task, settings.database.dsn)
            await import_grids(store, str(DEMO_CITY), settings.grid.h3_resolution)
            running = await start(nursery, settings, store)
            publisher = Publisher(broker.port, n, base, per_s=3000)
            publisher.start()
            await wait_for(lambda: publisher.sent >= n // 3, timeout=30)
            await trio.to_thread.run_sync(broker.stop)  # a clean stop saves the broker's database
            broker = await trio.to_thread.run_sync(lambda: start_mosquitto(tmp_path / "mosquitto", settings.mqtt.port, BROKER_USERS))
            await wait_for(lambda: running.pipeline.broker.connects >= 2, timeout=15)
            await trio.to_thread.run_sync(publisher.settle)
            acked = publisher.acked()
            assert len(acked) > n // 2
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= len(acked), timeout=60)
            await trio.sleep(1.0)  # redeliveries would be in by now
            numbers = await stored_numbers(store)
            assert running.pipeline.broker.session_present  # the broker kept the session across its restart
            nursery.cancel_scope.cancel()
    finally:
        broker.discard()
    assert len(numbers) == len(set(numbers))  # nothing twice
    assert acked <= set(numbers)  # nothing lost of what the broker acknowledged


async def test_a_message_delivered_twice_is_stored_once(settings, broker):
    """The same QoS 1 message again (a device resending it, or the broker redelivering it
    to a service that crashed before acknowledging): one row, and no refused copy."""
    settings = settings.replace("mqtt", qos=1)
    position = fix_message(7, int(time.time() * 1000) - 60_000)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        await import_grids(store, str(DEMO_CITY), settings.grid.h3_resolution)
        first = await start(nursery, settings, store)
        await apublish(broker, [position])
        await wait_for(lambda: first.pipeline.metrics.get("gridwatch_persisted_total") == 1)
        first.cancel_scope.cancel()
        await wait_for(lambda: not first.pipeline.broker.connected)
        # a fresh service: nothing in memory recognises the copy, only the database can
        second = await start(nursery, settings, store)
        await apublish(broker, [position])
        metrics = second.pipeline.metrics
        await wait_for(lambda: metrics.get("gridwatch_pings_already_stored_total") == 1)
        pings = await store.fetch("SELECT device, seq FROM pings")
        filtered = await store.fetch("SELECT device FROM filtered_fixes")
        nursery.cancel_scope.cancel()
    assert [(r["device"], r["seq"]) for r in pings] == [("dd007", 7)]
    assert metrics.get("gridwatch_persisted_total") == 0 and filtered == []
