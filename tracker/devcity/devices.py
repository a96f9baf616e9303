"""The simulated devices themselves: collectors and vehicles moving along their routes,
collectors reporting problems and walking to the cases they are sent to verify, and
component sensors on manhole covers, litter bins and waterlogging gauges."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import msgpack

from protocols.coords import M_PER_DEG, distance_m, wgs84_to_gcj02
from protocols.jt808.messages import device_id

SENSOR_PERIOD_S = 60.0  # a sensor's status report doubles as its heartbeat
REPORT_EVERY_S = 3600.0  # a collector's mean time between problem reports: the demo's 48 make one a minute or so
ON_SITE_S = (20.0, 60.0)  # how long a collector looks at a case before answering
NOT_DONE_P = 0.2  # the share of verifications that find the problem still there

# problems a collector finds on its round: categories of the demo's taxonomy
# (tracker/devcity/taxonomy.toml), each with what a collector would write
PROBLEMS: list[tuple[str, tuple[str, ...]]] = [
    ("E0102", ("路边堆放生活垃圾，未及时清运", "绿化带内有暴露垃圾", "小区门口垃圾散落")),
    ("E0104", ("路面有油污和泥土，道路不洁", "人行道上落叶和纸屑未清扫", "施工车辆带泥上路，路面脏污")),
    ("E0201", ("电线杆上张贴非法小广告", "墙面喷涂办证电话小广告", "公交站亭贴满小广告")),
    ("E0501", ("路口有无照经营游商摆摊", "流动商贩推车占道售卖水果", "人行道上有无照烧烤摊点")),
]
VERIFY_NOTES = {"done": ("已处理完毕，现场恢复正常", "核查属实，问题已解决"),
                "not_done": ("问题仍然存在，未处理到位", "现场复查，仍未整改")}


@dataclass
class Errand:
    """A verification task being carried out: walking to the case, then looking at it."""

    case: int
    target: tuple[float, float]  # WGS-84 (lat, lon), as the task gives it
    on_site_until: float | None = None  # set on arrival: when the verdict goes out


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
    errand: Errand | None = None  # a verification task: it leaves its loop for it
    reports: int = 0
    on_site_s: tuple[float, float] = ON_SITE_S
    not_done_p: float = NOT_DONE_P

    def send_to(self, case: int, lat: float, lon: float) -> None:
        """A verification task: walk to the case, leaving the patrol loop (a newer task
        replaces one not yet answered, as the service's does)."""
        self.errand = Errand(case, (lat, lon))
        self.paused_until = 0.0  # a lingering collector gets up and goes

    def step(self, dt: float, now: float, rng: random.Random) -> None:
        if self.errand is not None:
            self._walk_errand(dt, now, rng)
            return
        self._patrol(dt, now, rng)

    def _walk_errand(self, dt: float, now: float, rng: random.Random) -> None:
        errand = self.errand
        assert errand is not None
        if errand.on_site_until is None:
            d = distance_m(*self.pos, *errand.target)
            step = self.speed * dt
            if d <= step:
                self.pos = errand.target
                errand.on_site_until = now + rng.uniform(*self.on_site_s)
            else:
                f = step / d
                self.pos = (self.pos[0] + (errand.target[0] - self.pos[0]) * f,
                            self.pos[1] + (errand.target[1] - self.pos[1]) * f)
        self.battery = max(5.0, self.battery - dt * 0.0008)

    def parked(self, now: float) -> bool:
        if self.errand is not None:
            return self.errand.on_site_until is not None
        return now < self.paused_until

    def due_reports(self, now: float, rng: random.Random, every_s: float, dt: float) -> list[dict]:
        """The report payloads to publish now: the verification once the look on site is
        over (then back to the loop, from where it stands), and a problem found on the
        way about once every ``every_s`` (0: never)."""
        out: list[dict] = []
        errand = self.errand
        if errand is not None and errand.on_site_until is not None and now >= errand.on_site_until:
            self.errand = None
            result = "not_done" if rng.random() < self.not_done_p else "done"
            doc = self._report(now, rng)
            doc["verify"] = {"case": errand.case, "result": result}
            doc["note"] = rng.choice(VERIFY_NOTES[result])
            out.append(doc)
        if errand is None and every_s > 0 and rng.random() < dt / every_s:
            category, descriptions = rng.choice(PROBLEMS)
            doc = self._report(now, rng)
            doc["cat"], doc["desc"] = category, rng.choice(descriptions)
            out.append(doc)
        return out

    def _report(self, now: float, rng: random.Random) -> dict[str, Any]:
        self.reports += 1
        lat, lon = self.measured(rng)
        doc: dict[str, Any] = {"id": f"{self.device}-{int(now)}-{self.reports}", "t": int(now * 1000),
                               "lat": round(lat, 7), "lon": round(lon, 7), "acc": round(self.noise_m + 3, 1)}
        if self.gcj:
            doc["lat"], doc["lon"] = (round(v, 7) for v in wgs84_to_gcj02(doc["lat"], doc["lon"]))
            doc["crs"] = "gcj02"
        return doc

    @property
    def report_topic(self) -> str:
        return f"gw/v1/{self.district}/{self.device_class}/{self.device}/report"

    @property
    def cmd_topic(self) -> str:
        return f"gw/v1/{self.district}/{self.device_class}/{self.device}/cmd"

    def __post_init__(self) -> None:
        self.pos = self.route[0]

    def _patrol(self, dt: float, now: float, rng: random.Random) -> None:
        if now < self.paused_until:
            return
        if self.behaviour == "linger" and rng.random() < 0.01:
            self.paused_until = now + rng.uniform(120, 600)
            return
        remaining = self.speed * dt
        while remaining > 0:
            target = self.route[(self.leg + 1) % len(self.route)]
            d = distance_m(*self.pos, *target)
            if d <= remaining:
                self.pos, remaining = target, remaining - d
                self.leg = (self.leg + 1) % len(self.route)
            else:
                f = remaining / d
                self.pos = (self.pos[0] + (target[0] - self.pos[0]) * f, self.pos[1] + (target[1] - self.pos[1]) * f)
                remaining = 0
        self.battery = max(5.0, self.battery - dt * 0.0008)

    def measured(self, rng: random.Random) -> tuple[float, float]:
        """The position as a GNSS receiver would give it: WGS-84 with noise."""
        lat, lon = self.pos
        lat += rng.gauss(0, self.noise_m) / M_PER_DEG
        lon += rng.gauss(0, self.noise_m) / (M_PER_DEG * math.cos(math.radians(lat)))
        return lat, lon

    def fix(self, t_ms: int, rng: random.Random) -> dict:
        lat, lon = self.measured(rng)
        self.seq += 1
        doc: dict[str, Any]  # a handset payload: numbers, and a string once the datum is named
        doc = {"t": t_ms, "lat": round(lat, 7), "lon": round(lon, 7), "acc": round(abs(rng.gauss(self.noise_m, 2)) + 3, 1),
               "spd": round(0.0 if self.parked(t_ms / 1000) else self.speed, 2), "bat": round(self.battery, 1), "seq": self.seq}
        if self.gcj:
            doc["lat"], doc["lon"] = (round(v, 7) for v in wgs84_to_gcj02(doc["lat"], doc["lon"]))
            doc["crs"] = "gcj02"
        return doc

    @property
    def topic(self) -> str:
        return f"gw/v1/{self.district}/{self.device_class}/{self.device}/pos"


def bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return math.degrees(math.atan2(dx, dy)) % 360


def centroid(ring: list[list[float]]) -> tuple[float, float]:
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
