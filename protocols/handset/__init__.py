"""Collector handset protocol: positions and status over MQTT, msgpack or JSON."""

from protocols.handset.decode import (
    HandsetLimits,
    HandsetStatus,
    PositionBatch,
    decode_position,
    decode_status,
)

__all__ = ["HandsetLimits", "HandsetStatus", "PositionBatch", "decode_position", "decode_status"]
