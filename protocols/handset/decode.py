"""Decode handset payloads (spec: docs/protocol.md, "Handset payload v1").

A payload is one map or an array of maps, encoded as msgpack or JSON; the encoding is told
by the first non-blank byte (``{`` or ``[`` is JSON, anything else msgpack). A batch keeps
the good fixes and reports each bad element on its own: one bad element never costs the
others.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from protocols.coords import to_wgs84
from protocols.errors import DecodeError
from protocols.model import Datum, DeviceRef, Fix
from protocols.payload import each_record, epoch_ms, is_json, load, number

_DATUMS = {d.value: d for d in Datum}
# Plausibility bounds: beyond them a reading is garbage, not a fast or high device.
MAX_ACCURACY_M = 100_000.0
MAX_SPEED_MPS = 340.0
MIN_ALTITUDE_M, MAX_ALTITUDE_M = -1_000.0, 20_000.0


@dataclass(frozen=True, slots=True)
class HandsetLimits:
    max_payload_bytes: int = 65536
    max_batch: int = 500
    max_future_ms: int = 5 * 60_000  # device clocks drift; beyond this the fix is refused
    max_age_ms: int = 7 * 86_400_000  # store-and-forward backlog older than this is refused


@dataclass(slots=True)
class PositionBatch:
    """What one payload yielded: the good fixes and one error per bad element."""

    fixes: list[Fix] = field(default_factory=list)
    rejected: list[DecodeError] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class HandsetStatus:
    device: str
    t_ms: int
    bat: float | None = None
    charging: bool | None = None
    network: str | None = None
    app_version: str | None = None


def _load(payload: bytes, limits: HandsetLimits) -> object:
    return load(payload, limits.max_payload_bytes)


def _bounded(item: dict, key: str, lo: float, hi: float, say: Callable[[float], str]) -> float | None:
    """An optional number member within [lo, hi]; None when absent."""
    value = item.get(key)
    if value is None:
        return None
    if type(value) is not float:
        value = number(item, key, True)  # present (checked above): required only says so to the types
    if not lo <= value <= hi:
        raise DecodeError("bad_value" if math.isfinite(value) else "not_finite", say(value))
    return value


def _fix(item: object, ref: DeviceRef, rx_ms: int, limits: HandsetLimits) -> Fix:
    if type(item) is not dict:
        raise DecodeError("not_a_map", f"a fix must be a map, got {type(item).__name__}")
    t = item.get("t")
    if type(t) is not int or not rx_ms - limits.max_age_ms <= t <= rx_ms + limits.max_future_ms:
        t = epoch_ms(item, rx_ms, limits.max_future_ms, limits.max_age_ms)  # the slow path says what is wrong, or converts a float
    lat = item.get("lat")
    lon = item.get("lon")
    acc = item.get("acc")
    # fast path: the three required numbers are plain floats (what handsets send)
    if not (type(lat) is float and type(lon) is float and type(acc) is float):
        lat = number(item, "lat", True)
        lon = number(item, "lon", True)
        acc = number(item, "acc", True)
    if not -90.0 <= lat <= 90.0:
        raise DecodeError("lat_range" if math.isfinite(lat) else "not_finite", f"lat {lat} out of range")
    if not -180.0 <= lon <= 180.0:
        raise DecodeError("lon_range" if math.isfinite(lon) else "not_finite", f"lon {lon} out of range")
    if lat == 0.0 and lon == 0.0:
        raise DecodeError("zero_position", "lat and lon are both 0 (no fix)")
    if not 0.0 <= acc <= MAX_ACCURACY_M:
        raise DecodeError("bad_value" if math.isfinite(acc) else "not_finite", f"accuracy {acc} is not a plausible radius")
    spd = _bounded(item, "spd", 0.0, MAX_SPEED_MPS, lambda v: f"speed {v} m/s is not plausible")
    hdg = _bounded(item, "hdg", 0.0, 360.0, lambda v: f"heading {v} out of range")
    if hdg == 360.0:
        hdg = 0.0
    alt = _bounded(item, "alt", MIN_ALTITUDE_M, MAX_ALTITUDE_M, lambda v: f"altitude {v} m is not plausible")
    bat = _bounded(item, "bat", 0.0, 100.0, lambda v: f"battery {v} out of range")
    crs_name = item.get("crs", "wgs84")
    datum = _DATUMS.get(crs_name) if type(crs_name) is str else None
    if datum is None:
        raise DecodeError("bad_crs", f"unknown coordinate system {crs_name!r}")
    if datum is not Datum.WGS84:
        lat, lon = to_wgs84(lat, lon, datum)
        # BD-09's offset applies everywhere: next to the antimeridian or a pole it leaves the globe
        if not -90.0 <= lat <= 90.0:
            raise DecodeError("lat_range", f"{datum.value} position converts to lat {lat}, off the globe")
        if not -180.0 <= lon <= 180.0:
            raise DecodeError("lon_range", f"{datum.value} position converts to lon {lon}, off the globe")
    seq = item.get("seq")
    if seq is not None and (type(seq) is not int or seq < 0 or seq >= 2**63):
        raise DecodeError("bad_type", f"'seq' must be a non-negative integer, got {seq!r}")
    # every field is checked above (lat/lon ranges included), so skip Fix's own check
    return Fix.checked_values((ref.device, ref.device_class, ref.district, t, lat, lon, rx_ms, acc, spd, hdg, alt, bat, datum, seq))


# Two paths decode a position payload. The fast one has msgspec parse and range-check the
# maps in C, and takes a payload only when every element is good. Anything msgspec refuses,
# or that fails a check it cannot express (time window, 0/0, batch size), goes whole to the
# Python path above: it stays the authority on what is wrong, and keeps the good elements
# beside a bad one. So the fast path must take nothing the Python path refuses, and build
# the very same Fix from what it takes.
#
# Unknown keys send a payload to the Python path (decoded the same, only slower): msgspec
# skips an unknown key's value unchecked, where the Python loaders refuse the whole payload
# for some values (not UTF-8, a timestamp ext of bad length, a map as a key, a JSON integer
# over 4300 digits). A nil optional number is absent, as in _fix; a nil `crs` is bad_crs.
class _WireFix(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    t: int
    lat: Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
    lon: Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
    acc: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_ACCURACY_M)]
    spd: Annotated[float, msgspec.Meta(ge=0.0, le=MAX_SPEED_MPS)] | None = None
    hdg: Annotated[float, msgspec.Meta(ge=0.0, le=360.0)] | None = None
    alt: Annotated[float, msgspec.Meta(ge=MIN_ALTITUDE_M, le=MAX_ALTITUDE_M)] | None = None
    bat: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] | None = None
    crs: Datum = Datum.WGS84
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None


# msgspec refuses bools for numbers, floats for `t` and `seq`, NaN and infinities (by the
# bounds), non-string keys and JSON's NaN/Infinity literals: the Python path decides those.
_MSGPACK = msgspec.msgpack.Decoder(list[_WireFix] | _WireFix)
_JSON = msgspec.json.Decoder(list[_WireFix] | _WireFix)


def _fast_fixes(payload: bytes, ref: DeviceRef, rx_ms: int, limits: HandsetLimits) -> list[Fix] | None:
    """Every fix of a payload whose elements are all good; None when the Python path must decide."""
    try:
        doc = (_JSON if is_json(payload) else _MSGPACK).decode(payload)
    except (ValueError, RecursionError):
        # msgspec.DecodeError and ValidationError are ValueErrors, and so is the
        # UnicodeDecodeError msgspec raises for an unknown key that is not UTF-8
        return None
    items = doc if type(doc) is list else (doc,)
    if not items or len(items) > limits.max_batch:
        return None
    oldest, newest = rx_ms - limits.max_age_ms, rx_ms + limits.max_future_ms
    device, device_class, district = ref.device, ref.device_class, ref.district
    fixes = []
    for item in items:
        t, lat, lon, hdg, datum = item.t, item.lat, item.lon, item.hdg, item.crs
        if not oldest <= t <= newest or (lat == 0.0 and lon == 0.0):
            return None
        if hdg == 360.0:
            hdg = 0.0
        if datum is not Datum.WGS84:
            lat, lon = to_wgs84(lat, lon, datum)
            if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
                return None
        fixes.append(Fix.checked_values((device, device_class, district, t, lat, lon, rx_ms, item.acc, item.spd, hdg,
                                         item.alt, item.bat, datum, item.seq)))
    return fixes


def _decode_position_slow(payload: bytes, ref: DeviceRef, rx_ms: int, limits: HandsetLimits) -> PositionBatch:
    fixes, rejected = each_record(_load(payload, limits), lambda item: _fix(item, ref, rx_ms, limits), limits.max_batch, "fixes")
    return PositionBatch(fixes, rejected)


def decode_position(payload: bytes, ref: DeviceRef, rx_ms: int, limits: HandsetLimits = HandsetLimits()) -> PositionBatch:
    """Decode one ``pos`` payload. Raises DecodeError only when nothing in it is usable."""
    if payload and len(payload) <= limits.max_payload_bytes:  # else the Python path says empty or too_large
        fixes = _fast_fixes(payload, ref, rx_ms, limits)
        if fixes is not None:
            return PositionBatch(fixes)
    return _decode_position_slow(payload, ref, rx_ms, limits)


def decode_status(payload: bytes, ref: DeviceRef, rx_ms: int, limits: HandsetLimits = HandsetLimits()) -> HandsetStatus:
    """Decode one ``status`` payload: battery, charging, network type, app version."""
    doc = _load(payload, limits)
    if type(doc) is not dict:
        raise DecodeError("not_a_map", f"status must be a map, got {type(doc).__name__}")
    t = epoch_ms(doc, rx_ms, limits.max_future_ms, limits.max_age_ms)
    bat = number(doc, "bat", False)
    if bat is not None and not 0.0 <= bat <= 100.0:
        raise DecodeError("bad_value", f"battery {bat} out of range")
    charging = doc.get("chg")
    if charging is not None and type(charging) is not bool:
        raise DecodeError("bad_type", "'chg' must be a boolean")
    strings = {}
    for key in ("net", "app"):
        value = doc.get(key)
        if value is not None and (type(value) is not str or len(value) > 64):
            raise DecodeError("bad_type", f"{key!r} must be a short string")
        strings[key] = value
    return HandsetStatus(ref.device, t, bat, charging, strings["net"], strings["app"])
