"""How long the tables that grow with traffic keep their rows (``[retention]``).

    pings           whole UTC day partitions dropped once the day is past the window
    filtered_fixes  batched DELETE by receive time
    dead_letters    batched DELETE by receive time
    sensor_readings batched DELETE by receive time
    sessions        batched DELETE, ``sessions_days`` after each expired (a login
                    ended early expires later all the same; nothing else refers to one)

Alarm events, sensor states, patrol alerts, plans and checkpoints are never deleted
here: the alarm outbox and the patrol record are the audit trail, and their size follows
the incidents, not the traffic. A window of 0 days keeps a table forever.

A sweep runs at start-up and every ``check_s`` after, on trio's clock (so ``MockClock``
drives it in tests); "now" comes from the service's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import trio

from protocols.epoch import ms_to_datetime
from tracker.config import RetentionSettings
from tracker.metrics import Metrics
from tracker.storage.store import DAY_MS, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Swept:
    ping_days: list[int]  # UTC day numbers of the partitions dropped
    deleted: dict[str, int]  # table → rows deleted


async def sweep(store: Store, retention: RetentionSettings, now_ms: int) -> Swept:
    """Drop and delete what has aged past its window at ``now_ms``.

    The pings window counts whole days: with ``pings_days = 30`` the partitions of the
    30 days before today and today's are kept; a day goes when all of it is older than
    30 days.
    """
    today = now_ms // DAY_MS
    dropped = await store.drop_ping_days_before(today - retention.pings_days) if retention.pings_days else []
    deleted = {}
    for table, days in (("filtered_fixes", retention.filtered_fixes_days), ("dead_letters", retention.dead_letters_days),
                        ("sensor_readings", retention.sensor_readings_days), ("sessions", retention.sessions_days)):
        if days:
            deleted[table] = await store.delete_expired(table, ms_to_datetime(now_ms - days * DAY_MS), retention.delete_batch)
    return Swept(dropped, deleted)


async def run_retention(store: Store, retention: RetentionSettings, clock_ms: Callable[[], int], metrics: Metrics, *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Sweep now and every ``check_s``; a sweep that fails is logged and tried again later."""
    metrics.describe("gridwatch_retention_deleted_total", "Rows removed by retention, by table (pings: whole day partitions)")
    task_status.started()
    while True:
        try:
            swept = await sweep(store, retention, clock_ms())
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:  # the next sweep catches up
            log.warning("retention sweep failed: %s", exc)
        else:
            if swept.ping_days:
                metrics.inc("gridwatch_retention_deleted_total", len(swept.ping_days), table="pings_partitions")
                log.info("retention dropped the pings of %d day(s) up to %s", len(swept.ping_days),
                         f"{ms_to_datetime(swept.ping_days[-1] * DAY_MS):%Y-%m-%d}")
            for table, n in swept.deleted.items():
                if n:
                    metrics.inc("gridwatch_retention_deleted_total", n, table=table)
                    log.info("retention deleted %d row(s) of %s", n, table)
        await trio.sleep(retention.check_s)
