"""The sanity check every decoded fix must pass, whatever protocol it came by.

``conftest.py`` puts ``checked`` in place of ``Fix`` inside every decoder module, so each test
that decodes a payload or frame checks each fix it yields, with no call to remember.

Two kinds of check: plausibility (a fix a device could have taken), and storage (each value
fits the column the store writes it to: ``double precision`` for lat/lon, ``real`` for the
readings, ``timestamptz`` for the times, ``bigint`` for seq; see tracker/storage/migrations).
"""

from __future__ import annotations

import math
import struct

from protocols.model import DEVICE_ID, DISTRICT_CODE, Datum, DeviceClass, Fix
from protocols.sensor import READING_RANGES, SensorReading

EARLIEST_MS = 946_684_800_000  # 2000-01-01: no terminal in service reports earlier
LATEST_MS = 4_102_444_800_000  # 2100-01-01
REAL_COLUMNS = ("acc", "spd", "hdg", "alt", "bat")
BIGINT = (-(2**63), 2**63 - 1)


def fits_real(value: object) -> bool:
    """What PostgreSQL's ``real`` (float32) takes from the driver: a finite float that does
    not overflow single precision (the driver refuses it: "value out of float32 range")."""
    if type(value) is not float or not math.isfinite(value):
        return False
    try:
        struct.pack("<f", value)
    except OverflowError:
        return False
    return True


def fits_bigint(value: object) -> bool:
    return type(value) is int and BIGINT[0] <= value <= BIGINT[1]


def assert_storable(fix: Fix) -> None:
    """Every value of the fix fits its database column."""
    assert type(fix.lat) is float and math.isfinite(fix.lat), f"lat {fix.lat!r}"
    assert type(fix.lon) is float and math.isfinite(fix.lon), f"lon {fix.lon!r}"
    for name in REAL_COLUMNS:
        value = getattr(fix, name)
        assert value is None or fits_real(value), f"{name} {value!r} does not fit a real column"
    for name in ("t_ms", "rx_ms"):
        assert fits_bigint(getattr(fix, name)), f"{name} {getattr(fix, name)!r} is not epoch milliseconds"
    assert fix.seq is None or fits_bigint(fix.seq), f"seq {fix.seq!r} does not fit a bigint column"


def assert_reading_storable(reading: SensorReading) -> None:
    """A sensor record's numbers fit where alarms carry them (``alarm_events.value``, double
    precision) within the ranges the protocol gives them; flags fit 32 bits, seq a bigint."""
    for name, (lowest, highest) in READING_RANGES.items():
        value = getattr(reading, name)
        assert value is None or (type(value) is float and lowest <= value <= highest), f"{name} {value!r}"
    assert reading.flags is None or (type(reading.flags) is int and 0 <= reading.flags < 2**32), f"flags {reading.flags!r}"
    assert reading.seq is None or fits_bigint(reading.seq), f"seq {reading.seq!r}"
    assert fits_bigint(reading.t_ms) and EARLIEST_MS <= reading.t_ms <= LATEST_MS, f"t {reading.t_ms!r}"


def assert_sane(fix: Fix) -> None:
    assert DEVICE_ID.match(fix.device), f"device id {fix.device!r}"
    assert isinstance(fix.device_class, DeviceClass) and DISTRICT_CODE.match(fix.district), fix
    assert math.isfinite(fix.lat) and -90 <= fix.lat <= 90 and math.isfinite(fix.lon) and -180 <= fix.lon <= 180, fix
    assert not (fix.lat == 0 and fix.lon == 0), f"a fix at 0,0: {fix}"
    assert EARLIEST_MS <= fix.t_ms <= LATEST_MS and EARLIEST_MS <= fix.rx_ms <= LATEST_MS, f"implausible time: {fix}"
    assert fix.acc is None or 0 <= fix.acc <= 100_000, f"accuracy {fix.acc}"
    assert fix.spd is None or 0 <= fix.spd <= 340, f"speed {fix.spd} m/s"
    assert fix.hdg is None or 0 <= fix.hdg < 360, f"heading {fix.hdg}"
    assert fix.alt is None or -1_000 <= fix.alt <= 20_000, f"altitude {fix.alt}"
    assert fix.bat is None or 0 <= fix.bat <= 100, f"battery {fix.bat}"
    assert isinstance(fix.crs, Datum), fix
    assert fix.seq is None or (isinstance(fix.seq, int) and fix.seq >= 0), fix
    assert_storable(fix)


class _CheckedFix:
    """Stands in for ``Fix`` in decoder modules: both ways of building one are checked."""

    def __call__(self, *args, **kwargs) -> Fix:
        fix = Fix(*args, **kwargs)
        assert_sane(fix)
        return fix

    @staticmethod
    def checked_values(values: tuple) -> Fix:
        fix = Fix.checked_values(values)
        assert type(Fix(*values)) is Fix  # what the skipped constructor check would have said
        assert_sane(fix)
        return fix


checked = _CheckedFix()
