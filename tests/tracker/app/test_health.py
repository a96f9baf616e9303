"""What /healthz says, in order of what matters: the database, the persistence lag, the
broker; computed from the service's parts (fakes here) on an injected clock."""

from __future__ import annotations

from dataclasses import dataclass

from tracker.app.commands import service_health
from tracker.storage.retry import DatabaseState

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass
class FakeBroker:
    connected: bool = True


@dataclass
class FakePipeline:
    lag_s: float = 0.0
    broker: FakeBroker | None = None

    def persist_lag_s(self) -> float:
        return self.lag_s


def database(down: bool = False) -> DatabaseState:
    state = DatabaseState(clock_ms=lambda: T0 + 1500)
    if down:
        state.failed(ConnectionRefusedError(111, "Connection refused"))
    return state


def test_all_well():
    assert service_health(database(), FakePipeline(2.0, FakeBroker()), 30.0) == (True, "ok")


def test_the_database_down_comes_first_with_the_time_it_went():
    assert service_health(database(down=True), FakePipeline(45.0, None), 30.0) == (
        False, "database unavailable since 2026-01-01T00:00:01Z: [Errno 111] Connection refused")


def test_a_service_still_starting_is_not_healthy():
    assert service_health(database(), None, 30.0) == (False, "starting: reading state from the database")
    assert service_health(database(down=True), None, 30.0)[1].startswith("database unavailable since 2026-01-01T00:00:01Z")


def test_persistence_lag_over_the_bound():
    assert service_health(database(), FakePipeline(31.4, FakeBroker()), 30.0) == (
        False, "persistence lag 31 s over the bound 30 s")
    assert service_health(database(), FakePipeline(30.0, FakeBroker()), 30.0) == (True, "ok")


def test_the_broker_connection_down():
    for broker in (None, FakeBroker(connected=False)):
        assert service_health(database(), FakePipeline(0.0, broker), 30.0) == (
            False, "not connected to the MQTT broker")
