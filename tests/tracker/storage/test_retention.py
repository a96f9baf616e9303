"""Retention on a real PostgreSQL: pings lose whole day partitions past their window,
refused fixes, dead letters, sensor records and expired sessions their old rows in
batches; alarm events stay. "Now" is
an injected clock; the periodic task runs on trio's MockClock."""

from __future__ import annotations

import dataclasses
import functools
import time

import pytest
import trio
import trio.testing

from protocols.epoch import ms_to_datetime
from tracker.config import RetentionSettings
from tracker.metrics import Metrics
from tracker.storage.retention import run_retention, sweep
from tracker.storage.store import DAY_MS, open_store

NOW = 1_764_000_000_123  # 2025-11-24 16:00:00.123 UTC
TODAY = NOW // DAY_MS
GRID = "620105001001001"
HOUR = 3_600_000
KEEP_ALL = RetentionSettings(pings_days=0, filtered_fixes_days=0, dead_letters_days=0, sensor_readings_days=0, sessions_days=0)


def ping(t_ms: int, device: str = "c0001") -> tuple:
    # PING_COLUMNS: device, t, lat, lon, rx, acc, spd, hdg, alt, bat, crs, seq, cell, grid, late
    return (device, t_ms, 36.1, 103.7, t_ms + 500, 5.0, None, None, None, 80.0, "wgs84", 7, 631_000_000_000_000_001, GRID, False)


def refused(rx_ms: int) -> tuple:
    # FILTERED_COLUMNS: device, t, rx, lat, lon, acc, spd, seq, reason
    return ("c0001", ms_to_datetime(rx_ms - 1000), ms_to_datetime(rx_ms), 36.1, 103.7, 500.0, None, None, "accuracy")


def dead_letter(at_ms: int) -> tuple:
    return (ms_to_datetime(at_ms), "handset", "gw/v1/620105/collector/c0001/pos", "c0001", "bad_json", "not JSON", b"{")


async def _fill(store, days_back: range) -> None:
    rows = [ping((TODAY - back) * DAY_MS + 12 * HOUR) for back in days_back]
    await store.write_pings(rows, {r[1] // DAY_MS for r in rows}, [])


async def test_pings_partitions_older_than_the_window_are_dropped_and_newer_kept(database):
    async with open_store(database) as store:
        await _fill(store, range(0, 6))  # today and the five days before
        swept = await sweep(store, dataclasses.replace(KEEP_ALL, pings_days=3), NOW)
        assert swept.ping_days == [TODAY - 5, TODAY - 4]
        assert await store.ping_days() == [TODAY - 3, TODAY - 2, TODAY - 1, TODAY]
        left = await store.fetch("SELECT t FROM pings ORDER BY t")
        assert [r["t"].date() for r in left] == [ms_to_datetime((TODAY - back) * DAY_MS).date() for back in (3, 2, 1, 0)]
        # a late fix for a dropped day gets its partition back
        await store.write_pings([ping((TODAY - 5) * DAY_MS + HOUR)], {TODAY - 5}, [])
        assert await store.ping_days() == [TODAY - 5, TODAY - 3, TODAY - 2, TODAY - 1, TODAY]
        # and a second sweep at the same time finds only that one
        again = await sweep(store, dataclasses.replace(KEEP_ALL, pings_days=3), NOW)
        assert again.ping_days == [TODAY - 5]


async def test_a_window_of_zero_days_keeps_everything(database):
    async with open_store(database) as store:
        await _fill(store, range(0, 900, 100))
        await store.write_pings([], set(), [], filtered=[refused(NOW - 500 * DAY_MS)])
        await store.add_dead_letters([dead_letter(NOW - 500 * DAY_MS)])
        swept = await sweep(store, KEEP_ALL, NOW)
        assert swept.ping_days == [] and swept.deleted == {}
        assert len(await store.ping_days()) == 9
        assert len(await store.fetch("SELECT 1 FROM filtered_fixes")) == 1
        assert len(await store.fetch("SELECT 1 FROM dead_letters")) == 1


async def test_refused_fixes_and_dead_letters_past_their_window_are_deleted_in_batches(database):
    async with open_store(database) as store:
        old = [refused(NOW - 31 * DAY_MS - i * 1000) for i in range(23)]
        young = [refused(NOW - 29 * DAY_MS), refused(NOW - HOUR)]
        await store.write_pings([], set(), [], filtered=old + young)
        await store.add_dead_letters([dead_letter(NOW - 8 * DAY_MS - i) for i in range(7)] + [dead_letter(NOW - 6 * DAY_MS)])
        alarm = ("sensor", "s01", None, "tilt", True, ms_to_datetime(NOW - 900 * DAY_MS), 31.0, "", 36.1, 103.7, GRID)
        await store.record_alarms([alarm])
        await store.add_sensor_readings([reading(NOW - 31 * DAY_MS - i * 1000) for i in range(6)] + [reading(NOW - 29 * DAY_MS)])
        settings = RetentionSettings(pings_days=0, filtered_fixes_days=30, dead_letters_days=7, sensor_readings_days=30,
                                     sessions_days=0, delete_batch=5)
        swept = await sweep(store, settings, NOW)
        assert swept.deleted == {"filtered_fixes": 23, "dead_letters": 7, "sensor_readings": 6}
        assert [r["rx"] for r in await store.fetch("SELECT rx FROM sensor_readings")] == [ms_to_datetime(NOW - 29 * DAY_MS)]
        kept = await store.fetch("SELECT rx FROM filtered_fixes ORDER BY rx")
        assert [r["rx"] for r in kept] == [ms_to_datetime(NOW - 29 * DAY_MS), ms_to_datetime(NOW - HOUR)]
        assert [r["at"] for r in await store.fetch("SELECT at FROM dead_letters")] == [ms_to_datetime(NOW - 6 * DAY_MS)]
        assert len(await store.fetch("SELECT 1 FROM alarm_events")) == 1  # the audit trail stays


async def test_sessions_go_their_window_after_expiring_and_a_live_one_still_signs_in(database):
    async with open_store(database) as store:
        account = await store.add_account("retention-viewer", "viewer", None, "$argon2id$unused")
        for n, expired_days_ago in enumerate((45, 31, 29, -1)):  # -1: expires tomorrow
            expires = ms_to_datetime(NOW - expired_days_ago * DAY_MS)
            await store.start_session(account, b"secret-%d" % n, "csrf", "127.0.0.1", ms_to_datetime(NOW - 40 * DAY_MS), expires)
        await store.end_session(b"secret-2")  # logged out: kept its window all the same
        settings = RetentionSettings(pings_days=0, filtered_fixes_days=0, dead_letters_days=0, sensor_readings_days=0,
                                     sessions_days=30, delete_batch=1)
        swept = await sweep(store, settings, NOW)
        assert swept.deleted == {"sessions": 2}
        assert [r["secret_hash"] for r in await store.fetch("SELECT secret_hash FROM sessions ORDER BY id")] == [b"secret-2", b"secret-3"]
        assert await store.session(b"secret-3", ms_to_datetime(NOW)) is not None


def reading(rx_ms: int) -> tuple:
    """A litter bin's status record (READING_COLUMNS), received at ``rx_ms``."""
    return ("bin-01", ms_to_datetime(rx_ms - 1000), ms_to_datetime(rx_ms), "6201050301000001", "status",
            None, None, None, None, 64.0, None, 81.0)


@pytest.fixture
def still_clock() -> trio.testing.MockClock:
    """trio's clock standing still until the test jumps it (the database's own timeouts
    must not fire while it answers)."""
    return trio.testing.MockClock()


async def _until(predicate, what: str) -> None:
    deadline = time.monotonic() + 30  # real seconds: the database answers meanwhile
    while not await predicate():
        assert time.monotonic() < deadline, what
        await trio.sleep(0)


async def test_the_periodic_sweep_follows_the_clock(database, still_clock):
    """Started with the service's clock: an hour of trio's clock and a day of the
    service's later, the next partition has aged out."""
    now = [NOW]
    metrics = Metrics()
    settings = RetentionSettings(pings_days=2, filtered_fixes_days=0, dead_letters_days=0, sensor_readings_days=0, sessions_days=0, check_s=3600.0)

    def dropped() -> int:
        return metrics.get("gridwatch_retention_deleted_total", table="pings_partitions")

    async with open_store(database) as store:
        await _fill(store, range(0, 5))
        async with trio.open_nursery() as nursery:
            await nursery.start(run_retention, store, settings, lambda: now[0], metrics)

            async def swept(n: int) -> bool:
                return dropped() == n

            await _until(functools.partial(swept, 2), "the first sweep at start-up")
            assert await store.ping_days() == [TODAY - 2, TODAY - 1, TODAY]
            now[0] += DAY_MS
            still_clock.jump(3599)
            await trio.testing.wait_all_tasks_blocked()
            assert dropped() == 2 and await store.ping_days() == [TODAY - 2, TODAY - 1, TODAY]  # not due yet
            still_clock.jump(1)
            await _until(functools.partial(swept, 3), "the sweep an hour later")
            assert await store.ping_days() == [TODAY - 1, TODAY]
            nursery.cancel_scope.cancel()
