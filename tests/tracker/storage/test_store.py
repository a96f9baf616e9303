"""The store's ping writer, on a real PostgreSQL: fix times go in as epoch milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from protocols.epoch import datetime_to_ms
from tracker.storage.store import DAY_MS, open_store

T = 1_764_000_000_123  # 2025-11-24 16:00:00.123 UTC
GRID = "620105001001001"


def ping(t_ms: int, rx_ms: int, device: str = "c0001") -> tuple:
    # PING_COLUMNS: device, t, lat, lon, rx, acc, spd, hdg, alt, bat, crs, seq, cell, grid, late
    return (device, t_ms, 36.1, 103.7, rx_ms, 5.0, None, None, None, 80.0, "wgs84", 7, 631_000_000_000_000_001, GRID, False)


async def test_ping_times_in_epoch_milliseconds_are_stored_to_the_millisecond(database):
    async with open_store(database) as store:
        await store.migrate()
        before_epoch, leap_day = -1_234, 951_782_400_999  # 1969-12-31T23:59:58.766, 2000-02-29T00:00:00.999
        rows = [ping(T, T + 450), ping(before_epoch, 0, "c0002"), ping(leap_day, leap_day + 1, "c0003")]
        await store.write_pings(rows, {r[1] // DAY_MS for r in rows}, [])
        got = await store.fetch("SELECT device, t, rx FROM pings ORDER BY device")
    assert [(r["device"], datetime_to_ms(r["t"]), datetime_to_ms(r["rx"])) for r in got] == [
        ("c0001", T, T + 450), ("c0002", before_epoch, 0), ("c0003", leap_day, leap_day + 1)]
    assert got[0]["t"] == datetime(2025, 11, 24, 16, 0, 0, 123_000, tzinfo=UTC)  # reads stay datetimes


async def test_the_writer_still_takes_aware_datetimes_and_refuses_naive_ones(database):
    aware = datetime(2025, 11, 24, 16, 0, 0, 123_456, tzinfo=UTC)
    alarm = ("sensor", "s01", None, "tilt", True, aware, 31.0, "", 36.1, 103.7, GRID)
    async with open_store(database) as store:
        await store.migrate()
        await store.write_pings([], set(), [], alarms=[alarm])
        (row,) = await store.fetch("SELECT t FROM alarm_events")
        assert row["t"] == aware
        with pytest.raises(TypeError, match="aware datetime"):
            await store.write_pings([], set(), [], alarms=[alarm[:5] + (datetime(2025, 11, 24, 16),) + alarm[6:]])
