"""The sensor monitor across restarts: each sensor's record as saved with its events, then
restored into a new monitor, on literal event times.

Covers mh-0007, mh-0008 and bin-0412 in Anning; the scenarios start at 10:00:00 Beijing
time on 23 November 2024.
"""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings, strategies as st

from alerts.sensor_rules import SensorRuleParams, SensorState
from alerts.sensors import SensorMonitor, SensorRecord
from protocols.sensor import MessageKind, SensorReading, SensorType

T0 = 1_732_327_200_000  # 10:00:00
SECOND = 1_000
MINUTE = 60 * SECOND
SILENT_AFTER = 30 * MINUTE
PARAMS = SensorRuleParams()
COMPONENTS = {"mh-0007": "6201050101000007", "mh-0008": "6201050101000008", "bin-0412": "6201050102000412"}


def at(seconds: float) -> int:
    return T0 + round(seconds * SECOND)


def reading(device: str, t_ms: int, kind: str = "status", alarm: str | None = None, **readings) -> SensorReading:
    sensor = SensorType.BIN if device.startswith("bin") else SensorType.MANHOLE
    return SensorReading(device, COMPONENTS[device], t_ms, t_ms + 800, MessageKind(kind), sensor, alarm=alarm, **readings)


class Saved:
    """The sensor_states table: each changed sensor's record, taken with its events."""

    def __init__(self) -> None:
        self.records: dict[str, SensorRecord] = {}

    def take(self, monitor: SensorMonitor) -> None:
        self.records.update((r.device, r) for r in monitor.take_changes())

    def restart(self) -> SensorMonitor:
        """A new monitor on what was saved, through JSON with keys sorted as jsonb does."""
        monitor = SensorMonitor(PARAMS, SILENT_AFTER)
        monitor.restore(
            replace(r, rules=SensorState.from_dict(json.loads(json.dumps(r.rules.to_dict(), sort_keys=True))))
            for r in self.records.values()
        )
        return monitor


def run(monitor: SensorMonitor, saved: Saved, *steps) -> list[tuple]:
    """Readings, and ints as watchdog ticks; (device, kind, t, raised) of each event."""
    events = []
    for step in steps:
        events += monitor.tick(step) if isinstance(step, int) else monitor.observe([step])
        saved.take(monitor)
    return [(e.device, e.kind, e.t_ms, e.raised) for e in events]


def test_a_recovery_after_a_restart_clears_the_tilt_raised_before_it():
    monitor, saved = SensorMonitor(PARAMS, SILENT_AFTER), Saved()
    before = run(monitor, saved, reading("mh-0007", at(0), "alarm", "tilt", tilt=35.0), at(2))
    after = run(saved.restart(), saved, reading("mh-0007", at(300), "recovery", "tilt", tilt=0.4), at(301))
    assert (before, after) == ([("mh-0007", "tilt", at(0), True)], [("mh-0007", "tilt", at(300), False)])


def test_a_tilt_debounced_across_a_restart_is_raised_once_by_the_next_tick():
    monitor, saved = SensorMonitor(PARAMS, SILENT_AFTER), Saved()
    before = run(monitor, saved, reading("mh-0007", at(0), "alarm", "tilt", tilt=61.0), at(1))
    restarted = saved.restart()
    after = run(restarted, saved, at(5), at(6), reading("mh-0007", at(7), tilt=61.0))
    assert (before, after) == ([], [("mh-0007", "tilt", at(0), True)])


def test_the_silent_timer_runs_on_across_a_restart():
    monitor, saved = SensorMonitor(PARAMS, SILENT_AFTER), Saved()
    run(monitor, saved, reading("mh-0008", at(0), tilt=0.5), at(600))
    restarted = saved.restart()
    # heard at 10:00:00.800: silent once half an hour has passed since, not since the restart
    assert run(restarted, saved, at(1800), at(1801), at(3600)) == [("mh-0008", "silent", at(1801), True)]


def test_a_sensor_declared_silent_before_a_restart_is_not_declared_again_and_clears_when_heard():
    monitor, saved = SensorMonitor(PARAMS, SILENT_AFTER), Saved()
    before = run(monitor, saved, reading("bin-0412", at(0), fill=10.0), at(1801))
    restarted = saved.restart()
    after = run(restarted, saved, at(2400), reading("bin-0412", at(3000), fill=12.0), at(3001))
    assert (before, after) == ([("bin-0412", "silent", at(1801), True)], [("bin-0412", "silent", at(3000) + 800, False)])


def test_ticks_that_change_nothing_leave_nothing_to_save():
    monitor = SensorMonitor(PARAMS, SILENT_AFTER)
    monitor.observe([reading("mh-0007", at(0), tilt=0.5), reading("bin-0412", at(1), fill=30.0)])
    first = [r.device for r in monitor.take_changes()]
    monitor.tick(at(10))
    monitor.tick(at(20))
    assert (first, monitor.take_changes()) == (["bin-0412", "mh-0007"], [])


def test_a_tick_that_matures_a_tilt_marks_the_cover_changed():
    monitor = SensorMonitor(PARAMS, SILENT_AFTER)
    monitor.observe([reading("mh-0007", at(0), "alarm", "tilt", tilt=35.0)])
    monitor.take_changes()
    monitor.tick(at(2))
    (saved,) = monitor.take_changes()
    assert (saved.device, saved.rules.conditions["tilt"].emitted, saved.last_seen_ms, saved.silent) == (
        "mh-0007", True, at(0) + 800, False)


def test_sensors_without_a_saved_record_resume_from_the_open_episodes_of_the_outbox():
    monitor = SensorMonitor(PARAMS, SILENT_AFTER)
    monitor.restore([SensorRecord("mh-0008", COMPONENTS["mh-0008"], at(0), False, SensorState())])
    resumed = monitor.resume_open([
        ("mh-0007", COMPONENTS["mh-0007"], "tilt", True, 35.0),
        ("mh-0007", COMPONENTS["mh-0007"], "low_battery", False, 31.0),
        ("bin-0412", COMPONENTS["bin-0412"], "silent", True, 45.0),
        ("mh-0008", COMPONENTS["mh-0008"], "tilt", True, 20.0),  # has a record: that one stands
    ])
    events = run(monitor, Saved(),
                 at(60), reading("mh-0007", at(120), "recovery", "tilt", tilt=0.4),
                 reading("bin-0412", at(180), fill=10.0), reading("mh-0008", at(240), tilt=0.3))
    assert resumed == ["bin-0412", "mh-0007"]
    assert events == [("mh-0007", "tilt", at(120), False), ("bin-0412", "silent", at(180) + 800, False)]


def test_sensors_resumed_from_the_outbox_are_marked_to_be_saved():
    monitor = SensorMonitor(PARAMS, SILENT_AFTER)
    monitor.resume_open([("mh-0007", COMPONENTS["mh-0007"], "tilt", True, 35.0)])
    (record,) = monitor.take_changes()
    assert (record.device, record.last_seen_ms, record.silent, record.rules.conditions["tilt"].emitted) == (
        "mh-0007", None, False, True)


@st.composite
def _three_covers(draw) -> list:
    """A morning of the three sensors: records (some late) and watchdog ticks, some far apart."""
    t = T0
    steps: list = []
    for _ in range(draw(st.integers(0, 24))):
        t += draw(st.sampled_from([0, SECOND, 2 * SECOND, MINUTE, 20 * MINUTE, 31 * MINUTE]))
        if draw(st.booleans()):
            steps.append(t)
            continue
        device = draw(st.sampled_from(sorted(COMPONENTS)))
        late = draw(st.sampled_from([0, 0, 10 * SECOND]))
        if device.startswith("bin"):
            steps.append(reading(device, t - late, fill=draw(st.sampled_from([10.0, 75.0, 90.0]))))
        else:
            kind = draw(st.sampled_from(["status", "alarm", "recovery"]))
            tilt = draw(st.sampled_from([0.0, 35.0]))
            steps.append(reading(device, t - late, kind, None if kind == "status" else "tilt", tilt=tilt))
    return steps


@settings(max_examples=150, deadline=None)
@given(_three_covers())
def test_a_restart_anywhere_gives_the_same_events_as_never_stopping(steps):
    expected = run(SensorMonitor(PARAMS, SILENT_AFTER), Saved(), *steps)
    for cut in range(len(steps) + 1):
        monitor, saved = SensorMonitor(PARAMS, SILENT_AFTER), Saved()
        said = run(monitor, saved, *steps[:cut])
        rest = run(saved.restart(), saved, *steps[cut:])
        for device in COMPONENTS:  # a tick's events of several sensors may come in another order
            assert [e for e in said + rest if e[0] == device] == [e for e in expected if e[0] == device]
