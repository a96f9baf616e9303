"""Self-describing payloads shared by the MQTT protocols: msgpack or JSON, told apart by
the first non-blank byte (``{`` or ``[`` is JSON, anything else msgpack)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import msgpack

from protocols.errors import DecodeError

_JSON_STARTS = frozenset(b"{[ \t\r\n")
T = TypeVar("T")


def load(payload: bytes, max_bytes: int) -> object:
    """Parse one payload; DecodeError (empty, too_large, bad_json, bad_msgpack) otherwise."""
    if not payload:
        raise DecodeError("empty", "empty payload")
    if len(payload) > max_bytes:
        raise DecodeError("too_large", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    if payload[0] in _JSON_STARTS:
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
