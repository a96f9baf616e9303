"""The sanity check every decoded fix must pass, whatever protocol it came by.

``conftest.py`` puts ``checked`` in place of ``Fix`` inside every decoder module, so each test
that decodes a payload or frame checks each fix it yields, with no call to remember.
"""

from __future__ import annotations

import math

from protocols.model import DEVICE_ID, DISTRICT_CODE, Datum, DeviceClass, Fix

EARLIEST_MS = 946_684_800_000  # 2000-01-01: no terminal in service reports earlier
LATEST_MS = 4_102_444_800_000  # 2100-01-01


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
