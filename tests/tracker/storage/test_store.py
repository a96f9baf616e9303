"""The store on a real PostgreSQL: the ping writer takes fix times as epoch milliseconds;
alarm events are saved with the sensor states behind them, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
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
        # alarm rows go in as arrays (a conflict is skipped): asyncpg reports the encoder's refusal as a DataError
        with pytest.raises(asyncpg.DataError, match="aware datetime"):
            await store.write_pings([], set(), [], alarms=[(*alarm[:5], datetime(2025, 11, 24, 16), *alarm[6:])])
        with pytest.raises(TypeError, match="aware datetime"):  # ping rows are COPied: the encoder's own error
            await store.write_pings([(*ping(T, T)[:1], datetime(2025, 11, 24, 16), *ping(T, T)[2:])], {T // DAY_MS}, [])


def event(kind: str, raised: bool, t: datetime, device: str = "mh-0007", source: str = "sensor") -> tuple:
    # ALARM_COLUMNS: source, device, component, kind, raised, t, value, detail, lat, lon, grid
    component = "6201050101000007" if source == "sensor" else None
    return (source, device, component, kind, raised, t, 35.0 if raised else 0.5, "", 36.1, 103.7, GRID)


def sensor_state(device: str = "mh-0007", component: str = "6201050101000007", silent: bool = False) -> tuple:
    rules = {"version": 1, "device": device, "conditions": [["tilt", {"active": True, "toggles": [1, 2]}]], "flapping_raised": False}
    return (device, component, datetime(2025, 11, 24, 16, tzinfo=UTC), silent, rules)


async def test_alarm_events_and_the_sensor_states_behind_them_are_saved_together(database):
    async with open_store(database) as store:
        await store.record_alarms([event("tilt", True, datetime(2025, 11, 24, 16, tzinfo=UTC))], [sensor_state()])
        await store.record_alarms([], [sensor_state(silent=True)])
        events = await store.fetch("SELECT device, kind, raised FROM alarm_events")
        states = await store.sensor_states()
    assert [tuple(r) for r in events] == [("mh-0007", "tilt", True)]
    assert [tuple(r.values()) for r in states] == [sensor_state(silent=True)]


async def test_a_sensor_state_the_database_refuses_takes_its_alarm_events_with_it(database):
    async with open_store(database) as store:
        with pytest.raises(asyncpg.CheckViolationError):
            await store.record_alarms([event("tilt", True, datetime(2025, 11, 24, 16, tzinfo=UTC))], [sensor_state(component="62010501")])
        events = await store.fetch("SELECT id FROM alarm_events")
        states = await store.sensor_states()
    assert (events, states) == ([], [])


async def test_the_newest_event_of_each_alarm_is_the_one_recorded_last(database):
    at = [datetime(2025, 11, 24, 16, 0, s, tzinfo=UTC) for s in range(4)]
    async with open_store(database) as store:
        await store.record_alarms([event("tilt", True, at[0]), event("tilt", False, at[2]), event("low_battery", True, at[1])])
        # a debounced tilt is dated from its onset: recorded after the recovery above, dated before it
        await store.record_alarms([event("tilt", True, at[1]), event("overspeed", True, at[3], "jt013912345678", "vehicle")])
        sensors = await store.latest_alarm_events("sensor")
        vehicles = await store.latest_alarm_events("vehicle")
    assert [(r["device"], r["kind"], r["raised"], r["t"]) for r in sensors] == [
        ("mh-0007", "low_battery", True, at[1]), ("mh-0007", "tilt", True, at[1])]
    assert [(r["device"], r["kind"], r["raised"], r["t"]) for r in vehicles] == [("jt013912345678", "overspeed", True, at[3])]


async def test_writes_delivered_again_store_nothing_twice(database):
    """A redelivered message's rows: pings skipped on (device, t), refused fixes on
    (device, t, reason), alarm events on (source, device, kind, t, raised)."""
    first = [ping(T + i * 1000, T + i * 1000 + 5, f"c{i % 3:04d}") for i in range(6)]
    again = [*first[3:], ping(T + 9000, T + 9005), ping(T + 9000, T + 9006)]  # and a copy within the batch itself
    refused = ("c0001", T, T + 5, 36.1, 103.7, 900.0, None, 7, "accuracy")
    tilt = event("tilt", True, datetime(2025, 11, 24, 16, tzinfo=UTC))
    async with open_store(database) as store:
        await store.migrate()
        assert await store.write_pings(first, {T // DAY_MS}, [], [refused], [tilt]) == 6
        assert await store.write_pings(again, {T // DAY_MS}, [], [refused, refused], [tilt]) == 1
        await store.record_alarms([tilt, event("tilt", False, datetime(2025, 11, 24, 16, 5, tzinfo=UTC))], [sensor_state()])
        pings = await store.fetch("SELECT device, t, rx FROM pings ORDER BY t")
        filtered = await store.fetch("SELECT device, reason FROM filtered_fixes")
        alarms = await store.fetch("SELECT kind, raised FROM alarm_events ORDER BY id")
    assert [(r["device"], datetime_to_ms(r["t"]), datetime_to_ms(r["rx"])) for r in pings] == [
        *((row[0], row[1], row[4]) for row in first), ("c0001", T + 9000, T + 9005)]  # the first copy stays
    assert [tuple(r) for r in filtered] == [("c0001", "accuracy")]
    assert [tuple(r) for r in alarms] == [("tilt", True), ("tilt", False)]
