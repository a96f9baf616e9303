"""Alarms and device events reach the live maps of their district and the city's: a
sensor's by its component, a vehicle's by the vehicle (its own district even when it is
raised in another district's grid, or before its first fix is placed: then the district
its gateway serves), an OwnTracks phone's events by the phone's. On trio's MockClock,
with the pipeline's stages alone."""

from __future__ import annotations

import json

import msgpack
import trio

from geofence.index import GridIndex
from protocols.jt808.session import VehicleAlarm
from tests.fakes import RecordingStore
from tracker import config
from tracker.ingest.pipeline import Pipeline

T0 = 1_795_000_000_000
ANNING, QILIHE = "620105", "620103"


def _now_ms() -> int:
    return T0 + round(trio.current_time() * 1000)


async def test_each_alarm_and_event_goes_to_its_district_and_the_city(autojump_clock):
    settings = config.load(None, environ={}).replace("handset", max_age_s=1e9, max_future_s=1e9)
    settings = settings.replace("jt808", district=QILIHE).replace("owntracks", devices=("alice/phone=c1042",))
    pipeline = Pipeline(settings, RecordingStore(), GridIndex(12), clock_ms=_now_ms)
    live = pipeline.live
    clients = {key: pipeline.hub.join(key) for key in (ANNING, QILIHE, None)}
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        record = {"dev": "mh-3001", "comp": "6201030101000001", "type": "manhole", "bat": 87}
        await pipeline.feed([
            # an Anning vehicle, placed first: its alarms are Anning's wherever it is
            ("gw/v1/620105/vehicle/v1001/pos", msgpack.packb({"t": T0, "lat": 36.06, "lon": 103.76, "acc": 5}), T0),
            ("gw/v1/620103/sensor/mh-3001/alarm", msgpack.packb(record | {"t": T0, "kind": "alarm", "alarm": "tilt", "tilt": 40}), T0),
            ("gw/v1/620103/sensor/mh-3001/status", msgpack.packb(record | {"t": T0 + 5000, "kind": "status", "tilt": 40}), T0),
            ("owntracks/alice/phone", json.dumps({"_type": "lwt", "tst": T0 // 1000}).encode(), T0),
        ])
        await trio.sleep(1)
        await pipeline.alarms([VehicleAlarm("v1001", T0 + 1000, 0, "sos", 36.06, 103.76, True),
                               VehicleAlarm("v3009", T0 + 1000, 0, "sos", 36.06, 103.76, True)])  # not placed yet
        await trio.sleep(1)
        heard = {}
        for key, client in clients.items():
            frames = [json.loads(f) for f in await client.next_frames(live)]
            heard[key] = sorted(f"{f['type']}:{f['device']}" for f in frames if f["type"] != "delta")
        nursery.cancel_scope.cancel()
    assert heard == {
        ANNING: ["alarm:v1001", "device_offline:c1042"],  # OwnTracks phones are collectors of [grid] district
        QILIHE: ["alarm:mh-3001", "alarm:v3009"],
        None: ["alarm:mh-3001", "alarm:v1001", "alarm:v3009", "device_offline:c1042"],
    }
