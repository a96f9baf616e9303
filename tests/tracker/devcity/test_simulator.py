"""The simulated city against the running service on real Mosquitto and PostgreSQL:
collectors' handsets over MQTT, vehicles as JT/T 808 terminals over TCP (one 2013, one
2019), component sensors with their records, in both districts of the demo city;
everything lands on a unit grid of its own district, a lifted manhole cover and a
speeding truck become alarm events, and nothing is refused."""

from __future__ import annotations

import functools
import random

import trio

from tests.fakes import RecordingSink
from tests.harness import BROKER_USERS, DEMO_CITY, start_service
from tests.helpers import wait_for
from tracker import config
from tracker.devcity.jt808_terminal import Jt808Terminal
from tracker.devcity.simulator import build_fleet, fleet_registrations, run_fleet
from tracker.ingest.broker import BrokerParams
from tracker.ingest.jt808_gateway import Jt808Settings, serve_jt808
from tracker.registry.provisioning import Provisioning, control_account

# the first of each kind in Anning (620105), the second in Qilihe (620103), the third in Anning
COLLECTORS = {"c0001", "c0002", "c0003"}
VEHICLES = {"jt013901050001", "jt013901030002"}  # a speeding 2013 terminal in Anning, a 2019 terminal in Qilihe
SENSORS = {"mh-0001", "bin-0002", "wl-0003"}
COVER = "6201050101000001"


async def _alarm_rows(store, until) -> list[tuple]:
    with trio.fail_after(15):
        while True:
            rows = [tuple(r) for r in await store.fetch(
                "SELECT source, device, component, kind, raised FROM alarm_events ORDER BY t, id")]
            if until(rows):
                return rows
            await trio.sleep(0.1)


async def test_a_small_simulated_city_reports_over_mqtt_and_jt808_without_a_refusal(settings, broker):
    fleet = build_fleet(DEMO_CITY, collectors=3, vehicles=2, sensors=3)
    params = BrokerParams("127.0.0.1", broker.port, "simulator", BROKER_USERS["simulator"], "sim-test")
    lifted_and_put_back = [("sensor", "mh-0001", COVER, "tilt", True), ("sensor", "mh-0001", COVER, "tilt", False)]
    speeding = ("vehicle", "jt013901050001", None, "overspeed", True)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        live = running.pipeline.live.devices
        # reports every 0.25 s; the first cover is lifted 1 s after the start, for 3 s
        await nursery.start(functools.partial(run_fleet, params, fleet, 0.25, ("127.0.0.1", running.jt808_port), lift=(1.0, 3.0)))
        await wait_for(lambda: live.keys() >= COLLECTORS | VEHICLES | SENSORS)
        alarms = await _alarm_rows(store, lambda rows: speeding in rows and all(a in rows for a in lifted_and_put_back))
        await wait_for(lambda: all(live[v].fix.seq >= 10 for v in VEHICLES))
        placed = {device: (live[device].fix.device_class.value, live[device].grid, live[device].fix.district)
                  for device in COLLECTORS | VEHICLES | SENSORS}
        heard = set(running.pipeline.sensors.last_seen)
        rejected = dict(running.pipeline.metrics.labelled.get("gridwatch_rejected_total", {}))
        nursery.cancel_scope.cancel()
    classes = {device: cls for device, (cls, _, _) in placed.items()}
    assert classes == {d: "collector" for d in COLLECTORS} | {d: "vehicle" for d in VEHICLES} | {d: "sensor" for d in SENSORS}
    own = {w.device: w.district for w in fleet.collectors} | {s.device: s.district for s in fleet.sensors}
    own |= {v.device: v.walker.district for v in fleet.vehicles}
    assert {device: grid and grid[:6] for device, (_, grid, _) in placed.items()} == own
    assert sorted(own.values()) == ["620103"] * 3 + ["620105"] * 5
    # handsets and sensors name their district in the topic, and the service takes it from there
    assert {device: district for device, (_, _, district) in placed.items() if device not in VEHICLES} == {
        device: district for device, district in own.items() if device not in VEHICLES}
    assert heard == SENSORS
    assert [a for a in alarms if a[1] == "mh-0001"] == lifted_and_put_back
    assert rejected == {}


async def _gateway(scope: trio.CancelScope, settings: Jt808Settings, sink, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with scope:
        await serve_jt808(settings, sink, task_status=task_status)


async def test_a_dropped_terminal_reconnects_registers_anew_and_backfills_what_it_recorded(nursery):
    sink = RecordingSink()
    (vehicle,) = build_fleet(DEMO_CITY, collectors=0, vehicles=1, sensors=0).vehicles
    terminal = Jt808Terminal(vehicle, random.Random(1))
    first = trio.CancelScope()
    port = await nursery.start(_gateway, first, Jt808Settings(auth_secret=b"before the restart"), sink)
    nursery.start_soon(terminal.run, ("127.0.0.1", port), 0.1)
    await wait_for(lambda: len(sink.got_fixes) >= 3)
    first.cancel()
    await wait_for(lambda: terminal.backlog)
    # the gateway comes back on the same port with a new key: the old auth code no longer works
    await nursery.start(_gateway, trio.CancelScope(), Jt808Settings(port=port, auth_secret=b"after the restart"), sink)
    await wait_for(lambda: terminal.logins == 2 and not terminal.backlog and sink.got_fixes[-1].seq is not None)
    times = [f.t_ms for f in sink.got_fixes]
    assert dict(sink.rejects) == {"bad_auth_code": 1}  # the stale code, once; then it registered again
    assert any(f.seq is None for f in sink.got_fixes)  # 0x0704 backfill items carry no serial
    assert times == sorted(times)  # what it recorded while away came in before its live reports


async def test_a_registered_fleet_logs_in_device_by_device_and_nothing_is_refused(settings, broker):
    """The demo's way: the registry refuses the unknown, every device is registered and
    connects with its own account, vehicles register with their phone and terminal id."""
    settings = settings.replace("registry", unregistered=config.Unregistered.REFUSE)
    fleet = build_fleet(DEMO_CITY, collectors=2, vehicles=1, sensors=2)
    registrations = fleet_registrations(fleet)
    ids = {d.id for d in registrations}
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        provisioning = Provisioning(store, control_account(settings), running.registry)
        await provisioning.ensure_all(fleet_registrations(fleet))
        accounts = await provisioning.ensure_all(fleet_registrations(fleet))  # a second start: fresh passwords
        params = BrokerParams("127.0.0.1", broker.port, "", "", "sim-registered")
        await nursery.start(functools.partial(run_fleet, params, fleet, 0.25, ("127.0.0.1", running.jt808_port),
                                              accounts=accounts))
        await wait_for(lambda: running.pipeline.live.devices.keys() >= ids)
        refused = dict(running.pipeline.metrics.labelled.get("gridwatch_device_refused_total", {}))
        rejected = dict(running.pipeline.metrics.labelled.get("gridwatch_rejected_total", {}))
        nursery.cancel_scope.cancel()
    assert len(ids) == 5 and {d.device_class.value for d in registrations} == {"collector", "vehicle", "sensor"}
    assert (refused, rejected) == ({}, {})


def test_a_speeding_terminal_reports_a_speed_over_the_limit_it_raises_overspeed_at():
    """The overspeed bit goes with a speed over the terminal's limit (JT/T 808 parameter
    0x0055, the service's ``[jt808] speed_limit_kmh``): never "overspeed at 56.9 km/h,
    limit 60 km/h" on the dispatcher's alarm list."""
    import struct

    (vehicle,) = build_fleet(DEMO_CITY, collectors=0, vehicles=1, sensors=0).vehicles
    assert vehicle.speeder
    terminal = Jt808Terminal(vehicle, random.Random(1), speed_limit_kmh=60.0)
    speeds = []
    for step in range(400):
        body, parked = terminal._next_location(1_796_000_000.0 + 2 * step)
        alarm, _, _, _, _, speed_tenths = struct.unpack(">IIIIhH", body[:20])
        if alarm & (1 << 1) and not parked:
            speeds.append(speed_tenths / 10)
    assert speeds and min(speeds) > 60.0, speeds
