"""Alarm rules for component sensors: a pure state machine driven by event time.

One :class:`SensorState` per sensor. :func:`update` takes the sensor's next record;
:func:`advance` tells the machine that event time has reached ``now_ms`` with nothing new
heard (a watchdog calls it, so a tilt with no recovery message is still raised once its
debounce is over). Both return the new state and the :class:`ComponentAlarm` events to
deliver, keyed by ``(device, kind)``: a consumer keeps one row per key and overwrites it.

Readings decide: when a record carries the reading a rule is about, the rule judges it and
the sensor's own alarm/recovery verdict is not needed. A verdict counts where no reading
backs it (a cover that reports only "tilt alarm", a gas alarm with no threshold set here),
and for the component's own alarm codes.

Flapping: a condition that changes state ``flap_toggles`` times within ``flap_window_ms``
raises one ``flapping`` alarm for the sensor and is not reported again until it has been
quiet for ``flap_quiet_ms``; then its settled state is reported if it differs from what
consumers last saw, and ``flapping`` clears when no condition of the sensor flaps.

Restarts: :meth:`SensorState.to_dict` and :meth:`SensorState.from_dict` turn a state into
JSON and back, exactly (a restored state is equal to the one saved, and the same records
give the same events). :func:`resumed` rebuilds a state from what consumers were told
alone (the alarm outbox), for a sensor whose saved state is missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from protocols.model import COMPONENT_CODE, DEVICE_ID
from protocols.sensor import MessageKind, SensorReading

TILT = "tilt"
WATER = "water"
GAS = "gas"
SMOKE = "smoke"
FULL = "full"  # litter bin
WATERLOG = "waterlog"
LOW_BATTERY = "low_battery"
FLAPPING = "flapping"
# Conditions a rule here judges from a reading; other codes are taken as the sensor says.
_RULED = frozenset({TILT, WATER, GAS, SMOKE, FULL, WATERLOG, LOW_BATTERY})
STATE_VERSION = 1  # of SensorState.to_dict(); from_dict refuses any other


@dataclass(frozen=True, slots=True)
class ComponentAlarm:
    """An alarm raised (``raised=True``) or cleared on one component.

    ``t_ms`` is when the condition began or ended in event time (a debounced tilt is
    dated from its onset). ``value`` is the reading behind it, if any.
    """

    device: str
    component: str
    kind: str
    t_ms: int
    raised: bool
    value: float | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if not DEVICE_ID.match(self.device):
            raise ValueError(f"bad device id {self.device!r}")
        if not COMPONENT_CODE.match(self.component):
            raise ValueError(f"bad component code {self.component!r}")
        if not self.kind:
            raise ValueError("an alarm needs a kind")

    @property
    def key(self) -> tuple[str, str]:
        return (self.device, self.kind)


@dataclass(frozen=True, slots=True)
class SensorRuleParams:
    """Thresholds for one sensor (or one class of sensors); defaults from the domain brief.

    ``*_clear_*`` values give each threshold a hysteresis band so a reading hovering at
    the threshold does not toggle the alarm. ``water_alarm_cm`` and ``gas_alarm_ppm`` are
    off by default: the cover's own alarm messages decide.
    """

    installed_tilt_deg: float = 0.0
    tilt_threshold_deg: float = 10.0
    tilt_always_deg: float = 90.0  # beyond this a cover is off whatever its installed angle
    tilt_debounce_ms: int = 2_000  # shorter tilts are passing traffic
    bin_full_pct: float = 80.0  # alarm at < 20 % free
    bin_clear_pct: float = 70.0
    # A road counts as waterlogged from about 15 cm of standing water (GB 51222 uses 15 cm
    # in one lane as its limit); set the city's own figure.
    waterlog_alarm_cm: float = 15.0
    waterlog_clear_cm: float = 10.0
    water_alarm_cm: float | None = None
    water_clear_cm: float | None = None
    gas_alarm_ppm: float | None = None
    gas_clear_ppm: float | None = None
    low_battery_pct: float = 20.0
    battery_clear_pct: float = 30.0
    flap_toggles: int = 6
    flap_window_ms: int = 10 * 60_000
    flap_quiet_ms: int = 15 * 60_000

    def __post_init__(self) -> None:
        if not 0 < self.tilt_threshold_deg <= self.tilt_always_deg <= 180:
            raise ValueError("need 0 < tilt_threshold_deg <= tilt_always_deg <= 180")
        if self.tilt_debounce_ms < 0:
            raise ValueError("tilt_debounce_ms must not be negative")
        pairs = [
            ("bin", self.bin_clear_pct, self.bin_full_pct),
            ("waterlog", self.waterlog_clear_cm, self.waterlog_alarm_cm),
            ("battery", self.low_battery_pct, self.battery_clear_pct),
        ]
        optional = [("water", self.water_clear_cm, self.water_alarm_cm), ("gas", self.gas_clear_ppm, self.gas_alarm_ppm)]
        for name, clear, alarm in optional:
            if alarm is not None:
                pairs.append((name, alarm if clear is None else clear, alarm))
        for name, low, high in pairs:
            if low > high:
                raise ValueError(f"{name}: the clearing threshold is on the wrong side of the alarm threshold")
        if self.flap_toggles < 2 or self.flap_window_ms <= 0 or self.flap_quiet_ms <= 0:
            raise ValueError("flap_toggles must be at least 2 and the flap periods positive")


@dataclass(frozen=True, slots=True)
class Condition:
    """Where one alarm condition of one sensor stands."""

    active: bool = False  # as the rules judge it now
    emitted: bool = False  # as consumers were last told
    value: float | None = None  # latest reading behind it
    pending_ms: int | None = None  # tilt over the threshold since, not yet debounced
    pending_value: float | None = None
    toggles: tuple[int, ...] = ()  # recent changes of ``active``, event time
    flapping: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active, "emitted": self.emitted, "value": self.value, "pending_ms": self.pending_ms,
            "pending_value": self.pending_value, "toggles": list(self.toggles), "flapping": self.flapping,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        toggles = data["toggles"]
        if not isinstance(toggles, list):
            raise ValueError("toggles must be a list")
        return cls(
            active=_bool(data["active"]), emitted=_bool(data["emitted"]), value=_number(data["value"]),
            pending_ms=_int(data["pending_ms"]), pending_value=_number(data["pending_value"]),
            toggles=tuple(_int_required(t) for t in toggles), flapping=_bool(data["flapping"]),
        )


@dataclass(frozen=True, slots=True)
class SensorState:
    """Everything the rules remember about one sensor. Never mutated: each call returns a new one."""

    device: str | None = None
    component: str | None = None
    last_t_ms: int | None = None
    conditions: Mapping[str, Condition] = field(default_factory=dict)
    flapping_raised: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-able data; :meth:`from_dict` rebuilds an equal state.

        Conditions are a list of pairs, not an object: their order decides the order of
        events of equal time, and a JSON object's key order does not survive every store
        (PostgreSQL's ``jsonb`` sorts keys).
        """
        return {
            "version": STATE_VERSION, "device": self.device, "component": self.component, "last_t_ms": self.last_t_ms,
            "conditions": [[kind, c.to_dict()] for kind, c in self.conditions.items()],
            "flapping_raised": self.flapping_raised,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SensorState:
        """Raises ``ValueError`` on data :meth:`to_dict` of this version would not give."""
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sensor state: {str(data)[:80]}")
        try:
            conditions = {}
            for kind, c in data["conditions"]:
                if not isinstance(kind, str) or not kind:
                    raise ValueError(f"bad condition {kind!r}")
                conditions[kind] = Condition.from_dict(c)
            device, component = data["device"], data["component"]
            if device is not None and not (isinstance(device, str) and DEVICE_ID.match(device)):
                raise ValueError(f"bad device id {device!r}")
            if component is not None and not (isinstance(component, str) and COMPONENT_CODE.match(component)):
                raise ValueError(f"bad component code {component!r}")
            return cls(device, component, _int(data["last_t_ms"]), conditions, _bool(data["flapping_raised"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed sensor state: {exc!r}") from exc


def resumed(device: str, component: str, open_alarms: Mapping[str, float | None], last_t_ms: int | None) -> SensorState:
    """The state of a sensor known only by what consumers were told: ``open_alarms`` maps
    each kind raised and not cleared to the value it was raised with.

    Each is active and emitted, so the sensor's next recovery clears it; ``flapping``
    open means the sensor was flapping, and it clears once the watchdog sees no condition
    flap. What the outbox does not hold (a tilt being debounced, recent toggles) starts
    afresh.
    """
    conditions = {kind: Condition(active=True, emitted=True, value=value) for kind, value in open_alarms.items() if kind != FLAPPING}
    return SensorState(device, component, last_t_ms, conditions, FLAPPING in open_alarms)


def _bool(value: object) -> bool:
    if type(value) is not bool:
        raise ValueError(f"expected a boolean, got {value!r}")
    return value


def _int(value: object) -> int | None:
    return None if value is None else _int_required(value)


def _int_required(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _number(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def alarm_limit(kind: str, p: SensorRuleParams) -> float | None:
    """The limit an alarm of ``kind`` is raised past, in the unit of its value (a tilt's is
    the installed angle plus the threshold); None for a condition the sensor judges itself."""
    limits: dict[str, float | None] = {
        TILT: p.installed_tilt_deg + p.tilt_threshold_deg,
        FULL: p.bin_full_pct,
        WATERLOG: p.waterlog_alarm_cm,
        WATER: p.water_alarm_cm,
        GAS: p.gas_alarm_ppm,
        LOW_BATTERY: p.low_battery_pct,
        FLAPPING: float(p.flap_toggles),
    }
    return limits.get(kind)


def _band(alarm: bool, clear: bool) -> bool | None:
    """True past the alarm threshold, False past the clearing one, None in between (hold)."""
    return True if alarm else False if clear else None


def _tilt_detail(tilt: float | None, p: SensorRuleParams) -> str:
    if tilt is None:
        return "tilt reported by the sensor"
    return f"tilt {tilt:g}° against installed {p.installed_tilt_deg:g}° (threshold {p.tilt_threshold_deg:g}°)"


def _observations(r: SensorReading, p: SensorRuleParams) -> Iterator[tuple[str, bool | None, float | None, str]]:
    """(condition, judged state or None to hold, value, detail) for each condition the record speaks to."""
    code = r.alarm
    verdict = {MessageKind.ALARM: True, MessageKind.RECOVERY: False}.get(r.kind)
    said = "reported by the sensor"

    if r.tilt is not None:
        over = abs(r.tilt - p.installed_tilt_deg) > p.tilt_threshold_deg or r.tilt > p.tilt_always_deg
        yield TILT, over, r.tilt, _tilt_detail(r.tilt, p)
    elif code == TILT:
        yield TILT, verdict, None, _tilt_detail(None, p)

    if r.fill is not None:
        yield FULL, _band(r.fill >= p.bin_full_pct, r.fill <= p.bin_clear_pct), r.fill, f"bin {r.fill:g}% full"
    elif code == FULL:
        yield FULL, verdict, None, f"bin full {said}"

    if r.level is not None:
        judged = _band(r.level > p.waterlog_alarm_cm, r.level <= p.waterlog_clear_cm)
        yield WATERLOG, judged, r.level, f"standing water {r.level:g} cm"
    elif code == WATERLOG:
        yield WATERLOG, verdict, None, f"waterlogging {said}"

    if r.water is not None and p.water_alarm_cm is not None:
        clear = p.water_alarm_cm if p.water_clear_cm is None else p.water_clear_cm
        yield WATER, _band(r.water > p.water_alarm_cm, r.water <= clear), r.water, f"water {r.water:g} cm in the well"
    elif code == WATER:
        yield WATER, verdict, r.water, f"water in the well {said}"

    if r.gas is not None and p.gas_alarm_ppm is not None:
        clear = p.gas_alarm_ppm if p.gas_clear_ppm is None else p.gas_clear_ppm
        yield GAS, _band(r.gas > p.gas_alarm_ppm, r.gas <= clear), r.gas, f"gas {r.gas:g} ppm"
    elif code == GAS:
        yield GAS, verdict, r.gas, f"gas {said}"

    if r.smoke is not None:
        yield SMOKE, r.smoke, None, "smoke detected" if r.smoke else "no smoke"
    elif code == SMOKE:
        yield SMOKE, verdict, None, f"smoke {said}"

    if r.bat is not None:
        judged = _band(r.bat < p.low_battery_pct, r.bat >= p.battery_clear_pct)
        yield LOW_BATTERY, judged, r.bat, f"battery {r.bat:g}%"
    elif r.kind is MessageKind.LOW_BATTERY:
        yield LOW_BATTERY, True, None, f"low battery {said}"
    elif code == LOW_BATTERY:
        yield LOW_BATTERY, verdict, None, f"low battery {said}"

    if code is not None and code not in _RULED:
        yield code, verdict, None, f"{code} {said}"


class _Step:
    """The working copy of a state during one call; turned back into a frozen state at the end."""

    def __init__(self, state: SensorState, device: str, component: str, params: SensorRuleParams) -> None:
        self.state = state
        self.device = device
        self.component = component
        self.p = params
        self.conditions = dict(state.conditions)
        self.flapping_raised = state.flapping_raised
        self.events: list[ComponentAlarm] = []

    def emit(self, kind: str, t_ms: int, raised: bool, value: float | None, detail: str) -> None:
        self.events.append(ComponentAlarm(self.device, self.component, kind, t_ms, raised, value, detail))

    def change(self, kind: str, c: Condition, active: bool, t_ms: int, value: float | None, detail: str) -> Condition:
        toggles = (*(x for x in c.toggles if x > t_ms - self.p.flap_window_ms), t_ms)
        c = replace(c, active=active, toggles=toggles)
        if c.flapping:
            return c
        if len(toggles) >= self.p.flap_toggles:
            if not self.flapping_raised:
                detail = f"{kind} changed {len(toggles)} times within {self.p.flap_window_ms / 60_000:g} min"
                self.emit(FLAPPING, t_ms, True, float(len(toggles)), detail)
                self.flapping_raised = True
            return replace(c, flapping=True)
        if active != c.emitted:
            self.emit(kind, t_ms, active, value, detail)
            c = replace(c, emitted=active)
        return c

    def advance(self, now_ms: int) -> None:
        settled_at = None
        for kind, c in list(self.conditions.items()):
            if c.pending_ms is not None and now_ms - c.pending_ms >= self.p.tilt_debounce_ms:
                onset, value = c.pending_ms, c.pending_value
                c = replace(c, pending_ms=None, pending_value=None)
                if not c.active:
                    c = self.change(kind, c, True, onset, value, _tilt_detail(value, self.p))
            if c.flapping and now_ms - c.toggles[-1] >= self.p.flap_quiet_ms:
                quiet_at = c.toggles[-1] + self.p.flap_quiet_ms
                c = replace(c, flapping=False, toggles=())
                if c.active != c.emitted:
                    self.emit(kind, quiet_at, c.active, c.value, f"{kind} settled after flapping")
                    c = replace(c, emitted=c.active)
                settled_at = quiet_at if settled_at is None else max(settled_at, quiet_at)
            self.conditions[kind] = c
        if self.flapping_raised and not any(c.flapping for c in self.conditions.values()):
            self.emit(FLAPPING, settled_at if settled_at is not None else now_ms, False, None, "quiet again")
            self.flapping_raised = False

    def observe(self, kind: str, judged: bool | None, value: float | None, detail: str, t_ms: int) -> None:
        c = self.conditions.get(kind, Condition())
        if value is not None:
            c = replace(c, value=value)
        if kind == TILT and self.p.tilt_debounce_ms > 0 and judged is not None:
            if judged and not c.active:
                if c.pending_ms is None:
                    c = replace(c, pending_ms=t_ms, pending_value=value)
                self.conditions[kind] = c
                return
            if not judged:
                c = replace(c, pending_ms=None, pending_value=None)
        if judged is not None and judged != c.active:
            c = self.change(kind, c, judged, t_ms, value, detail)
        self.conditions[kind] = c

    def finish(self, last_t_ms: int | None) -> tuple[SensorState, list[ComponentAlarm]]:
        self.events.sort(key=lambda e: e.t_ms)
        state = SensorState(self.device, self.component, last_t_ms, self.conditions, self.flapping_raised)
        return state, self.events


def update(
    state: SensorState, reading: SensorReading, params: SensorRuleParams
) -> tuple[SensorState, list[ComponentAlarm]]:
    """Apply one record of the sensor ``state`` belongs to.

    A record older than one already applied is superseded by it and changes nothing.
    """
    if state.device is not None and reading.device != state.device:
        raise ValueError(f"state of {state.device!r} given a record of {reading.device!r}")
    if state.last_t_ms is not None and reading.t_ms < state.last_t_ms:
        return state, []
    step = _Step(state, reading.device, reading.component, params)
    step.advance(reading.t_ms)
    for kind, judged, value, detail in _observations(reading, params):
        step.observe(kind, judged, value, detail, reading.t_ms)
    return step.finish(reading.t_ms)


def advance(state: SensorState, now_ms: int, params: SensorRuleParams) -> tuple[SensorState, list[ComponentAlarm]]:
    """Let event time reach ``now_ms`` with no new record: debounced tilts are raised and
    quiet flapping conditions settle.

    ``now_ms`` should trail the clock by the delivery latency the watchdog allows, so a
    recovery message still in flight is not overtaken.
    """
    if state.device is None or state.component is None:
        return state, []
    step = _Step(state, state.device, state.component, params)
    step.advance(now_ms)
    return step.finish(state.last_t_ms)


def silent_sensors(last_seen: Mapping[str, int], now_ms: int, timeout_ms: int) -> list[str]:
    """Devices last heard from more than ``timeout_ms`` before ``now_ms``, longest silent first."""
    if timeout_ms <= 0:
        raise ValueError("timeout_ms must be positive")
    silent = sorted((t, device) for device, t in last_seen.items() if now_ms - t > timeout_ms)
    return [device for _, device in silent]
