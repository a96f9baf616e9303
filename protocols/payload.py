"""Self-describing payloads shared by the MQTT protocols: msgpack or JSON, told apart by
the first non-blank byte (``{`` or ``[`` is JSON, anything else msgpack)."""

from __future__ import annotations

import json

import msgpack

from protocols.errors import DecodeError

_JSON_STARTS = frozenset(b"{[ \t\r\n")


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
