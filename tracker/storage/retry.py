"""Riding out database outages: which errors are worth retrying, the backoff between
attempts, and the database's state as the service sees it (up, or down since when and why).

The service never dies of an outage or a stall, however long: a write that fails for a
reason time can fix waits and tries again, and whatever it holds stays held. Upstream the
bounded channels fill and push back to the sources (the broker reader stops reading, JT/T
808 terminals go unacknowledged and keep their reports). An error that no retry can fix
(bad data, a violated constraint, a missing table) is raised at once instead of looping.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import asyncpg
import trio

from protocols.epoch import ms_to_datetime
from tracker.clock import Clock, wall_clock_ms
from tracker.metrics import Metrics

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# SQLSTATE classes and codes (PostgreSQL Appendix A) that a later attempt may get past.
# Everything else, notably 22 (data exception), 23 (integrity constraint violation),
# 42 (syntax error or access rule violation), 28 (invalid authorization), 0A (feature not
# supported) and XX (internal error), says the statement itself is wrong: retrying would
# loop for ever on the same answer, so it is raised.
RETRYABLE_SQLSTATE_CLASSES = frozenset({
    "08",  # connection exception: the server went away or refused the connection
    "40",  # transaction rollback: serialization failure, deadlock detected
    "53",  # insufficient resources: too many connections, disk full, out of memory
    "58",  # system error: I/O error on the server
})
RETRYABLE_SQLSTATES = frozenset({
    "57P01",  # admin_shutdown: the server is stopping (pg_ctl stop -m fast)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: the server is starting up or shutting down
    "57014",  # query_canceled: a statement_timeout or a cancel from outside
    "55P03",  # lock_not_available: lock_timeout
})


def retryable(exc: BaseException) -> bool:
    """Whether a later attempt of the same operation may succeed."""
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state[:2] in RETRYABLE_SQLSTATE_CLASSES or state in RETRYABLE_SQLSTATES
    if isinstance(exc, asyncpg.exceptions.ClientConfigurationError):
        return False  # a bad DSN or option: only an operator can fix it
    # the connection is closed or broken under asyncpg, the server cannot be reached,
    # or a statement outran command_timeout (a stall: a lock, a checkpoint, a busy disk).
    # "another operation is in progress" (InternalClientError) is a connection an outage
    # left mid-operation: the pools are reset before the next attempt, so it clears.
    return isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError, OSError, TimeoutError))


def stalled(exc: BaseException) -> bool:
    """A statement outran its time (command_timeout, statement_timeout, lock_timeout)."""
    if isinstance(exc, asyncpg.PostgresError):
        return getattr(exc, "sqlstate", None) in ("57014", "55P03")
    return isinstance(exc, TimeoutError)


def _text(exc: BaseException) -> str:
    text = str(exc) or ("statement timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
    return " ".join(text.split())[:300]


class DatabaseState:
    """The database as the service sees it, and the one retry loop of its write path.

    ``retrying`` runs an operation until it succeeds or fails for a reason retrying cannot
    fix. Between attempts it waits (a short first retry, doubling up to ``max_s``, jittered
    so that many writers do not hammer a recovering server in step) and calls
    ``reconnect`` so that the pools drop connections the outage left dead. Time goes by
    trio's clock; "down since" by the service's clock.
    """

    def __init__(self, metrics: Metrics | None = None, clock_ms: Clock | None = None, *, first_s: float = 0.05,
                 max_s: float = 5.0, jitter: Callable[[], float] = random.random) -> None:
        self.metrics = metrics or Metrics()
        self.clock_ms = clock_ms or wall_clock_ms
        self.first_s = first_s
        self.max_s = max_s
        self.jitter = jitter
        self.down_since_ms: int | None = None
        self.error = ""
        self.reconnect: Callable[[], Awaitable[None]] | None = None
        self.metrics.describe("gridwatch_database_retries_total", "Database operations retried after an outage or a stall, by operation")
        self.metrics.gauge("gridwatch_database_up", lambda: float(self.up), "1 while the database answers")

    @property
    def up(self) -> bool:
        return self.down_since_ms is None

    def reason(self) -> str:
        """Why the database is not usable, for /healthz; "" while it is up."""
        if self.down_since_ms is None:
            return ""
        since = ms_to_datetime(self.down_since_ms).isoformat(timespec="seconds").replace("+00:00", "Z")
        return f"database unavailable since {since}: {self.error}"

    def delay_s(self, attempt: int) -> float:
        """The wait before retry ``attempt`` (1, 2, ...): half fixed, half random."""
        ceiling = min(self.max_s, self.first_s * 2 ** min(attempt - 1, 30))
        return ceiling * (0.5 + 0.5 * self.jitter())

    def failed(self, exc: BaseException) -> None:
        self.error = _text(exc)
        if self.down_since_ms is None:
            self.down_since_ms = self.clock_ms()
            log.warning("database unavailable (%s): holding writes and retrying", self.error)

    def succeeded(self) -> None:
        if self.down_since_ms is not None:
            log.info("database available again after %.1f s", (self.clock_ms() - self.down_since_ms) / 1000)
            self.down_since_ms = None
            self.error = ""

    async def retrying(self, what: str, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """``await fn(*args, **kwargs)``, again and again while it fails retryably."""
        attempt = 0
        while True:
            try:
                result = await fn(*args, **kwargs)
            except Exception as exc:
                if not retryable(exc):
                    if isinstance(exc, asyncpg.PostgresError):
                        self.succeeded()  # the server answered: it is up, the statement is wrong
                    raise
                attempt += 1
                if stalled(exc):
                    # the server answers but this statement could not finish in time (a held
                    # lock, a slow disk): the database is not down, the persistence lag shows it
                    self.error = _text(exc)
                else:
                    self.failed(exc)
                self.metrics.inc("gridwatch_database_retries_total", operation=what)
                if attempt == 1 or attempt % 20 == 0:
                    log.warning("%s failed (%s), retry %d", what, self.error, attempt)
                await trio.sleep(self.delay_s(attempt))
                if self.reconnect is not None:
                    try:
                        await self.reconnect()
                    except Exception as reconnect_error:  # the next attempt reports the same outage
                        if not retryable(reconnect_error):
                            raise
                continue
            self.succeeded()
            return result
