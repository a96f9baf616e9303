"""The service records when it observed: a run from its start to its clean stop; a run
that did not stop cleanly (a crash) ends at its last heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import trio

from protocols.epoch import datetime_to_ms
from tests.harness import store_task
from tracker.live import runs as runs_module
from tracker.live.runs import ServiceRuns

START = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)


async def test_a_clean_stop_ends_the_run_where_it_stopped(settings):
    now = [datetime_to_ms(START)]
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        runs = ServiceRuns(store, lambda: now[0])
        await runs.start()
        now[0] += 5 * 60_000
        await runs.stop()  # what Running.stop does last
        rows = await store.fetch("SELECT started_at, heartbeat_at, stopped_at FROM service_runs ORDER BY id")
        periods = await store.runs_between(START, START + timedelta(hours=1))
        nursery.cancel_scope.cancel()
    assert [tuple(r.values()) for r in rows] == [(START, START + timedelta(minutes=5), START + timedelta(minutes=5))]
    assert periods == [(START, START + timedelta(minutes=5))]


async def test_heartbeats_mark_how_long_a_run_that_never_stopped_lasted(settings, monkeypatch):
    monkeypatch.setattr(runs_module, "HEARTBEAT_S", 0.02)
    now = [datetime_to_ms(START)]
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        runs = ServiceRuns(store, lambda: now[0])
        await runs.start()
        beating = trio.CancelScope()  # the run's heartbeats, then a crash: no stop recorded
        nursery.start_soon(_beat, runs, beating)
        now[0] += 90_000
        with trio.fail_after(10):
            while await store.runs_between(START - timedelta(hours=1), START + timedelta(hours=1)) != [(START, START + timedelta(seconds=90))]:
                await trio.sleep(0.02)
        beating.cancel()
        periods = await store.runs_between(START - timedelta(hours=1), START + timedelta(hours=1))
        before = await store.runs_between(START - timedelta(hours=2), START - timedelta(hours=1))
        nursery.cancel_scope.cancel()
    assert periods == [(START, START + timedelta(seconds=90))]  # to the last heartbeat
    assert before == []


async def _beat(runs: ServiceRuns, scope: trio.CancelScope) -> None:
    with scope:
        await runs.heartbeats()
