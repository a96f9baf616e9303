"""Component sensors: an alarm published over MQTT becomes a stored alarm event and a
live-stream event; a sensor that stops reporting raises "sensor silent" on trio's clock."""

from __future__ import annotations

import json
import time

import msgpack
import trio
import trio.testing
from websockets.trio.client import connect as ws_connect

from geofence.index import GridIndex
from tests.fakes import RecordingStore
from tests.harness import start_service, ws_url
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
        async with ws_connect(ws_url(running)) as ws:
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
