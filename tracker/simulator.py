"""A simulated fleet that talks to Gridwatch the way real devices do.

Collectors carry handsets that publish over MQTT (``docs/protocol.md``): they walk patrol
loops through the unit grids of their community at walking speed with GPS noise; some
linger, some stray outside their area, some go silent and later upload their backlog as
one batch (as a handset does after losing coverage); some report GCJ-02, as phones with
Chinese map SDKs do.

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
"""

from __future__ import annotations

import json
import logging
import math
import random
import struct
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import trio

from protocols.coords import wgs84_to_gcj02
from protocols.errors import DecodeError
from protocols.jt808.framing import FrameReader, FramingError
from protocols.jt808.messages import (
    EXTRA_MILEAGE,
    EXTRA_SATELLITES,
    EXTRA_SIGNAL,
    STATUS_ACC,
    STATUS_FIXED,
    BatchKind,
    Header,
    MsgId,
    Result,
    decode_terminal_response,
    device_id,
    encode_message,
    split_message,
)
from tracker.broker import BrokerClient, BrokerParams

log = logging.getLogger(__name__)

M_PER_DEG_LAT = 111_320.0
GMT8_S = 8 * 3600
SENSOR_PERIOD_S = 60.0  # a sensor's status report doubles as its heartbeat

ALTITUDE_M = 1530  # the valley floor of Anning
ALARM_OVERSPEED = 1 << 1
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
ANSWER_TIMEOUT_S = 10.0
BACKLOG_MAX = 2000  # positions a terminal keeps while out of touch; the oldest go first
BACKFILL_ITEMS = 20  # per 0x0704: 3 + 20 × 44 bytes stays under the 1,023-byte body limit
PARKED_REPORT_EVERY = 5  # engine off: a position every 5th interval, heartbeats between


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

    def parked(self, now: float) -> bool:
        return now < self.paused_until

    def measured(self, rng: random.Random) -> tuple[float, float]:
        """The position as a GNSS receiver would give it: WGS-84 with noise."""
        lat, lon = self.pos
        lat += rng.gauss(0, self.noise_m) / M_PER_DEG_LAT
        lon += rng.gauss(0, self.noise_m) / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
        return lat, lon

    def fix(self, t_ms: int, rng: random.Random) -> dict:
        lat, lon = self.measured(rng)
        self.seq += 1
        doc = {"t": t_ms, "lat": round(lat, 7), "lon": round(lon, 7), "acc": round(abs(rng.gauss(self.noise_m, 2)) + 3, 1),
               "spd": round(0.0 if self.parked(t_ms / 1000) else self.speed, 2), "bat": round(self.battery, 1), "seq": self.seq}
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


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return math.degrees(math.atan2(dx, dy)) % 360


def _centroid(ring: list[list[float]]) -> tuple[float, float]:
    pts = ring[:-1]
    return (sum(p[1] for p in pts) / len(pts), sum(p[0] for p in pts) / len(pts))


# --- component sensors ---------------------------------------------------------------


class ComponentSensor:
    """A sensor on one component: a status report every period, and an alarm or recovery
    record at once when the condition it watches begins or ends."""

    type = "generic"

    def __init__(self, device: str, component: str, district: str, position: tuple[float, float], battery: float) -> None:
        self.device = device
        self.component = component
        self.district = district
        self.position = position
        self.battery = battery
        self.seq = 0
        self.next_status = 0.0  # wall clock, s: the first status goes out at power-up
        self.last_tick: float | None = None

    @property
    def topic_root(self) -> str:
        return f"gw/v1/{self.district}/sensor/{self.device}"

    def readings(self, rng: random.Random) -> dict:
        return {}

    def changes(self, now: float, dt: float, rng: random.Random) -> list[tuple[str, str]]:
        """Advance the watched condition; (kind, alarm code) for each begin or end."""
        return []

    def record(self, now: float, kind: str, rng: random.Random, alarm: str | None = None) -> dict:
        self.seq += 1
        doc = {"dev": self.device, "comp": self.component, "t": int(now * 1000), "kind": kind, "type": self.type}
        if alarm is not None:
            doc["alarm"] = alarm
        doc.update(self.readings(rng))
        doc["bat"] = round(self.battery)
        doc["seq"] = self.seq
        return doc

    def tick(self, now: float, rng: random.Random, period_s: float) -> list[tuple[str, bytes]]:
        """What to publish now, as (topic, msgpack payload)."""
        dt = 0.0 if self.last_tick is None else now - self.last_tick
        self.last_tick = now
        self.battery = max(1.0, self.battery - dt * 2e-6)  # a cell lasts years
        out = [(f"{self.topic_root}/alarm", self.record(now, kind, rng, alarm)) for kind, alarm in self.changes(now, dt, rng)]
        if now >= self.next_status:
            self.next_status = now + period_s * rng.uniform(0.9, 1.1)
            out.append((f"{self.topic_root}/status", self.record(now, "status", rng)))
        return [(topic, msgpack.packb(doc)) for topic, doc in out]

    def position_payload(self, now: float) -> bytes:
        lat, lon = self.position
        return msgpack.packb({"t": int(now * 1000), "lat": round(lat, 7), "lon": round(lon, 7), "acc": 3.0})


class ManholeCover(ComponentSensor):
    """Lies at its installed angle (about 0.5°); now and then someone lifts it (35°)."""

    type = "manhole"
    LIFT_EVERY_S = 4 * 3600.0  # mean time between random lifts of one cover

    def __init__(self, *args, installed_deg: float = 0.5) -> None:
        super().__init__(*args)
        self.installed_deg = installed_deg
        self.lifted_until: float | None = None
        self.lift_deg = 35.0
        self.scheduled: list[tuple[float, float]] = []  # (from, until), wall clock
        self.scripted = False

    def schedule_lift(self, start: float, duration_s: float) -> None:
        """Lift the cover at ``start`` for ``duration_s``; a cover given a schedule is lifted
        only as scheduled."""
        self.scheduled.append((start, start + duration_s))
        self.scheduled.sort()
        self.scripted = True

    def readings(self, rng: random.Random) -> dict:
        if self.lifted_until is not None:
            return {"tilt": self.lift_deg}
        return {"tilt": round(max(0.0, self.installed_deg + rng.gauss(0, 0.05)), 2)}

    def changes(self, now: float, dt: float, rng: random.Random) -> list[tuple[str, str]]:
        if self.lifted_until is not None:
            if now < self.lifted_until:
                return []
            self.lifted_until = None
            return [("recovery", "tilt")]
        if self.scheduled:
            start, until = self.scheduled[0]
            if now < start:
                return []
            self.scheduled.pop(0)
            self.lifted_until = until
        elif not self.scripted and rng.random() < dt / self.LIFT_EVERY_S:
            self.lifted_until = now + rng.uniform(30, 300)
        else:
            return []
        self.lift_deg = round(rng.uniform(34.5, 35.5), 1)
        return [("alarm", "tilt")]


class LitterBin(ComponentSensor):
    """Fills slowly; "full" at 80 %, emptied by the collection round somewhat later."""

    type = "bin"
    FULL_PCT = 80.0

    def __init__(self, *args, fill: float, rate_pct_per_min: float, rng: random.Random) -> None:
        super().__init__(*args)
        self.fill = fill
        self.rate = rate_pct_per_min / 60
        self.empty_at = rng.uniform(88, 100)
        self.full = fill >= self.FULL_PCT

    def readings(self, rng: random.Random) -> dict:
        return {"fill": round(self.fill, 1)}

    def changes(self, now: float, dt: float, rng: random.Random) -> list[tuple[str, str]]:
        self.fill = min(100.0, self.fill + self.rate * dt)
        if self.fill >= self.empty_at:
            self.fill = rng.uniform(0, 5)
            self.empty_at = rng.uniform(88, 100)
            if self.full:
                self.full = False
                return [("recovery", "full")]
        if not self.full and self.fill >= self.FULL_PCT:
            self.full = True
            return [("alarm", "full")]
        return []


class WaterlogGauge(ComponentSensor):
    """Dry road most of the time; a downpour now and then floods it past 15 cm."""

    type = "waterlog"
    RAIN_EVERY_S = 3 * 3600.0
    ALARM_CM, CLEAR_CM = 15.0, 10.0

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.level = 0.0
        self.raining_until = 0.0
        self.rise = self.drain = 0.0  # cm/s
        self.flooded = False

    def readings(self, rng: random.Random) -> dict:
        return {"level": round(self.level, 1)}

    def changes(self, now: float, dt: float, rng: random.Random) -> list[tuple[str, str]]:
        if now < self.raining_until:
            self.level = min(60.0, self.level + self.rise * dt)
        else:
            self.level = max(0.0, self.level - self.drain * dt)
            if rng.random() < dt / self.RAIN_EVERY_S:
                self.raining_until = now + rng.uniform(300, 1200)
                self.rise, self.drain = rng.uniform(1, 3) / 60, rng.uniform(0.5, 1.5) / 60
        if not self.flooded and self.level > self.ALARM_CM:
            self.flooded = True
            return [("alarm", "waterlog")]
        if self.flooded and self.level <= self.CLEAR_CM:
            self.flooded = False
            return [("recovery", "waterlog")]
        return []


# --- vehicles with JT/T 808 terminals ------------------------------------------------


@dataclass
class Vehicle:
    """A vehicle and the identity of its terminal."""

    walker: Walker  # its movement; ``walker.device`` names it when it falls back to MQTT
    phone: str  # the terminal's SIM number, 12 digits
    edition: str  # "2013" or "2019"
    plate: str
    plate_color: int = 2  # yellow: lorries and sanitation trucks
    speeder: bool = False  # speeds now and then, with alarm bit 1 set

    @property
    def device(self) -> str:
        """What the gateway calls it."""
        return device_id(self.phone)


@dataclass
class Fleet:
    collectors: list[Walker]
    vehicles: list[Vehicle]
    sensors: list[ComponentSensor]

    def __len__(self) -> int:
        return len(self.collectors) + len(self.vehicles) + len(self.sensors)


class LinkLost(Exception):
    """The gateway closed the connection, or answered what a terminal cannot go on from."""


_LINK_ERRORS = (OSError, trio.BrokenResourceError, trio.TooSlowError, LinkLost, DecodeError)


class _Link:
    """One TCP connection to the gateway: send a message, wait for the answer to it."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader()
        self.frames: deque[bytes] = deque()

    async def exchange(self, msg_id: int, serial: int, frame: bytes) -> tuple[int, bytes]:
        """Send ``frame``; the result byte of its answer, and the auth code of a 0x8100."""
        await self.stream.send_all(frame)
        with trio.fail_after(ANSWER_TIMEOUT_S):
            while True:
                header, body = await self._receive()
                if header.msg_id == MsgId.REGISTER_RESPONSE and msg_id == MsgId.REGISTER:
                    if len(body) >= 3 and struct.unpack_from(">H", body)[0] == serial:
                        return body[2], bytes(body[3:])
                elif header.msg_id == MsgId.PLATFORM_RESPONSE:
                    answer = decode_terminal_response(body)
                    if (answer.reply_serial, answer.reply_id) == (serial, msg_id):
                        return answer.result, b""
                # else: the late answer to a message given up on, or a platform command
                # this terminal does not implement

    async def _receive(self) -> tuple[Header, bytes]:
        while not self.frames:
            data = await self.stream.receive_some(4096)
            if not data:
                raise LinkLost("the gateway closed the connection")
            for item in self.reader.feed(data):
                if isinstance(item, FramingError):
                    raise item
                self.frames.append(item)
        return split_message(self.frames.popleft())


def _bcd_time(now: float) -> bytes:
    return bytes.fromhex(time.strftime("%y%m%d%H%M%S", time.gmtime(now + GMT8_S)))


class Jt808Terminal:
    """The terminal in one vehicle: connects, logs in, reports; reconnects when dropped."""

    def __init__(self, vehicle: Vehicle, rng: random.Random) -> None:
        self.vehicle = vehicle
        self.rng = rng
        self.version = 1 if vehicle.edition == "2019" else None
        self.serial = 0
        self.auth_code: bytes | None = None
        self.mileage_m = rng.uniform(8_000, 120_000) * 1000
        self.heading = rng.randrange(360)
        self.backlog: deque[bytes] = deque(maxlen=BACKLOG_MAX)  # 0x0200 bodies not delivered
        self.alarm = 0
        self.cruise_mps = vehicle.walker.speed
        self.reports = 0
        self.overspeed_at = rng.randint(5, 15) if vehicle.speeder else None  # report number
        self.overspeed_until = 0
        self.last_step: float | None = None
        self.logins = 0

    @property
    def device(self) -> str:
        return self.vehicle.device

    def _message(self, msg_id: int, body: bytes) -> tuple[int, int, bytes]:
        serial = self.serial
        self.serial = (serial + 1) & 0xFFFF
        return msg_id, serial, encode_message(msg_id, body, self.vehicle.phone, serial, self.version)

    async def run(self, address: tuple[str, int], interval_s: float) -> None:
        await trio.sleep(self.rng.uniform(0, min(interval_s, 2.0)))
        backoff = BACKOFF_MIN_S
        while True:
            try:
                async with await trio.open_tcp_stream(*address) as stream:
                    link = _Link(stream)
                    await self._log_in(link)
                    self.logins += 1
                    backoff = BACKOFF_MIN_S
                    await self._upload_backlog(link)
                    await self._report(link, interval_s)
            except _LINK_ERRORS as exc:
                log.info("terminal %s at %s:%d: %s; trying again in about %.0f s",
                         self.device, *address, str(exc) or type(exc).__name__, backoff)
            await self._record_offline(backoff * self.rng.uniform(0.5, 1.0), interval_s)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _log_in(self, link: _Link) -> None:
        if self.auth_code is not None:
            result, _ = await link.exchange(*self._message(MsgId.AUTHENTICATE, self._authentication()))
            if result == Result.OK:
                return
            self.auth_code = None  # the platform forgot it (a restart with a new key): register again
        result, code = await link.exchange(*self._message(MsgId.REGISTER, self._registration()))
        if result != 0 or not code:
            raise LinkLost(f"registration refused (result {result})")
        self.auth_code = code
        result, _ = await link.exchange(*self._message(MsgId.AUTHENTICATE, self._authentication()))
        if result != Result.OK:
            raise LinkLost(f"authentication refused (result {result})")

    def _registration(self) -> bytes:
        v = self.vehicle
        maker_n, model_n, terminal_n = (11, 30, 30) if self.version is not None else (5, 20, 7)
        district = v.walker.district
        return (struct.pack(">HH", int(district[:2]), int(district[2:])) + b"GWSIM".ljust(maker_n, b"\0")
                + b"GW-T808".ljust(model_n, b"\0") + f"T{v.phone[-6:]}".encode().ljust(terminal_n, b"\0")
                + bytes((v.plate_color,)) + v.plate.encode("gbk"))

    def _authentication(self) -> bytes:
        if self.version is None:
            return self.auth_code
        imei = f"86{self.vehicle.phone[-13:]:0>13}"
        return bytes((len(self.auth_code),)) + self.auth_code + imei.encode() + b"GWSIM 2.1".ljust(20, b"\0")

    def _next_location(self, now: float) -> tuple[bytes, bool]:
        """Drive on to ``now``; the 0x0200 body of where the vehicle is, and whether it is parked."""
        walker, rng = self.vehicle.walker, self.rng
        dt = 0.0 if self.last_step is None else max(0.0, now - self.last_step)
        self.last_step = now
        before = walker.pos
        walker.step(dt, now, rng)
        moved = _distance_m(before, walker.pos)
        if moved > 0.5:
            self.heading = round(_bearing(before, walker.pos)) % 360
        self.mileage_m += moved
        self._speeding()
        parked = walker.parked(now)
        lat, lon = walker.measured(rng)
        speed = 0 if parked else round(walker.speed * 36 * rng.uniform(0.97, 1.03))  # 0.1 km/h
        status = STATUS_FIXED | (0 if parked else STATUS_ACC)
        body = struct.pack(">IIIIhHH", self.alarm, status, round(lat * 1e6), round(lon * 1e6),
                           ALTITUDE_M + rng.randint(-3, 3), speed, self.heading) + _bcd_time(now)
        body += struct.pack(">BBI", EXTRA_MILEAGE, 4, round(self.mileage_m / 100))
        body += struct.pack(">BBBBBB", EXTRA_SIGNAL, 1, rng.randint(16, 31), EXTRA_SATELLITES, 1, rng.randint(7, 18))
        return body, parked

    def _speeding(self) -> None:
        if self.overspeed_at is None:
            return
        self.reports += 1
        walker = self.vehicle.walker
        if not self.alarm & ALARM_OVERSPEED and self.reports >= self.overspeed_at:
            self.alarm |= ALARM_OVERSPEED
            self.overspeed_until = self.reports + self.rng.randint(8, 20)
            walker.speed = self.cruise_mps * 2
        elif self.alarm & ALARM_OVERSPEED and self.reports >= self.overspeed_until:
            self.alarm &= ~ALARM_OVERSPEED
            self.overspeed_at = self.reports + self.rng.randint(100, 400)
            walker.speed = self.cruise_mps

    async def _report(self, link: _Link, interval_s: float) -> None:
        tick = 0
        while True:
            body, parked = self._next_location(time.time())
            if parked and tick % PARKED_REPORT_EVERY:
                result, _ = await link.exchange(*self._message(MsgId.HEARTBEAT, b""))
            else:
                try:
                    result, _ = await link.exchange(*self._message(MsgId.LOCATION, body))
                except _LINK_ERRORS:
                    self.backlog.append(body)
                    raise
                if result != Result.OK:
                    self.backlog.append(body)
            if result != Result.OK:
                raise LinkLost(f"the gateway answered result {result}")
            tick += 1
            await trio.sleep(interval_s)

    async def _upload_backlog(self, link: _Link) -> None:
        while self.backlog:
            items = [self.backlog.popleft() for _ in range(min(BACKFILL_ITEMS, len(self.backlog)))]
            body = struct.pack(">HB", len(items), BatchKind.BACKFILL) + b"".join(struct.pack(">H", len(i)) + i for i in items)
            try:
                result, _ = await link.exchange(*self._message(MsgId.BATCH_LOCATION, body))
            except _LINK_ERRORS:
                self.backlog.extendleft(reversed(items))
                raise
            if result != Result.OK:
                self.backlog.extendleft(reversed(items))
                raise LinkLost(f"the gateway refused a backfill (result {result})")

    async def _record_offline(self, duration_s: float, interval_s: float) -> None:
        deadline = trio.current_time() + duration_s
        while (remaining := deadline - trio.current_time()) > 0:
            await trio.sleep(min(interval_s, remaining))
            self.backlog.append(self._next_location(time.time())[0])


# --- the fleet ------------------------------------------------------------------------


def build_fleet(grid_file: Path, collectors: int, vehicles: int, sensors: int, seed: int = 7) -> Fleet:
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
    district = communities[0][:6]
    people: list[Walker] = []
    behaviours = ["normal"] * 14 + ["linger"] * 2 + ["stray"] * 2 + ["silent"] * 2
    for i in range(collectors):
        community = communities[i % len(communities)]
        cells = sorted(by_community[community])  # west→east, north→south by code
        route = [c for _, c in cells]
        behaviour = behaviours[i % len(behaviours)]
        if behaviour == "stray":
            other = by_community[communities[(i + 5) % len(communities)]]
            route = route + [other[len(other) // 2][1]]
        people.append(Walker(f"c{i + 1:04d}", "collector", community[:6], route, rng.uniform(1.1, 1.5), rng.uniform(3, 8),
                             behaviour, gcj=(i % 4 == 1)))
    south, north = min(p[0] for p in corners), max(p[0] for p in corners)
    west, east = min(p[1] for p in corners), max(p[1] for p in corners)
    fleet_vehicles: list[Vehicle] = []
    for i in range(vehicles):
        # loops set in from the edge of the grids, so every position falls on one
        fy, fx = 0.1 + 0.1 * (i % 3), 0.1 + 0.1 * (i // 3 % 3)
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
    all_grids = [c for community in communities for c in by_community[community]]
    kinds = ["manhole", "bin", "waterlog", "manhole", "bin", "manhole"]
    fleet_sensors: list[ComponentSensor] = []
    for i in range(sensors):
        code, (lat, lon) = all_grids[rng.randrange(len(all_grids))]
        lat += rng.uniform(-25, 25) / M_PER_DEG_LAT
        lon += rng.uniform(-25, 25) / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
        serial, kind = i + 1, kinds[i % len(kinds)]
        where = (code[:6], (lat, lon), rng.uniform(55, 98))
        if kind == "manhole":
            minor = "0101" if serial % 2 else "0102"  # water-supply or sewage cover
            fleet_sensors.append(ManholeCover(f"mh-{serial:04d}", f"{code[:6]}{minor}{serial:06d}", *where,
                                              installed_deg=round(rng.uniform(0.3, 0.8), 2)))
        elif kind == "bin":
            fleet_sensors.append(LitterBin(f"bin-{serial:04d}", f"{code[:6]}0315{serial:06d}", *where,
                                           fill=rng.uniform(5, 78), rate_pct_per_min=rng.uniform(0.3, 1.5), rng=rng))
        else:
            fleet_sensors.append(WaterlogGauge(f"wl-{serial:04d}", f"{code[:6]}0199{serial:06d}", *where))
    return Fleet(people, fleet_vehicles, fleet_sensors)


async def run_fleet(params: BrokerParams, fleet: Fleet, interval_s: float, jt808: tuple[str, int] | None, *,
                    connections: int = 0, seed: int = 11, lift: tuple[float, float] | None = None,
                    sensor_period_s: float = SENSOR_PERIOD_S, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run the fleet forever.

    ``jt808``: (host, port) of the JT/T 808 gateway the vehicles' terminals connect to;
    None: vehicles publish handset payloads over MQTT. ``connections``: how many MQTT
    connections to share between the MQTT devices (0: one per device, as real handsets
    have). ``lift``: (after_s, for_s): the first manhole cover is lifted that many seconds
    after the start, for that long, and otherwise stays down.
    """
    rng = random.Random(seed)
    handsets = fleet.collectors + ([] if jt808 is not None else [v.walker for v in fleet.vehicles])
    mqtt_devices = len(handsets) + len(fleet.sensors)
    n_conn = min(connections or mqtt_devices, mqtt_devices)
    clients = [BrokerClient(BrokerParams(params.host, params.port, params.username, params.password,
                                         f"{params.client_id}-{i}", params.keepalive_s)) for i in range(n_conn)]
    start = time.time()
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
                nursery.start_soon(Jt808Terminal(vehicle, random.Random(seed * 1000 + i)).run, jt808, interval_s)
        for j, sensor in enumerate(fleet.sensors):
            _publish(clients[(len(handsets) + j) % n_conn], f"{sensor.topic_root}/pos", sensor.position_payload(start), qos=1)
        task_status.started()
        last = start
        while True:
            now = time.time()
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
                        batch, w.backlog = w.backlog + [fix], []
                        _publish(client, w.topic, msgpack.packb(batch), qos=1)
                        continue
                    if rng.random() < 0.004:
                        w.silent_until = now + rng.uniform(60, 300)
                _publish(client, w.topic, msgpack.packb(fix))
            for j, sensor in enumerate(fleet.sensors):
                client = clients[(len(handsets) + j) % n_conn]
                for topic, payload in sensor.tick(now, rng, sensor_period_s):
                    _publish(client, topic, payload, qos=1)
            await trio.sleep(interval_s)


def _publish(client: BrokerClient, topic: str, payload: bytes, qos: int = 0) -> None:
    try:
        client.publish(topic, payload, qos=qos)
    except trio.BrokenResourceError:
        pass  # reconnecting: a real handset would buffer; the simulator just skips a beat
