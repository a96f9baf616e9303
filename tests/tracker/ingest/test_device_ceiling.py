"""Made-up device ids cannot grow memory without end: 50,000 of them, through the
pipeline in-process, leave every per-device table within [pipeline] max_devices, the
least recently heard forgotten and counted, while a device that keeps reporting stays."""

from __future__ import annotations

import msgpack

from alerts.patrol import PatrolState
from geofence.index import GridIndex
from tests.coverage_city import SCHEDULE, TERRITORY
from tests.fakes import RecordingStore
from tracker import config
from tracker.bounds import EVICT_TO
from tracker.ingest.pipeline import DECODE_SLICE_MESSAGES, Pipeline
from tracker.live.patrol import Patrol
from tracker.metrics import Metrics

T0 = 1_795_000_000_000
CAP = 1_000
IDS = 50_000


def _pipeline(cap: int) -> Pipeline:
    settings = config.load(None, environ={}).replace("pipeline", max_devices=cap)
    return Pipeline(settings, RecordingStore(), GridIndex(12), clock_ms=lambda: T0)


def _made_up(i: int, rx_ms: int) -> list[tuple[str, bytes, int]]:
    """A position and a status of collector x{i}, a status of sensor s{i} on its own manhole."""
    t = rx_ms - 1000
    record = {"dev": f"s{i:05d}", "comp": f"620105010{i:07d}", "t": t, "type": "manhole", "kind": "status", "tilt": 0.5, "bat": 90}
    return [
        (f"gw/v1/620105/collector/x{i:05d}/pos", msgpack.packb({"t": t, "lat": 36.1, "lon": 103.7, "acc": 5.0, "seq": i}), rx_ms),
        (f"gw/v1/620105/collector/x{i:05d}/status", msgpack.packb({"t": t, "bat": 50}), rx_ms),
        (f"gw/v1/620105/sensor/s{i:05d}/status", msgpack.packb(record), rx_ms),
    ]


def _faithful(n: int, rx_ms: int) -> list[tuple[str, bytes, int]]:
    """The one real collector, c01, pacing a metre back and forth."""
    fix = {"t": rx_ms - 500, "lat": 36.1 + (n % 2) * 1e-5, "lon": 103.72, "acc": 5.0, "seq": n}
    return [("gw/v1/620105/collector/c01/pos", msgpack.packb(fix), rx_ms)]


def test_fifty_thousand_made_up_ids_stay_within_the_ceiling():
    pipeline = _pipeline(CAP)
    patrol = Patrol(None, None, {}, None, Metrics(), clock_ms=lambda: T0)  # type: ignore[arg-type]
    patrol.state = PatrolState(SCHEDULE, TERRITORY)
    patrol.max_devices = CAP
    pipeline.fix_listeners.append(patrol.observe_slice)
    largest: dict[str, int] = {}

    def sizes() -> dict[str, int]:
        return {"live": len(pipeline.live.devices), "battery": len(pipeline.live.battery), "dirty": len(pipeline.live.dirty),
                "filters": pipeline.filter.remembered, "sensors": len(pipeline.sensors.components),
                "sensor states": len(pipeline.sensors.states), "sensor last seen": len(pipeline.sensors.last_seen),
                "bindings": len(pipeline._bindings), "patrol": len(patrol._visits), "patrol newest": len(patrol._newest)}

    per_slice = DECODE_SLICE_MESSAGES
    for start in range(0, IDS, per_slice):
        rx = T0 + start  # one millisecond later per made-up device
        batch = [m for i in range(start, min(start + per_slice, IDS)) for m in _made_up(i, rx)] + _faithful(start, rx)
        pipeline.ingest(batch)
        patrol.absorb()
        for name, size in sizes().items():
            largest[name] = max(largest.get(name, 0), size)
        pipeline.live.take_dirty()  # as the hub's tick does
    assert {name: size for name, size in largest.items() if size > CAP} == {}
    assert len(pipeline.router._routes) <= 3 * CAP
    # the ceiling is reached and held: each table forgets down to 7/8 of it, not further
    assert all(size >= int(CAP * EVICT_TO) for name, size in sizes().items() if name != "dirty")
    # c01 reports with every slice: never the least recently heard
    assert "c01" in pipeline.live.devices and pipeline.live.devices["c01"].fix.seq == range(0, IDS, per_slice)[-1]
    assert "c01" in patrol._visits
    m = pipeline.metrics
    for table in ("live", "filters", "sensors", "component_bindings", "topic_routes"):
        assert m.get("gridwatch_devices_evicted_total", table=table) > 0, table
    assert m.get("gridwatch_devices_evicted_total", table="live") >= IDS - CAP
    assert m.get("gridwatch_devices_evicted_total", table="filters") >= IDS - CAP
    assert m.get("gridwatch_fixes_ingested_total") == IDS + len(range(0, IDS, per_slice))  # none refused on the way
    assert "gridwatch_devices_remembered " in m.render()


def test_a_forgotten_device_that_reports_again_is_placed_as_new():
    pipeline = _pipeline(8)
    for i in range(16):
        pipeline.ingest(_made_up(i, T0 + i)[:1])
    assert len(pipeline.live.devices) <= 8 and "x00000" not in pipeline.live.devices
    out = pipeline.ingest(_made_up(0, T0 + 100)[:1])
    assert [row[0] for row in out.rows] == ["x00000"] and pipeline.live.devices["x00000"].fix.rx_ms == T0 + 100
    assert pipeline.metrics.get("gridwatch_fixes_filtered_total", reason="duplicate") == 0
