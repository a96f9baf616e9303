"""Self-describing payloads shared by the MQTT protocols: msgpack or JSON, told apart by
the first non-blank byte (``{`` or ``[`` is JSON, anything else msgpack)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Literal, TypeVar, overload

import msgpack

from protocols.errors import DecodeError

_JSON_STARTS = frozenset(b"{[ \t\r\n")
T = TypeVar("T")


def is_json(payload: bytes) -> bool:
    """How a non-empty payload says its encoding: JSON, else msgpack."""
    return payload[0] in _JSON_STARTS


def load(payload: bytes, max_bytes: int) -> object:
    """Parse one payload; DecodeError (empty, too_large, bad_json, bad_msgpack) otherwise."""
    if not payload:
        raise DecodeError("empty", "empty payload")
    if len(payload) > max_bytes:
        raise DecodeError("too_large", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    if is_json(payload):
        try:
            return json.loads(payload)
        except (ValueError, RecursionError) as exc:  # also bad UTF-8 and over-long integers
            raise DecodeError("bad_json", f"invalid JSON: {str(exc)[:200]}") from None
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except (ValueError, TypeError, msgpack.StackError, msgpack.FormatError, RecursionError) as exc:
        # ExtraData and bad UTF-8 are ValueErrors
        raise DecodeError("bad_msgpack", f"invalid msgpack: {type(exc).__name__}: {str(exc)[:200]}") from None


def each_record(doc: object, build: Callable[[object], T], max_batch: int, noun: str) -> tuple[list[T], list[DecodeError]]:
    """A loaded payload is one map or an array of maps. Build every element; a bad
    element is reported on its own and never costs the good ones beside it. Raises
    DecodeError only when nothing in the payload is usable."""
    if type(doc) is dict:
        return [build(doc)], []
    if type(doc) is not list:
        raise DecodeError("not_a_map", f"payload must be a map or an array of maps, got {type(doc).__name__}")
    if not doc:
        raise DecodeError("empty", "empty batch")
    if len(doc) > max_batch:
        raise DecodeError("too_large", f"batch of {len(doc)} {noun} exceeds {max_batch}")
    good: list[T] = []
    bad: list[DecodeError] = []
    for item in doc:
        try:
            good.append(build(item))
        except DecodeError as exc:
            bad.append(exc)
    return good, bad


@overload
def number(doc: dict, key: str, required: Literal[True]) -> float: ...
@overload
def number(doc: dict, key: str, required: bool = False) -> float | None: ...
def number(doc: dict, key: str, required: bool = False) -> float | None:
    """A finite number member as float; None when absent and not required."""
    value = doc.get(key)
    if value is None:
        if required:
            raise DecodeError("missing_field", f"missing {key!r}")
        return None
    if type(value) is not float and type(value) is not int:
        raise DecodeError("bad_type", f"{key!r} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:
        raise DecodeError("bad_value", f"{key!r} is out of range") from None
    if not math.isfinite(value):
        raise DecodeError("not_finite", f"{key!r} is {value!r}")
    return value


def epoch_ms(doc: dict, rx_ms: int, max_future_ms: int, max_age_ms: int, noun: str = "fix") -> int:
    """Member ``t``, epoch milliseconds, refused when implausibly far from the receive time."""
    t = doc.get("t")
    if t is None:
        raise DecodeError("missing_field", "missing 't'")
    if type(t) is float and math.isfinite(t):
        t = int(t)
    if type(t) is not int:
        raise DecodeError("bad_type", f"'t' must be epoch milliseconds, got {type(t).__name__}")
    if t > rx_ms + max_future_ms:
        raise DecodeError("future_time", f"{noun} time {t} is {t - rx_ms} ms in the future")
    if t < rx_ms - max_age_ms:
        raise DecodeError("stale_time", f"{noun} time {t} is {rx_ms - t} ms in the past")
    return t
