"""A simulated fleet that speaks only MQTT, like real devices.

Collectors walk patrol loops through the unit grids of their community at walking speed
with GPS noise; some linger, some stray outside their area, some go silent and later
upload their backlog as one batch (as a handset does after losing coverage); some
handsets report GCJ-02, as phones with Chinese map SDKs do. Vehicles drive the roads
between grids; sensors sit on components and report their position as a heartbeat.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import trio

from protocols.coords import wgs84_to_gcj02
from tracker.broker import BrokerClient, BrokerParams

log = logging.getLogger(__name__)

M_PER_DEG_LAT = 111_320.0


@dataclass
class Walker:
    device: str
    device_class: str
    district: str
    route: list[tuple[float, float]]  # (lat, lon) waypoints, looped
    speed: float  # m/s
    noise_m: float
    behaviour: str = "normal"  # normal | linger | stray | silent
    gcj: bool = False
    leg: int = 0
    pos: tuple[float, float] = (0.0, 0.0)
    seq: int = 0
    battery: float = 100.0
    backlog: list[dict] = field(default_factory=list)
    paused_until: float = 0.0
    silent_until: float = 0.0

    def __post_init__(self) -> None:
        self.pos = self.route[0]

    def step(self, dt: float, now: float, rng: random.Random) -> None:
        if now < self.paused_until:
            return
        if self.behaviour == "linger" and rng.random() < 0.01:
            self.paused_until = now + rng.uniform(120, 600)
            return
        remaining = self.speed * dt
        while remaining > 0:
            target = self.route[(self.leg + 1) % len(self.route)]
            d = _distance_m(self.pos, target)
            if d <= remaining:
                self.pos, remaining = target, remaining - d
                self.leg = (self.leg + 1) % len(self.route)
            else:
                f = remaining / d
                self.pos = (self.pos[0] + (target[0] - self.pos[0]) * f, self.pos[1] + (target[1] - self.pos[1]) * f)
                remaining = 0
        self.battery = max(5.0, self.battery - dt * 0.0008)

    def fix(self, t_ms: int, rng: random.Random) -> dict:
        lat, lon = self.pos
        lat += rng.gauss(0, self.noise_m) / M_PER_DEG_LAT
        lon += rng.gauss(0, self.noise_m) / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
        self.seq += 1
        doc = {"t": t_ms, "lat": round(lat, 7), "lon": round(lon, 7), "acc": round(abs(rng.gauss(self.noise_m, 2)) + 3, 1),
               "spd": round(self.speed if t_ms / 1000 >= self.paused_until else 0.0, 2), "bat": round(self.battery, 1), "seq": self.seq}
        if self.gcj:
            doc["lat"], doc["lon"] = (round(v, 7) for v in wgs84_to_gcj02(doc["lat"], doc["lon"]))
            doc["crs"] = "gcj02"
        return doc

    @property
    def topic(self) -> str:
        return f"gw/v1/{self.district}/{self.device_class}/{self.device}/pos"


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (b[0] - a[0]) * M_PER_DEG_LAT
    dx = (b[1] - a[1]) * M_PER_DEG_LAT * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


def _centroid(ring: list[list[float]]) -> tuple[float, float]:
    pts = ring[:-1]
    return (sum(p[1] for p in pts) / len(pts), sum(p[0] for p in pts) / len(pts))


def build_fleet(grid_file: Path, collectors: int, vehicles: int, sensors: int, seed: int = 7) -> list[Walker]:
    rng = random.Random(seed)
    doc = json.loads(Path(grid_file).read_text(encoding="utf-8"))
    by_community: dict[str, list[tuple[str, tuple[float, float]]]] = defaultdict(list)
    corners = []
    for f in doc["features"]:
        code = f["properties"]["code"]
        ring = f["geometry"]["coordinates"][0]
        by_community[code[:12]].append((code, _centroid(ring)))
        corners.extend((p[1], p[0]) for p in ring)
    communities = sorted(by_community)
    fleet: list[Walker] = []
    behaviours = ["normal"] * 14 + ["linger"] * 2 + ["stray"] * 2 + ["silent"] * 2
    for i in range(collectors):
        community = communities[i % len(communities)]
        cells = sorted(by_community[community])  # west→east, north→south by code
        route = [c for _, c in cells]
        behaviour = behaviours[i % len(behaviours)]
        if behaviour == "stray":
            other = by_community[communities[(i + 5) % len(communities)]]
            route = route + [other[len(other) // 2][1]]
        fleet.append(Walker(f"c{i + 1:04d}", "collector", community[:6], route, rng.uniform(1.1, 1.5), rng.uniform(3, 8),
                            behaviour, gcj=(i % 4 == 1)))
    lats = sorted({round(p[0], 4) for p in corners})
    lons = sorted({round(p[1], 4) for p in corners})
    for i in range(vehicles):
        lat0, lat1 = lats[len(lats) * (i + 1) // (vehicles + 2)], lats[-1 - len(lats) * i // (vehicles + 2)]
        lon0, lon1 = lons[len(lons) * i // (vehicles + 1)], lons[-1 - len(lons) * i // (vehicles + 2)]
        route = [(lat0, lon0), (lat0, lon1), (lat1, lon1), (lat1, lon0)]
        fleet.append(Walker(f"v{i + 1:03d}", "vehicle", "620105", route, rng.uniform(6, 11), 4))
    all_grids = [c for community in communities for c in by_community[community]]
    for i in range(sensors):
        code, centre = all_grids[rng.randrange(len(all_grids))]
        fleet.append(Walker(f"s{i + 1:03d}", "sensor", code[:6], [centre], 0.0, 1.5))
    return fleet


async def run_fleet(params: BrokerParams, fleet: list[Walker], interval_s: float, *, connections: int = 0,
                    seed: int = 11, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Publish the fleet forever. ``connections``: how many MQTT connections to share
    between devices (0: one per device, as real handsets have)."""
    rng = random.Random(seed)
    n_conn = connections or len(fleet)
    clients = [BrokerClient(BrokerParams(params.host, params.port, params.username, params.password,
                                         f"{params.client_id}-{i}", params.keepalive_s)) for i in range(n_conn)]
    async with trio.open_nursery() as nursery:
        for client in clients:
            await nursery.start(client.run)
        task_status.started()
        last = time.time()
        while True:
            await trio.sleep(interval_s)
            now = time.time()
            dt, last = now - last, now
            t_ms = int(now * 1000)
            for i, w in enumerate(fleet):
                client = clients[i % n_conn]
                w.step(dt, now, rng)
                if w.device_class == "sensor" and w.seq and rng.random() > interval_s / 60:
                    continue  # sensors report about once a minute
                fix = w.fix(t_ms, rng)
                if w.behaviour == "silent":
                    if now < w.silent_until:
                        w.backlog.append(fix)
                        continue
                    if w.backlog:
                        batch, w.backlog = w.backlog + [fix], []
                        _publish(client, w.topic, msgpack.packb(batch))
                        continue
                    if rng.random() < 0.004:
                        w.silent_until = now + rng.uniform(60, 300)
                _publish(client, w.topic, msgpack.packb(fix))


def _publish(client: BrokerClient, topic: str, payload: bytes) -> None:
    try:
        client.publish(topic, payload)
    except trio.BrokenResourceError:
        pass  # reconnecting: a real handset would buffer; the simulator just skips a beat
