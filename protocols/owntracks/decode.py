"""Decode what a stock OwnTracks app publishes, and encode what we send back to it.

Format: the OwnTracks booklet, "JSON" (owntracks.org/booklet/tech/json). In MQTT mode the
app publishes on ``owntracks/{user}/{device}`` (``location``, ``lwt``) and on sub-topics
(``/event``: ``transition``, ``/status``: ``status``, ...). The ``_type`` member says what a
payload is; the topic only says who sent it. Types this service has no use for
(``card``, ``waypoint``, ``steps``, ``encrypted``...) and types nobody documented come back
as :class:`IgnoredMessage` for the caller to count: the app is entitled to send them.

Positions come from the phone's own location API (Android ``Location``, iOS Core
Location), which report WGS-84 even inside China.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, overload

from protocols.errors import DecodeError
from protocols.model import Datum, DeviceRef, Fix
from protocols.payload import number

TOPIC_ROOT = "owntracks"

# Types the app documents; anything else is still ignored, but flagged as unknown so the
# caller need not turn client-chosen strings into metric labels.
_KNOWN_TYPES = frozenset(
    {
        "beacon", "card", "cmd", "configuration", "encrypted", "location", "lwt",
        "request", "status", "steps", "transition", "waypoint", "waypoints",
    }
)
_MAX_TYPE_CHARS = 64
_MAX_SHORT = 64  # tid, trigger, connectivity, region id
_MAX_TEXT = 256  # region names, status values
_MAX_LIST = 64  # regions in one location, items in one status


@dataclass(frozen=True, slots=True)
class OwnTracksLimits:
    max_payload_bytes: int = 65536
    max_future_ms: int = 5 * 60_000  # phone clocks drift; beyond this the record is refused
    # The Android app retries a queued message for about a week before dropping it.
    max_age_ms: int = 7 * 86_400_000


@dataclass(frozen=True, slots=True)
class OwnTracksLocation:
    """A ``location`` record: the fix, plus what the app says about why and how it sent it.

    ``trigger`` is the app's ``t``: ``p`` ping, ``c`` region, ``b`` beacon, ``r`` answer to
    a ``reportLocation`` command, ``u`` manual, ``t`` timer, ``v`` iOS visit; ``None`` is
    an automatic update. ``connectivity`` is ``w`` wifi, ``m`` mobile, ``o`` offline.
    """

    fix: Fix
    trigger: str | None = None
    tracker_id: str | None = None
    connectivity: str | None = None
    created_ms: int | None = None
    regions: tuple[str, ...] = ()


class TransitionEvent(enum.StrEnum):
    ENTER = "enter"
    LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class OwnTracksTransition:
    """The phone entered or left a region defined on the phone (not one of our grids)."""

    ref: DeviceRef
    t_ms: int
    event: TransitionEvent
    region: str | None = None
    region_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    acc: float | None = None
    trigger: str | None = None
    waypoint_ms: int | None = None  # when the region was created


@dataclass(frozen=True, slots=True)
class OwnTracksLastWill:
    """The broker lost the app's connection; ``connected_ms`` is when that connection began."""

    ref: DeviceRef
    connected_ms: int
    rx_ms: int


@dataclass(frozen=True, slots=True)
class OwnTracksStatus:
    """The app's view of its own health (permissions, power saving), as flat pairs.

    ``platform`` is ``"iOS"`` or ``"android"``, the key the app nests its items under.
    """

    ref: DeviceRef
    rx_ms: int
    platform: str | None
    items: tuple[tuple[str, str | int | float | bool], ...] = ()


@dataclass(frozen=True, slots=True)
class IgnoredMessage:
    """A well-formed payload of a type this service does not use: count it, drop it.

    An empty payload (the app clears its retained message that way) has type ``clear``.
    """

    ref: DeviceRef
    type: str
    known: bool


OwnTracksMessage = OwnTracksLocation | OwnTracksTransition | OwnTracksLastWill | OwnTracksStatus | IgnoredMessage


@dataclass(frozen=True, slots=True)
class Downlink:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


# --- topics ------------------------------------------------------------------------------


def parse_topic(topic: str) -> tuple[str, str, str | None]:
    """``owntracks/{user}/{device}[/{suffix}]`` → ``(user, device, suffix)``."""
    parts = topic.split("/")
    if len(parts) not in (3, 4) or parts[0] != TOPIC_ROOT or not all(parts[1:]):
        raise DecodeError("bad_topic", f"not an OwnTracks topic: {topic[:200]!r}")
    return parts[1], parts[2], parts[3] if len(parts) == 4 else None


def _topic_level(name: str, what: str) -> str:
    if type(name) is not str or not name or any(c in name for c in "/+#\x00"):
        raise ValueError(f"{what} {name!r} cannot be an MQTT topic level")
    return name


def command_topic(user: str, device: str) -> str:
    return f"{TOPIC_ROOT}/{_topic_level(user, 'user')}/{_topic_level(device, 'device')}/cmd"


def encode_report_location(user: str, device: str) -> Downlink:
    """Ask the app for its position now; it answers with a location whose trigger is ``r``.

    QoS 1 and not retained: the booklet asks for QoS > 0 so a phone that is asleep gets the
    command when it reconnects, and a retained command would fire again on every reconnect.
    """
    payload = json.dumps({"_type": "cmd", "action": "reportLocation"}, separators=(",", ":"))
    return Downlink(command_topic(user, device), payload.encode(), qos=1, retain=False)


# --- field readers -------------------------------------------------------------------------


def _string(doc: dict, key: str, max_chars: int) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if type(value) is not str or len(value) > max_chars:
        raise DecodeError("bad_type", f"{key!r} must be a string of at most {max_chars} characters")
    return value


@overload
def _epoch_ms(doc: dict, key: str, required: Literal[True]) -> int: ...
@overload
def _epoch_ms(doc: dict, key: str, required: bool = False) -> int | None: ...
def _epoch_ms(doc: dict, key: str, required: bool = False) -> int | None:
    """An epoch-seconds member as milliseconds; no judgement on how old it may be."""
    seconds = number(doc, key, required)
    if seconds is None:
        return None
    if seconds <= 0 or seconds >= 2**37:  # 2**37 s is the year 6325
        raise DecodeError("bad_value", f"{key!r} {seconds!r} is not an epoch time in seconds")
    return round(seconds * 1000)


def _event_ms(doc: dict, rx_ms: int, limits: OwnTracksLimits) -> int:
    t = _epoch_ms(doc, "tst", required=True)
    if t > rx_ms + limits.max_future_ms:
        raise DecodeError("future_time", f"tst is {t - rx_ms} ms in the future")
    if t < rx_ms - limits.max_age_ms:
        raise DecodeError("stale_time", f"tst is {rx_ms - t} ms in the past")
    return t


@overload
def _position(doc: dict, required: Literal[True]) -> tuple[float, float]: ...
@overload
def _position(doc: dict, required: bool) -> tuple[float, float] | None: ...
def _position(doc: dict, required: bool) -> tuple[float, float] | None:
    lat = number(doc, "lat", required)
    lon = number(doc, "lon", required)
    if lat is None and lon is None:
        return None
    if lat is None or lon is None:
        raise DecodeError("missing_field", "'lat' and 'lon' come together")
    if not -90.0 <= lat <= 90.0:
        raise DecodeError("lat_range", f"lat {lat} out of range")
    if not -180.0 <= lon <= 180.0:
        raise DecodeError("lon_range", f"lon {lon} out of range")
    if lat == 0.0 and lon == 0.0:
        raise DecodeError("zero_position", "lat and lon are both 0 (no fix)")
    return lat, lon


def _accuracy(doc: dict) -> float | None:
    acc = number(doc, "acc")
    if acc is not None and acc < 0:
        # Core Location marks an invalid fix with a negative accuracy
        raise DecodeError("bad_value", f"accuracy {acc} is negative")
    return acc


def _unknown_if_negative(doc: dict, key: str) -> float | None:
    # iOS reports an unknown speed, course or battery level as -1 (or -100 %).
    value = number(doc, key)
    return None if value is None or value < 0 else value


# --- records -----------------------------------------------------------------------------


def _location(doc: dict, ref: DeviceRef, rx_ms: int, limits: OwnTracksLimits) -> OwnTracksLocation:
    t = _event_ms(doc, rx_ms, limits)
    lat, lon = _position(doc, required=True)
    vel = _unknown_if_negative(doc, "vel")
    cog = _unknown_if_negative(doc, "cog")
    if cog is not None:
        if cog > 360.0:
            raise DecodeError("bad_value", f"course {cog} out of range")
        cog %= 360.0
    bat = _unknown_if_negative(doc, "batt")
    if bat is not None and bat > 100.0:
        raise DecodeError("bad_value", f"battery {bat} out of range")
    regions = doc.get("inregions")
    if regions is not None:
        if type(regions) is not list or len(regions) > _MAX_LIST:
            raise DecodeError("bad_type", f"'inregions' must be a list of at most {_MAX_LIST} names")
        if not all(type(r) is str and len(r) <= _MAX_TEXT for r in regions):
            raise DecodeError("bad_type", "'inregions' must hold region names")
    # positional on purpose: keyword construction of a NamedTuple costs twice as much
    fix = Fix(
        ref.device, ref.device_class, ref.district, t, lat, lon, rx_ms,
        _accuracy(doc), None if vel is None else vel / 3.6, cog, number(doc, "alt"), bat,
        Datum.WGS84, None,
    )
    return OwnTracksLocation(
        fix,
        trigger=_string(doc, "t", _MAX_SHORT),
        tracker_id=_string(doc, "tid", _MAX_SHORT),
        connectivity=_string(doc, "conn", _MAX_SHORT),
        created_ms=_epoch_ms(doc, "created_at"),
        regions=tuple(regions or ()),
    )


def _transition(doc: dict, ref: DeviceRef, rx_ms: int, limits: OwnTracksLimits) -> OwnTracksTransition:
    t = _event_ms(doc, rx_ms, limits)
    event = doc.get("event")
    if event is None:
        raise DecodeError("missing_field", "missing 'event'")
    if event not in ("enter", "leave"):
        raise DecodeError("bad_value", f"'event' must be enter or leave, got {str(event)[:32]!r}")
    position = _position(doc, required=False)
    lat, lon = position if position is not None else (None, None)
    return OwnTracksTransition(
        ref, t, TransitionEvent(event),
        region=_string(doc, "desc", _MAX_TEXT),
        region_id=_string(doc, "rid", _MAX_SHORT),
        lat=lat, lon=lon,
        acc=_accuracy(doc),
        trigger=_string(doc, "t", _MAX_SHORT),
        waypoint_ms=_epoch_ms(doc, "wtst"),
    )


def _last_will(doc: dict, ref: DeviceRef, rx_ms: int, limits: OwnTracksLimits) -> OwnTracksLastWill:
    # The will is composed when the app connects and published when it drops, maybe days
    # later: tst may be old, but never in the future.
    connected = _epoch_ms(doc, "tst", required=True)
    if connected > rx_ms + limits.max_future_ms:
        raise DecodeError("future_time", f"tst is {connected - rx_ms} ms in the future")
    return OwnTracksLastWill(ref, connected, rx_ms)


def _status(doc: dict, ref: DeviceRef, rx_ms: int, limits: OwnTracksLimits) -> OwnTracksStatus:
    platform = next((p for p in ("iOS", "android") if p in doc), None)
    if platform is None:
        return OwnTracksStatus(ref, rx_ms, None)
    body = doc[platform]
    if type(body) is not dict or len(body) > _MAX_LIST:
        raise DecodeError("bad_type", f"{platform!r} must be a map of at most {_MAX_LIST} items")
    items = []
    for key, value in body.items():
        if type(value) is str:
            if len(value) > _MAX_TEXT:
                raise DecodeError("bad_type", f"status item {key[:32]!r} is too long")
        elif type(value) is float:
            if not math.isfinite(value):
                raise DecodeError("not_finite", f"status item {key[:32]!r} is {value!r}")
        elif type(value) is not int and type(value) is not bool:
            raise DecodeError("bad_type", f"status item {key[:32]!r} must be a scalar")
        if len(key) > _MAX_SHORT:
            raise DecodeError("bad_type", "status item name is too long")
        items.append((key, value))
    return OwnTracksStatus(ref, rx_ms, platform, tuple(sorted(items)))


_DECODERS: dict[str, Callable[[dict, DeviceRef, int, OwnTracksLimits], OwnTracksMessage]] = {
    "location": _location,
    "transition": _transition,
    "lwt": _last_will,
    "status": _status,
}


# --- entry points --------------------------------------------------------------------------


def decode_payload(
    user: str,
    device: str,
    payload: bytes,
    devices: Mapping[tuple[str, str], DeviceRef],
    rx_ms: int,
    limits: OwnTracksLimits = OwnTracksLimits(),
) -> OwnTracksMessage:
    """Decode one payload from OwnTracks ``user``/``device`` (MQTT topic or HTTP headers).

    ``devices`` maps an OwnTracks (user, device) pair to the project's device.
    """
    ref = devices.get((user, device))
    if ref is None:
        raise DecodeError("unmapped_device", f"OwnTracks {user[:64]!r}/{device[:64]!r} is not mapped to a device")
    if not payload:
        return IgnoredMessage(ref, "clear", known=True)
    if len(payload) > limits.max_payload_bytes:
        raise DecodeError("too_large", f"payload of {len(payload)} bytes exceeds {limits.max_payload_bytes}")
    try:
        doc = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # also bad UTF-8 and over-long integers
        raise DecodeError("bad_json", f"invalid JSON: {str(exc)[:200]}") from None
    if type(doc) is not dict:
        raise DecodeError("not_a_map", f"payload must be a JSON object, got {type(doc).__name__}")
    kind = doc.get("_type")
    if kind is None:
        raise DecodeError("missing_type", "no '_type' member")
    if type(kind) is not str or not kind or len(kind) > _MAX_TYPE_CHARS:
        raise DecodeError("bad_type", "'_type' must be a short string")
    decoder = _DECODERS.get(kind)
    if decoder is None:
        return IgnoredMessage(ref, kind, known=kind in _KNOWN_TYPES)
    return decoder(doc, ref, rx_ms, limits)


def decode_message(
    topic: str,
    payload: bytes,
    devices: Mapping[tuple[str, str], DeviceRef],
    rx_ms: int,
    limits: OwnTracksLimits = OwnTracksLimits(),
) -> OwnTracksMessage:
    """Decode one MQTT message received on an ``owntracks/...`` topic."""
    user, device, _suffix = parse_topic(topic)
    return decode_payload(user, device, payload, devices, rx_ms, limits)
