"""What the write path retries, how long it waits between attempts, and the database's
state as health reports it: on trio's MockClock, so a minute of outage takes no time."""

from __future__ import annotations

import asyncpg
import pytest
import trio

from tracker.metrics import Metrics
from tracker.storage.retry import DatabaseState, retryable, stalled

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def pg_error(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls("from the server")


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "Connection refused"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.exceptions.InternalClientError("cannot perform operation: another operation is in progress"),
    TimeoutError(),
    pg_error(asyncpg.CannotConnectNowError),  # 57P03: starting up
    pg_error(asyncpg.AdminShutdownError),  # 57P01: pg_ctl stop -m fast
    pg_error(asyncpg.TooManyConnectionsError),  # 53300
    pg_error(asyncpg.SerializationError),  # 40001
    pg_error(asyncpg.DeadlockDetectedError),  # 40P01
    pg_error(asyncpg.QueryCanceledError),  # 57014: statement_timeout
    pg_error(asyncpg.LockNotAvailableError),  # 55P03: lock_timeout
], ids=type)
def test_outages_and_stalls_are_retried(exc):
    assert retryable(exc)


@pytest.mark.parametrize("exc", [
    pg_error(asyncpg.UniqueViolationError),  # 23505
    pg_error(asyncpg.NotNullViolationError),  # 23502
    pg_error(asyncpg.InvalidTextRepresentationError),  # 22P02: bad data
    pg_error(asyncpg.NumericValueOutOfRangeError),  # 22003
    pg_error(asyncpg.UndefinedTableError),  # 42P01
    pg_error(asyncpg.InsufficientPrivilegeError),  # 42501
    pg_error(asyncpg.InvalidPasswordError),  # 28P01
    asyncpg.exceptions.ClientConfigurationError("invalid DSN"),
    ValueError("a bug"),
    KeyError("a bug"),
], ids=type)
def test_errors_a_retry_cannot_fix_are_not_retried(exc):
    assert not retryable(exc)


def test_only_timeouts_count_as_stalls():
    assert stalled(TimeoutError()) and stalled(pg_error(asyncpg.QueryCanceledError))
    assert not stalled(ConnectionRefusedError()) and not stalled(pg_error(asyncpg.AdminShutdownError))


def test_backoff_starts_short_doubles_and_is_capped_with_jitter():
    low = DatabaseState(first_s=0.05, max_s=5.0, jitter=lambda: 0.0)
    high = DatabaseState(first_s=0.05, max_s=5.0, jitter=lambda: 1.0)
    assert [high.delay_s(n) for n in (1, 2, 3, 4)] == [0.05, 0.1, 0.2, 0.4]
    assert [low.delay_s(n) for n in (1, 2, 3)] == [0.025, 0.05, 0.1]
    assert high.delay_s(8) == 5.0 and high.delay_s(10_000) == 5.0
    assert low.delay_s(10_000) == 2.5


class Flaky:
    """Fails with the given errors in turn, then answers 42; counts the reconnects."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.reconnects = 0

    async def __call__(self, value: int) -> int:
        self.calls += 1
        await trio.sleep(0)
        if self.errors:
            raise self.errors.pop(0)
        return value

    async def reconnect(self) -> None:
        self.reconnects += 1


async def test_an_outage_is_waited_out_and_reported_down_until_the_first_success(autojump_clock):
    now = [T0]
    metrics = Metrics()
    state = DatabaseState(metrics, lambda: now[0], first_s=0.1, max_s=2.0, jitter=lambda: 1.0)
    refused = ConnectionRefusedError(111, "Connection refused")
    flaky = Flaky(*[refused] * 40)
    state.reconnect = flaky.reconnect
    seen: list[tuple[bool, str]] = []

    async def watch() -> None:
        while True:
            await trio.sleep(1)
            now[0] += 1000
            seen.append((state.up, state.reason()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        start = trio.current_time()
        assert await state.retrying("write_pings", flaky, 42) == 42
        waited = trio.current_time() - start
        nursery.cancel_scope.cancel()
    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6, then 35 waits at the 2 s cap
    assert waited == pytest.approx(3.1 + 35 * 2.0)
    assert flaky.calls == 41 and flaky.reconnects == 40
    assert metrics.get("gridwatch_database_retries_total", operation="write_pings") == 40
    assert seen[0] == (False, "database unavailable since 2026-01-01T00:00:00Z: [Errno 111] Connection refused")
    assert state.up and state.reason() == ""
    assert "gridwatch_database_up 1.0" in metrics.render()


async def test_the_gauge_reads_zero_while_down(autojump_clock):
    metrics = Metrics()
    state = DatabaseState(metrics, lambda: T0, jitter=lambda: 0.5)
    state.failed(OSError("Connection refused"))
    assert "gridwatch_database_up 0.0" in metrics.render()
    assert not state.up


async def test_a_constraint_violation_is_raised_at_once_not_retried(autojump_clock):
    state = DatabaseState(clock_ms=lambda: T0)
    flaky = Flaky(pg_error(asyncpg.UniqueViolationError))
    with pytest.raises(asyncpg.UniqueViolationError):
        await state.retrying("write_pings", flaky, 1)
    assert flaky.calls == 1 and state.up


async def test_a_stall_is_retried_without_calling_the_database_down(autojump_clock):
    state = DatabaseState(clock_ms=lambda: T0, first_s=0.5, max_s=0.5)
    flaky = Flaky(TimeoutError(), TimeoutError(), TimeoutError())
    assert await state.retrying("write_pings", flaky, 7) == 7
    assert flaky.calls == 4 and state.up


async def test_after_an_outage_a_constraint_violation_still_surfaces(autojump_clock):
    state = DatabaseState(clock_ms=lambda: T0)
    flaky = Flaky(OSError("Connection refused"), pg_error(asyncpg.NotNullViolationError))
    with pytest.raises(asyncpg.NotNullViolationError):
        await state.retrying("record_alarms", flaky, 1)
    assert flaky.calls == 2 and state.up  # the server answered, so it is up
