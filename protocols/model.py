"""Domain records shared by every stage: frozen, slotted, validated on construction."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NamedTuple

DISTRICT_CODE = re.compile(r"^\d{6}$")
GRID_CODE = re.compile(r"^\d{15}$")
COMPONENT_CODE = re.compile(r"^\d{16}$")
# A device id doubles as its broker user name and a topic level: no wildcards, no slashes.
DEVICE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class DeviceClass(enum.StrEnum):
    COLLECTOR = "collector"
    VEHICLE = "vehicle"
    SENSOR = "sensor"


class Datum(enum.StrEnum):
    """Coordinate system a device reported in; stored positions are always WGS-84."""

    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """Who sent a payload, as the transport (topic, TCP session) established it."""

    device: str
    device_class: DeviceClass
    district: str

    def __post_init__(self) -> None:
        if not DEVICE_ID.match(self.device):
            raise ValueError(f"bad device id {self.device!r}")
        if not DISTRICT_CODE.match(self.district):
            raise ValueError(f"bad district code {self.district!r}")


class _FixFields(NamedTuple):
    device: str
    device_class: DeviceClass
    district: str
    t_ms: int
    lat: float
    lon: float
    rx_ms: int
    acc: float | None = None  # horizontal accuracy radius, m
    spd: float | None = None  # m/s
    hdg: float | None = None  # degrees clockwise from north, [0, 360)
    alt: float | None = None  # m
    bat: float | None = None  # %
    crs: Datum = Datum.WGS84
    seq: int | None = None


class Fix(_FixFields):
    """One position of one device, in WGS-84, at the time the device took it.

    ``t_ms`` is the fix time (epoch milliseconds, UTC); ``rx_ms`` when the service got it.
    ``crs`` records the datum the device reported in (``lat``/``lon`` are already
    converted). Optional fields are ``None`` when the device did not report them.

    A NamedTuple rather than a frozen dataclass: this record is built once per ping on the
    hot path, and a 14-field frozen dataclass costs about 2.5x as much to construct. It is
    immutable and slot-free all the same, and validated here on construction.
    """

    __slots__ = ()

    @classmethod
    def checked_values(cls, values: tuple) -> Fix:
        """Build from a full tuple of field values that the caller has already validated
        to this class's rules (the handset decoder checks every field, and more): skips
        the second check on the hot path. Any other caller uses the constructor."""
        return tuple.__new__(cls, values)

    def __new__(cls, *args, **kwargs):
        self = _FixFields.__new__(cls, *args, **kwargs)
        lat, lon = self.lat, self.lon
        if not (-90.0 <= lat <= 90.0) or not (-180.0 <= lon <= 180.0):
            # NaN fails both comparisons and lands here too
            raise ValueError(f"position out of range: lat={lat!r} lon={lon!r}")
        return self
