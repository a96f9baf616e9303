"""Component sensors: an alarm published over MQTT becomes a stored alarm event and a
live-stream event; a sensor that stops reporting raises "sensor silent" on trio's clock;
what the rules know of each sensor survives a crash or a stop of the service."""

from __future__ import annotations

import json
import time

import msgpack
import pytest
import trio
import trio.testing
from websockets.trio.client import connect as ws_connect

from geofence.index import GridIndex
from protocols.epoch import datetime_to_ms, ms_to_datetime
from tests.fakes import RecordingStore
from tests.harness import auth_headers, start_service, store_task, ws_url
from tests.helpers import apublish, wait_for, ws_until
from tracker import config
from tracker.ingest.pipeline import Pipeline

COVER = "6201050101000007"


def _record(t_ms: int, **fields) -> dict:
    return {"dev": "mh-0007", "comp": COVER, "t": t_ms, "type": "manhole", **fields}


async def test_a_lifted_manhole_cover_is_an_alarm_event_stored_and_streamed(settings, broker):
    now = int(time.time() * 1000)
    topic = "gw/v1/620105/sensor/mh-0007/alarm"
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with ws_connect(ws_url(running), additional_headers=await auth_headers(store)) as ws:
            await ws.recv()
            await apublish(broker, [
                ("gw/v1/620105/sensor/mh-0007/pos", msgpack.packb({"t": now - 10_000, "lat": 36.1050, "lon": 103.7200, "acc": 3.0})),
                (topic, msgpack.packb(_record(now - 5000, kind="alarm", alarm="tilt", tilt=35.5, bat=87))),
                (topic, msgpack.packb(_record(now, kind="status", tilt=35.0, bat=87))),
            ])
            event = await ws_until(ws, lambda f: f["type"] == "alarm")
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 1)
        with trio.fail_after(10):
            while not (rows := await store.fetch("SELECT device, component, kind, raised, grid FROM alarm_events")):
                await trio.sleep(0.05)
        bindings = await store.fetch("SELECT code, device, grid FROM components")
        nursery.cancel_scope.cancel()
    assert (event["device"], event["component"], event["kind"], event["raised"], event["grid"]) == ("mh-0007", COVER, "tilt", True, "620105003003010")
    assert [tuple(r) for r in rows] == [("mh-0007", COVER, "tilt", True, "620105003003010")]
    assert [tuple(r) for r in bindings] == [(COVER, "mh-0007", "620105003003010")]  # one manhole, one number


async def test_a_sensor_that_stops_reporting_is_declared_silent_once(autojump_clock):
    settings = config.load(None, environ={}).replace("sensors", silent_after_s=1800.0, watchdog_s=10.0)
    settings = settings.replace("handset", max_future_s=1e9, max_age_s=1e12)
    t0 = 1_795_000_000_000
    store = RecordingStore()
    pipeline = Pipeline(settings, store, GridIndex(12), clock_ms=lambda: t0 + int(trio.current_time() * 1000))
    client, _ = pipeline.hub.connect()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        status = msgpack.packb(_record(t0, kind="status", tilt=0.5, bat=90))
        await pipeline.feed([("gw/v1/620105/sensor/mh-0007/status", status, t0)])
        await trio.sleep(1790)
        assert pipeline.sensors.silent == set()
        await trio.sleep(30)
        frames = [json.loads(f) for f in await client.next_frames(pipeline.live)]
        await trio.sleep(3600)
        nursery.cancel_scope.cancel()
    silent = [f for f in frames if f["type"] == "alarm" and f["kind"] == "silent"]
    assert [(f["device"], f["raised"]) for f in silent] == [("mh-0007", True)]
    assert sum(1 for a in _alarms(store) if a[3] == "silent") == 1


def _alarms(store: RecordingStore) -> list[tuple]:
    return [a for batch in store.alarm_batches for a in batch]


# --- restarts ------------------------------------------------------------------------------

T0 = 1_795_000_000_000  # 2026-11-19 09:46:40 UTC, the injected clock's start
TOPIC = "gw/v1/620105/sensor/mh-0007"


class Clock:
    """The service's clock, moved by the test (epoch ms)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


async def _events(store) -> list[tuple]:
    return [(r["kind"], r["raised"], datetime_to_ms(r["t"]))
            for r in await store.fetch("SELECT kind, raised, t FROM alarm_events WHERE device = 'mh-0007' ORDER BY id")]


async def _until_events(store, count: int) -> list[tuple]:
    with trio.fail_after(10):
        while len(events := await _events(store)) < count:
            await trio.sleep(0.05)
    return events


async def _until_saved(store) -> dict:
    with trio.fail_after(10):
        while not (states := await store.sensor_states()):
            await trio.sleep(0.05)
    return states[0]


async def _settle_and_stop(store, running) -> tuple[list[tuple], list, dict]:
    """Let the watchdog tick a few times, stop cleanly; what is stored then."""
    await trio.sleep(2.5)
    await running.stop()
    latest = await store.latest_alarm_events("sensor")
    return await _events(store), [(r["kind"], r["raised"]) for r in latest if r["raised"]], (await store.sensor_states())[0]


@pytest.mark.parametrize("stop", ["crash", "clean stop"])
async def test_a_recovery_after_a_restart_clears_the_tilt_raised_before_it(settings, broker, stop):
    clock = Clock(T0)
    async with trio.open_nursery() as before:
        store, running = await start_service(before, settings, clock_ms=clock)
        await apublish(broker, [
            (f"{TOPIC}/pos", msgpack.packb({"t": T0 - 10_000, "lat": 36.1050, "lon": 103.7200, "acc": 3.0})),
            (f"{TOPIC}/alarm", msgpack.packb(_record(T0, kind="alarm", alarm="tilt", tilt=35.5, bat=87))),
        ])
        clock.now_ms = T0 + 3_000  # past the debounce: the watchdog raises the tilt
        raised = await _until_events(store, 1)
        if stop == "clean stop":
            await running.stop()
        before.cancel_scope.cancel()  # a crash: the service and its database connections go at once

    clock.now_ms = T0 + 600_000
    async with trio.open_nursery() as after:
        store, running = await start_service(after, settings, clock_ms=clock)
        await apublish(broker, [(f"{TOPIC}/alarm", msgpack.packb(_record(T0 + 600_000, kind="recovery", alarm="tilt", tilt=0.4, bat=87)))])
        await _until_events(store, 2)
        events, still_raised, saved = await _settle_and_stop(store, running)
        after.cancel_scope.cancel()
    assert raised == [("tilt", True, T0)]
    assert events == [("tilt", True, T0), ("tilt", False, T0 + 600_000)]  # one recovery for the episode
    assert still_raised == []
    assert (saved["device"], saved["silent"], dict(saved["rules"]["conditions"])["tilt"]["emitted"]) == ("mh-0007", False, False)


async def test_a_cover_lifted_just_before_a_crash_is_raised_once_after_it_and_falls_silent_on_time(settings, broker):
    clock = Clock(T0)
    async with trio.open_nursery() as before:
        store, running = await start_service(before, settings, clock_ms=clock)
        await apublish(broker, [(f"{TOPIC}/alarm", msgpack.packb(_record(T0, kind="alarm", alarm="tilt", tilt=61.0, bat=87)))])
        pending = await _until_saved(store)  # saved with the reading: a tilt being debounced
        before.cancel_scope.cancel()

    clock.now_ms = T0 + 5_000
    async with trio.open_nursery() as after:
        store, running = await start_service(after, settings, clock_ms=clock)
        await _until_events(store, 1)  # the debounce matured while the service was down
        clock.now_ms = T0 + 31 * 60_000  # heard last at T0: silent after 30 minutes, restart or not
        await _until_events(store, 2)
        events, still_raised, _ = await _settle_and_stop(store, running)
        after.cancel_scope.cancel()
    assert dict(pending["rules"]["conditions"])["tilt"]["pending_ms"] == T0
    assert events == [("tilt", True, T0), ("silent", True, T0 + 31 * 60_000)]
    assert sorted(still_raised) == [("silent", True), ("tilt", True)]


async def test_an_alarm_left_raised_by_a_run_that_saved_no_state_is_cleared_by_the_next_recovery(settings, broker):
    clock = Clock(T0 + 600_000)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        # what a crash left before sensor states were saved: a raised tilt, nothing else
        await store.record_alarms([("sensor", "mh-0007", COVER, "tilt", True, ms_to_datetime(T0), 35.5, "", None, None, None)])
        store, running = await start_service(nursery, settings, clock_ms=clock)
        await apublish(broker, [(f"{TOPIC}/alarm", msgpack.packb(_record(T0 + 600_000, kind="recovery", alarm="tilt", tilt=0.4)))])
        await _until_events(store, 2)
        events, still_raised, _ = await _settle_and_stop(store, running)
        nursery.cancel_scope.cancel()
    assert (events, still_raised) == ([("tilt", True, T0), ("tilt", False, T0 + 600_000)], [])
