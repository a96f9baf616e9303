"""A simulated fleet that talks to Gridwatch the way real devices do.

Collectors carry handsets that publish over MQTT (``docs/protocol.md``): they walk patrol
loops through the unit grids of their community at walking speed with GPS noise; some
linger, some stray outside their area, some go silent and later upload their backlog as
one batch (as a handset does after losing coverage); some report GCJ-02, as phones with
Chinese map SDKs do. Now and then a collector reports a problem it found (a handset
report, which the service turns into a case); a collector sent a verification task on
its ``cmd`` topic walks to the case, looks at it a while, answers with a verification
report and goes back to its round.

Vehicles carry JT/T 808 terminals, each a TCP client of the service's gateway: it
registers (0x0100), authenticates with the code it was issued (0x0102), reports its
position every interval (0x0200) and beats (0x0002) while parked with the engine off.
Dropped, it keeps recording, reconnects with backoff and uploads what it recorded as a
backfill (0x0704). One terminal in four speeds now and then (alarm bit 1), one in four
speaks the 2019 edition. Without a gateway address, vehicles publish handset payloads
over MQTT instead, for a bare broker.

Sensors are component sensors (``docs/sensor-protocol.md``) on manhole covers, litter bins
and waterlogging gauges, each named by its 16-digit component code: a position once at
start, a status report about once a minute, and alarm and recovery records when a cover
is lifted, a bin fills up or a road floods.

This module builds the fleet and runs it; the devices are in ``sim_devices``, the
JT/T 808 terminal in ``sim_jt808``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgpack
import trio

from protocols.coords import M_PER_DEG
from tracker.devcity.city import collector_areas, communities_by_district, share_out
from tracker.devcity.devices import (
    REPORT_EVERY_S,
    SENSOR_PERIOD_S,
    ComponentSensor,
    LitterBin,
    ManholeCover,
    Vehicle,
    Walker,
    WaterlogGauge,
    centroid,
)
from tracker.devcity.jt808_terminal import Jt808Terminal, terminal_id
from tracker.ingest.broker import BrokerClient, BrokerParams, Receipt
from tracker.ingest.paho_adapter import Message
from tracker.registry.model import RegisteredDevice

log = logging.getLogger(__name__)


@dataclass
class Fleet:
    collectors: list[Walker]
    vehicles: list[Vehicle]
    sensors: list[ComponentSensor]

    def __len__(self) -> int:
        return len(self.collectors) + len(self.vehicles) + len(self.sensors)


def fleet_registrations(fleet: Fleet) -> list[RegisteredDevice]:
    """What the registry must hold for the fleet to be let in: every device with its
    class and district; vehicles with their terminal's phone, terminal id and plate
    (their JT/T 808 registration is checked against them); sensors with their
    component code."""
    devices = [RegisteredDevice.new(w.device, "collector", w.district, name=f"采集员 {person}", person=person)
               for n, w in enumerate(fleet.collectors) for person in (demo_person(n),)]
    devices += [RegisteredDevice.new(v.walker.device, "vehicle", v.walker.district, name=f"环卫车 {v.plate}", plate=v.plate,
                                     phone=v.phone, terminal_id=terminal_id(v.phone)) for v in fleet.vehicles]
    # the component's serial (its last six digits) tells four bins of one street apart
    devices += [RegisteredDevice.new(s.device, "sensor", s.district, name=f"{SENSOR_NAMES.get(s.type, s.type)} {s.component[-6:]}",
                                     component=s.component) for s in fleet.sensors]
    return devices


# what the demo calls its sensors and who its collectors are (made-up names, distinct for
# the first 400 collectors)
SENSOR_NAMES = {"manhole": "井盖", "bin": "果皮箱", "waterlog": "积水监测点"}
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何高林罗"
_GIVEN = ("芳", "伟", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平", "刚", "桂英")


def demo_person(n: int) -> str:
    return _SURNAMES[n % len(_SURNAMES)] + _GIVEN[(n // len(_SURNAMES) + 7 * n) % len(_GIVEN)]


def build_fleet(grid_file: Path, collectors: int, vehicles: int, sensors: int, seed: int = 7) -> Fleet:
    """The fleet of a grid file's districts: collectors shared out by communities (each
    walks the community ``collector_areas`` gives it, the one the demo's plan assigns),
    vehicles and sensors by unit grids, each kind interleaved among the districts, every
    device in its own district's grids and publishing under its district."""
    rng = random.Random(seed)
    doc = json.loads(Path(grid_file).read_text(encoding="utf-8"))
    by_community: dict[str, list[tuple[str, tuple[float, float]]]] = defaultdict(list)
    corners: dict[str, list[tuple[float, float]]] = defaultdict(list)  # district → (lat, lon) of its grids' vertices
    for f in doc["features"]:
        code = f["properties"]["code"]
        ring = f["geometry"]["coordinates"][0]
        by_community[code[:12]].append((code, centroid(ring)))
        corners[code[:6]].extend((p[1], p[0]) for p in ring)
    communities = communities_by_district(doc)
    people: list[Walker] = []
    behaviours = ["normal"] * 14 + ["linger"] * 2 + ["stray"] * 2 + ["silent"] * 2
    for i, (device, community) in enumerate(collector_areas(doc, collectors).items()):
        cells = sorted(by_community[community])  # west→east, north→south by code
        route = [c for _, c in cells]
        behaviour = behaviours[i % len(behaviours)]
        if behaviour == "stray":  # out of its community, not out of its district
            neighbours = communities[community[:6]]
            other = by_community[neighbours[(neighbours.index(community) + 5) % len(neighbours)]]
            route = [*route, other[len(other) // 2][1]]
        people.append(Walker(device, "collector", community[:6], route, rng.uniform(1.1, 1.5), rng.uniform(3, 8),
                             behaviour, gcj=(i % 4 == 1)))
    grids_of = {district: [c for community in names for c in by_community[community]] for district, names in communities.items()}
    weights = {district: len(grids) for district, grids in grids_of.items()}
    fleet_vehicles: list[Vehicle] = []
    seen: dict[str, int] = defaultdict(int)
    for i, district in enumerate(share_out(vehicles, weights)):
        k = seen[district]  # the how-manyth vehicle of its district
        seen[district] += 1
        south, north = min(p[0] for p in corners[district]), max(p[0] for p in corners[district])
        west, east = min(p[1] for p in corners[district]), max(p[1] for p in corners[district])
        # loops set in from the edge of the district's grids, so every position falls on one
        fy, fx = 0.1 + 0.1 * (k % 3), 0.1 + 0.1 * (k // 3 % 3)
        lat0, lat1 = south + (north - south) * fy, north - (north - south) * fy
        lon0, lon1 = west + (east - west) * fx, east - (east - west) * fx
        route = [(lat0, lon0), (lat0, lon1), (lat1, lon1), (lat1, lon0)]
        if i % 2:
            route.reverse()
        route = route[i % 4:] + route[:i % 4]
        walker = Walker(f"v{i + 1:03d}", "vehicle", district, route, rng.uniform(6, 11), 3,
                        "linger" if i % 4 == 2 else "normal")
        fleet_vehicles.append(Vehicle(walker, f"0139{district[2:]}{i + 1:04d}", "2019" if i % 4 == 1 else "2013",
                                      f"甘A{3100 + i + 1:05d}", speeder=(i % 4 == 0)))
    # a cycle of five kinds: prime to the districts' interleaving, so each district gets every kind
    kinds = ["manhole", "bin", "waterlog", "manhole", "bin"]
    fleet_sensors: list[ComponentSensor] = []
    for i, district in enumerate(share_out(sensors, weights)):
        grids = grids_of[district]
        code, (lat, lon) = grids[rng.randrange(len(grids))]
        lat += rng.uniform(-25, 25) / M_PER_DEG
        lon += rng.uniform(-25, 25) / (M_PER_DEG * math.cos(math.radians(lat)))
        serial, kind = i + 1, kinds[i % len(kinds)]
        where = (district, (lat, lon), rng.uniform(55, 98))
        if kind == "manhole":
            minor = "0101" if serial % 2 else "0102"  # water-supply or sewage cover
            fleet_sensors.append(ManholeCover(f"mh-{serial:04d}", f"{district}{minor}{serial:06d}", *where,
                                              installed_deg=round(rng.uniform(0.3, 0.8), 2)))
        elif kind == "bin":
            fleet_sensors.append(LitterBin(f"bin-{serial:04d}", f"{district}0315{serial:06d}", *where,
                                           fill=rng.uniform(5, 78), rate_pct_per_min=rng.uniform(0.3, 1.5), rng=rng))
        else:
            fleet_sensors.append(WaterlogGauge(f"wl-{serial:04d}", f"{district}0199{serial:06d}", *where))
    return Fleet(people, fleet_vehicles, fleet_sensors)


async def run_fleet(params: BrokerParams, fleet: Fleet, interval_s: float, jt808: tuple[str, int] | None, *,
                    connections: int = 0, seed: int = 11, lift: tuple[float, float] | None = None,
                    sensor_period_s: float = SENSOR_PERIOD_S, accounts: Mapping[str, str] | None = None,
                    report_every_s: float = REPORT_EVERY_S, clock: Callable[[], float] = time.time,
                    speed_limit_kmh: float = 60.0, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run the fleet forever.

    ``jt808``: (host, port) of the JT/T 808 gateway the vehicles' terminals connect to;
    None: vehicles publish handset payloads over MQTT. ``connections``: how many MQTT
    connections to share between the MQTT devices (0: one per device, as real handsets
    have). ``accounts``: device id → MQTT password: each MQTT device then connects as
    itself, one connection each, as registered devices do (``params`` gives the broker
    and the keepalive; ``connections`` is ignored); None: every device publishes through
    ``params``' account, which must be one that may publish for any device (a
    benchmark's or a test's, never a production broker's). ``lift``: (after_s, for_s): the first manhole cover is lifted that many seconds
    after the start, for that long, and otherwise stays down. ``report_every_s``: each
    collector's mean time between problem reports (0: none). Verification tasks reach the
    collectors only with ``accounts``: each handset then subscribes to its own ``cmd``
    topic, as its broker role allows. ``clock``: epoch seconds, for the devices' times.
    ``speed_limit_kmh``: the limit the vehicles' terminals raise overspeed at (the
    service's ``[jt808] speed_limit_kmh``).
    """
    rng = random.Random(seed)
    handsets = fleet.collectors + ([] if jt808 is not None else [v.walker for v in fleet.vehicles])
    mqtt_devices = len(handsets) + len(fleet.sensors)
    if accounts is not None:
        ids = [w.device for w in handsets] + [s.device for s in fleet.sensors]
        n_conn = len(ids)
        collectors = {w.device: w for w in fleet.collectors}
        clients = [BrokerClient(BrokerParams(params.host, params.port, device, accounts[device], f"{params.client_id}-{device}",
                                             params.keepalive_s,
                                             subscriptions=(collectors[device].cmd_topic,) if device in collectors else (),
                                             qos=1),
                                functools.partial(_commands, collectors[device]) if device in collectors else None)
                   for device in ids]
    else:
        n_conn = min(connections or mqtt_devices, mqtt_devices)
        clients = [BrokerClient(BrokerParams(params.host, params.port, params.username, params.password,
                                             f"{params.client_id}-{i}", params.keepalive_s)) for i in range(n_conn)]
    start = clock()
    if lift is not None:
        cover = next((s for s in fleet.sensors if isinstance(s, ManholeCover)), None)
        if cover is None:
            raise ValueError("lift needs a manhole cover in the fleet")
        cover.schedule_lift(start + lift[0], lift[1])
    async with trio.open_nursery() as nursery:
        for client in clients:
            await nursery.start(client.run)
        if jt808 is not None:
            for i, vehicle in enumerate(fleet.vehicles):
                nursery.start_soon(Jt808Terminal(vehicle, random.Random(seed * 1000 + i), speed_limit_kmh=speed_limit_kmh).run, jt808, interval_s)
        for j, sensor in enumerate(fleet.sensors):
            _publish(clients[(len(handsets) + j) % n_conn], f"{sensor.topic_root}/pos", sensor.position_payload(start), qos=1)
        task_status.started()
        last = start
        while True:
            now = clock()
            dt, last = now - last, now
            t_ms = int(now * 1000)
            for i, w in enumerate(handsets):
                client = clients[i % n_conn]
                w.step(dt, now, rng)
                fix = w.fix(t_ms, rng)
                if w.behaviour == "silent":
                    if now < w.silent_until:
                        w.backlog.append(fix)
                        continue
                    if w.backlog:
                        batch, w.backlog = [*w.backlog, fix], []
                        _publish(client, w.topic, msgpack.packb(batch), qos=1)
                        continue
                    if rng.random() < 0.004:
                        w.silent_until = now + rng.uniform(60, 300)
                _publish(client, w.topic, msgpack.packb(fix))
                if w.device_class == "collector":
                    for report in w.due_reports(now, rng, report_every_s, dt):
                        _publish(client, w.report_topic, msgpack.packb(report), qos=1)
            for j, sensor in enumerate(fleet.sensors):
                client = clients[(len(handsets) + j) % n_conn]
                for topic, payload in sensor.tick(now, rng, sensor_period_s):
                    _publish(client, topic, payload, qos=1)
            await trio.sleep(interval_s)


async def _commands(walker: Walker, messages: list[Message], receipt: Receipt) -> None:
    """A handset's downlink: a verification task sends it to the case; anything else it
    does not understand is left alone, as an old handset would."""
    for _, payload, _ in messages:
        try:
            task = json.loads(payload)
            if task.get("type") == "verify":
                walker.send_to(int(task["case"]), float(task["lat"]), float(task["lon"]))
                log.info("%s: verifying case %s", walker.device, task["case"])
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("%s: command not understood: %r", walker.device, payload[:80])
    receipt.settle()


def _publish(client: BrokerClient, topic: str, payload: bytes, qos: int = 0) -> None:
    try:
        client.publish(topic, payload, qos=qos)
    except trio.BrokenResourceError:
        pass  # reconnecting: a real handset would buffer; the simulator just skips a beat
