"""Component sensors (manhole covers, litter bins, waterlogging gauges): msgpack or JSON."""

from protocols.sensor.decode import (
    ALARM_CODE,
    READING_RANGES,
    READINGS_BY_TYPE,
    MessageKind,
    SensorBatch,
    SensorLimits,
    SensorReading,
    SensorType,
    decode_sensor,
)

__all__ = [
    "ALARM_CODE",
    "READINGS_BY_TYPE",
    "READING_RANGES",
    "MessageKind",
    "SensorBatch",
    "SensorLimits",
    "SensorReading",
    "SensorType",
    "decode_sensor",
]
