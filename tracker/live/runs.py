"""When the service observed: its runs recorded in the database (start, a heartbeat while
it runs, a clean stop), so that coverage of a time no run covered is reported as having
no data rather than as 0%. A run that never stopped cleanly ended at its last heartbeat."""

from __future__ import annotations

from collections.abc import Callable

import trio

from protocols.epoch import datetime_to_ms, ms_to_datetime
from tracker.storage.retry import retryable
from tracker.storage.store import Store

HEARTBEAT_S = 30.0  # a crash costs at most this much of observed time


class ServiceRuns:
    def __init__(self, store: Store, clock_ms: Callable[[], int]) -> None:
        self.store = store
        self.clock_ms = clock_ms
        self.run_id: int | None = None
        self.started_ms: int | None = None

    async def start(self) -> None:
        self.started_ms = self.clock_ms()
        self.run_id = await self.store.run_started(ms_to_datetime(self.started_ms))

    async def heartbeats(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(HEARTBEAT_S)
            if self.run_id is None:
                continue
            try:
                await self.store.run_heartbeat(self.run_id, ms_to_datetime(self.clock_ms()))
            except Exception as exc:
                if not retryable(exc):
                    raise
                # the database is down: the next heartbeat records that the run went on


    async def stop(self) -> None:
        if self.run_id is not None:
            await self.store.run_heartbeat(self.run_id, ms_to_datetime(self.clock_ms()), stopped=True)

    async def periods(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Observed periods overlapping [start_ms, end_ms), as epoch ms; this run's up to now."""
        stored = await self.store.runs_between(ms_to_datetime(start_ms), ms_to_datetime(end_ms))
        periods = [(datetime_to_ms(s), datetime_to_ms(e)) for s, e in stored]
        if self.started_ms is not None:
            periods.append((self.started_ms, max(self.clock_ms(), self.started_ms) + 1))
        return periods
