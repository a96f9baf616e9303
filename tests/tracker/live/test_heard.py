"""A device is heard from by any message: a sensor that stands still and reports its
status every minute keeps its fix's time while its view's ``heard`` follows the reports,
which is what the map judges "online" by. Its readings and the registry's names ride in
the same view."""

from __future__ import annotations

import msgpack

from geofence.index import GridIndex
from tests.fakes import RecordingStore
from tracker import config
from tracker.ingest.pipeline import Pipeline
from tracker.registry.directory import Registry
from tracker.registry.model import RegisteredDevice

T0 = 1_795_000_000_000
MINUTE = 60_000
COVER = "6201050101000007"
TOPIC = "gw/v1/620105/sensor/mh-0007"


def _pipeline() -> Pipeline:
    settings = config.load(None, environ={}).replace("handset", max_future_s=1e9, max_age_s=1e12)
    pipeline = Pipeline(settings, RecordingStore(), GridIndex(12), clock_ms=lambda: T0)
    registry = Registry()
    registry.replace([RegisteredDevice.new("mh-0007", "sensor", "620105", name="井盖 000007", component=COVER)])
    pipeline.live.names = registry.names
    return pipeline


def _status(t_ms: int, tilt: float) -> bytes:
    return msgpack.packb({"dev": "mh-0007", "comp": COVER, "t": t_ms, "type": "manhole", "kind": "status", "tilt": tilt, "bat": 88})


def test_a_still_sensor_reporting_status_every_minute_is_heard_from_for_an_hour() -> None:
    pipeline = _pipeline()
    pipeline.ingest([(f"{TOPIC}/pos", msgpack.packb({"t": T0, "lat": 36.1050, "lon": 103.7200, "acc": 3.0}), T0 + 500)])
    seen, stored = [], []
    for minute in range(1, 61):
        t = T0 + minute * MINUTE
        stored += pipeline.ingest([(f"{TOPIC}/status", _status(t, 1.0 + minute / 100), t + 300)]).readings
        view = pipeline.live.view("mh-0007")
        assert view is not None
        seen.append((view["t"], view["heard"]))
    assert seen == [(T0, T0 + m * MINUTE + 300) for m in range(1, 61)]
    assert (view["label"], view["component"], view["readings"]) == ("井盖 000007", COVER, {"tilt": 1.6, "bat": 88.0, "t": T0 + 60 * MINUTE})
    # every record goes to sensor_readings, for the chart of its day
    assert [(row[0], row[4], row[5]) for row in stored] == [("mh-0007", "status", 1.0 + m / 100) for m in range(1, 61)]


def test_a_message_refused_or_undecodable_is_not_a_sign_of_life() -> None:
    pipeline = _pipeline()
    pipeline.ingest([(f"{TOPIC}/pos", msgpack.packb({"t": T0, "lat": 36.1050, "lon": 103.7200, "acc": 3.0}), T0 + 500)])
    pipeline.ingest([(f"{TOPIC}/status", b"\xc1 not msgpack", T0 + 10 * MINUTE),
                     (f"{TOPIC}/cmd", b'{"cmd":"reportLocation"}', T0 + 11 * MINUTE)])
    view = pipeline.live.view("mh-0007")
    assert view is not None and view["heard"] == T0 + 500
