"""Decode component sensor payloads (spec: docs/sensor-protocol.md, "Sensor payload v1").

A payload is one record or an array of records, encoded as msgpack or JSON; the encoding is
told by the first non-blank byte (``{`` or ``[`` is JSON, anything else msgpack). Each
record names its device and the 16-digit component it watches. A batch keeps the good
records and reports each bad one on its own: one bad record never costs the others.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field


from protocols.errors import DecodeError
from protocols.payload import each_record, epoch_ms, load, number
from protocols.model import COMPONENT_CODE, DEVICE_ID, DeviceRef

ALARM_CODE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PROTOCOL_VERSION = 1


class MessageKind(enum.StrEnum):
    STATUS = "status"  # periodic report, doubles as the heartbeat
    ALARM = "alarm"  # sent at once when the sensor sees an alarm condition
    RECOVERY = "recovery"  # sent at once when that condition ends
    LOW_BATTERY = "low_battery"


class SensorType(enum.StrEnum):
    MANHOLE = "manhole"  # smart manhole cover
    BIN = "bin"  # litter-bin fill level
    WATERLOG = "waterlog"  # road waterlogging depth
    GENERIC = "generic"  # any other component that only raises alarms


# Numeric readings: name → (lowest, highest) accepted value.
READING_RANGES: dict[str, tuple[float, float]] = {
    "tilt": (0.0, 180.0),  # °, cover plane against the horizontal
    "water": (0.0, 10_000.0),  # cm, water surface above the well floor
    "gas": (0.0, 1_000_000.0),  # ppm
    "bat": (0.0, 100.0),  # %
    "fill": (0.0, 100.0),  # %, 100 = full
    "level": (0.0, 10_000.0),  # cm, standing water above the road surface
}
# What each type of sensor may report (``smoke`` is a boolean, ``flags`` an opaque integer).
READINGS_BY_TYPE: dict[SensorType, frozenset[str]] = {
    SensorType.MANHOLE: frozenset({"tilt", "water", "gas", "smoke", "bat", "flags"}),
    SensorType.BIN: frozenset({"fill", "bat", "flags"}),
    SensorType.WATERLOG: frozenset({"level", "bat", "flags"}),
    SensorType.GENERIC: frozenset({"bat", "flags"}),
}
_READINGS = ("tilt", "water", "gas", "smoke", "bat", "fill", "level", "flags")


@dataclass(frozen=True, slots=True)
class SensorReading:
    """One record from one sensor: what it measured at ``t_ms`` and why it reported.

    ``alarm`` is the condition an ``alarm`` or ``recovery`` record is about (``tilt``,
    ``water``, ``gas``, ``smoke``, ``full``, ``waterlog``, ``low_battery`` or a code of the
    component's own); it is ``None`` on the other kinds. Readings the sensor did not send
    are ``None``. Invalid values raise :class:`DecodeError` (a ``ValueError``).
    """

    device: str
    component: str
    t_ms: int
    rx_ms: int
    kind: MessageKind
    sensor: SensorType
    alarm: str | None = None
    tilt: float | None = None
    water: float | None = None
    gas: float | None = None
    smoke: bool | None = None
    bat: float | None = None
    fill: float | None = None
    level: float | None = None
    flags: int | None = None
    seq: int | None = None

    def __post_init__(self) -> None:
        if type(self.device) is not str or not DEVICE_ID.match(self.device):
            raise DecodeError("bad_device", f"bad device id {str(self.device)[:80]!r}")
        if type(self.component) is not str or not COMPONENT_CODE.match(self.component):
            raise DecodeError("bad_component", f"component code must be 16 digits, got {str(self.component)[:80]!r}")
        if not isinstance(self.kind, MessageKind) or not isinstance(self.sensor, SensorType):
            raise DecodeError("bad_value", "kind and sensor must be a MessageKind and a SensorType")
        if self.kind in (MessageKind.ALARM, MessageKind.RECOVERY):
            if self.alarm is None:
                raise DecodeError("missing_field", f"a {self.kind} record must name its 'alarm'")
            if type(self.alarm) is not str or not ALARM_CODE.match(self.alarm):
                raise DecodeError("bad_value", f"bad alarm code {str(self.alarm)[:40]!r}")
        elif self.alarm is not None:
            raise DecodeError("bad_field", f"a {self.kind} record carries no 'alarm'")
        if self.smoke is not None and type(self.smoke) is not bool:
            raise DecodeError("bad_type", "smoke must be a boolean")
        allowed = READINGS_BY_TYPE[self.sensor]
        for name in _READINGS:
            value = getattr(self, name)
            if value is None:
                continue
            if name not in allowed:
                raise DecodeError("bad_field", f"a {self.sensor} sensor does not report {name!r}")
            bounds = READING_RANGES.get(name)
            if bounds is not None and not bounds[0] <= value <= bounds[1]:
                raise DecodeError("bad_value", f"{name} {value!r} outside {bounds[0]:g}..{bounds[1]:g}")
        if self.flags is not None and not 0 <= self.flags < 2**32:
            raise DecodeError("bad_value", f"flags {self.flags!r} is not a 32-bit field")
        if self.seq is not None and not 0 <= self.seq < 2**63:
            raise DecodeError("bad_value", f"seq {self.seq!r} out of range")


@dataclass(frozen=True, slots=True)
class SensorLimits:
    max_payload_bytes: int = 16384
    max_batch: int = 100
    max_future_ms: int = 5 * 60_000  # sensor clocks drift; beyond this the record is refused
    # NB-IoT and LoRaWAN sensors buffer while out of coverage; older than this is refused.
    max_age_ms: int = 7 * 86_400_000


@dataclass(slots=True)
class SensorBatch:
    """What one payload yielded: the good records and one error per bad record."""

    readings: list[SensorReading] = field(default_factory=list)
    rejected: list[DecodeError] = field(default_factory=list)


def _load(payload: bytes, limits: SensorLimits) -> object:
    return load(payload, limits.max_payload_bytes)


def _integer(record: dict, key: str) -> int | None:
    value = record.get(key)
    if value is not None and type(value) is not int:
        raise DecodeError("bad_type", f"{key!r} must be an integer, got {type(value).__name__}")
    return value


def _string(record: dict, key: str, required: bool) -> str | None:
    value = record.get(key)
    if value is None:
        if required:
            raise DecodeError("missing_field", f"missing {key!r}")
        return None
    if type(value) is not str or len(value) > 64:
        raise DecodeError("bad_type", f"{key!r} must be a short string")
    return value


def _enum(record: dict, key: str, enum_type: type[enum.StrEnum]):
    value = _string(record, key, required=True)
    try:
        return enum_type(value)
    except ValueError:
        raise DecodeError("bad_value", f"unknown {key} {value!r}") from None


def _record(item: object, ref: DeviceRef | None, rx_ms: int, limits: SensorLimits) -> SensorReading:
    if type(item) is not dict:
        raise DecodeError("not_a_map", f"a record must be a map, got {type(item).__name__}")
    version = item.get("v", PROTOCOL_VERSION)
    if type(version) is not int or version != PROTOCOL_VERSION:
        raise DecodeError("bad_version", f"unsupported version {str(version)[:20]!r}")
    device = _string(item, "dev", required=True)
    if ref is not None and device != ref.device:
        raise DecodeError("device_mismatch", f"record of {device!r} sent by {ref.device!r}")
    return SensorReading(
        device,
        _string(item, "comp", required=True),
        epoch_ms(item, rx_ms, limits.max_future_ms, limits.max_age_ms, "record"),
        rx_ms,
        _enum(item, "kind", MessageKind),
        _enum(item, "type", SensorType),
        alarm=_string(item, "alarm", required=False),
        tilt=number(item, "tilt"),
        water=number(item, "water"),
        gas=number(item, "gas"),
        smoke=item.get("smoke"),
        bat=number(item, "bat"),
        fill=number(item, "fill"),
        level=number(item, "level"),
        flags=_integer(item, "flags"),
        seq=_integer(item, "seq"),
    )


def decode_sensor(
    payload: bytes, ref: DeviceRef | None, rx_ms: int, limits: SensorLimits = SensorLimits()
) -> SensorBatch:
    """Decode one sensor payload. Raises DecodeError only when nothing in it is usable.

    ``ref`` is the sender as the transport established it; when given, every record must
    name that device. ``None`` is for a trusted bridge that forwards many devices (an IoT
    platform's push subscription).
    """
    readings, rejected = each_record(_load(payload, limits), lambda item: _record(item, ref, rx_ms, limits), limits.max_batch, "records")
    return SensorBatch(readings, rejected)
