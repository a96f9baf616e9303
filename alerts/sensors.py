"""Keeps each sensor's rule state and heartbeat; turns readings and ticks into alarms.

No I/O: the pipeline feeds it readings and, from its watchdog, the time.

Restarts. What the service says about a sensor rests on state built up over time: the
alarms consumers were told are raised (lose them and a recovery clears nothing, the
alarm stays raised for good), a tilt being debounced, the toggles counting towards
flapping, when the sensor was last heard and whether it was declared silent. All of it
is one :class:`SensorRecord` per sensor. Every change marks the sensor, and
:meth:`SensorMonitor.take_changes` hands over the records of the marked sensors right
after the readings or the tick that changed them; the pipeline saves them in the same
transaction as the alarm events those changes produced. The saved state and the outbox
therefore never disagree: after a crash both stand where the last committed batch left
them, what was in flight is missing from both, and the restored monitor neither repeats
an event consumers have nor owes one they lack.

Not a periodic checkpoint: one taken between two batches is ahead of the outbox or
behind it, and a restart then loses events (a recovery already saved as "not raised"
whose event never was) or doubles them (a tilt raised twice). Not a rebuild from the
outbox alone: it holds what was said, not what was under way (a debounce, the toggles,
the silent timer). It remains the fallback for sensors with no usable saved record (a
database from before records were saved): :meth:`SensorMonitor.resume_open`. The cost
is one upsert per changed sensor per batch; a sensor changes when it reports, or on a
tick that matures or settles one of its conditions or declares it silent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from alerts.sensor_rules import (
    ComponentAlarm,
    SensorRuleParams,
    SensorState,
    advance,
    resumed,
    silent_sensors,
    update,
)
from protocols.sensor import SensorReading

SILENT = "silent"


@dataclass(frozen=True, slots=True)
class SensorRecord:
    """What a restart must keep of one sensor."""

    device: str
    component: str
    last_seen_ms: int | None  # receive time of its newest record: the silent timer runs from it
    silent: bool  # declared silent, not heard since
    rules: SensorState


class SensorMonitor:
    def __init__(self, params: SensorRuleParams, silent_after_ms: int) -> None:
        self.params = params
        self.silent_after_ms = silent_after_ms
        self.states: dict[str, SensorState] = {}
        self.last_seen: dict[str, int] = {}  # device → receive time, epoch ms
        self.components: dict[str, str] = {}
        self.silent: set[str] = set()
        self._changed: set[str] = set()  # devices whose record changed since take_changes

    def observe(self, readings: Iterable[SensorReading]) -> list[ComponentAlarm]:
        alarms: list[ComponentAlarm] = []
        for r in sorted(readings, key=lambda r: r.t_ms):
            self.components[r.device] = r.component
            self.last_seen[r.device] = max(self.last_seen.get(r.device, 0), r.rx_ms)
            if r.device in self.silent:
                self.silent.discard(r.device)
                alarms.append(ComponentAlarm(r.device, r.component, SILENT, r.rx_ms, False, None, "heard again"))
            state, events = update(self.states.get(r.device, SensorState()), r, self.params)
            self.states[r.device] = state
            self._changed.add(r.device)
            alarms.extend(events)
        return alarms

    def tick(self, now_ms: int) -> list[ComponentAlarm]:
        """Debounced conditions that matured with no new message, and silent sensors."""
        alarms: list[ComponentAlarm] = []
        for device, state in list(self.states.items()):
            new, events = advance(state, now_ms, self.params)
            if new != state:
                self.states[device] = new
                self._changed.add(device)
            alarms.extend(events)
        for device in silent_sensors(self.last_seen, now_ms, self.silent_after_ms):
            if device not in self.silent:
                self.silent.add(device)
                self._changed.add(device)
                quiet_min = (now_ms - self.last_seen[device]) / 60_000
                alarms.append(ComponentAlarm(device, self.components[device], SILENT, now_ms, True, round(quiet_min, 1),
                                             f"no message for {quiet_min:.0f} min"))
        return alarms

    def forget(self, devices: Iterable[str]) -> int:
        """Drop what is held of these sensors (a ceiling on how many are remembered);
        one with a change not yet taken is kept. Returns how many went."""
        gone = 0
        for device in devices:
            if device in self._changed or device not in self.components:
                continue
            del self.components[device]
            self.states.pop(device, None)
            self.last_seen.pop(device, None)
            self.silent.discard(device)
            gone += 1
        return gone

    # --- surviving a restart ---------------------------------------------------------------

    def record(self, device: str) -> SensorRecord:
        return SensorRecord(device, self.components[device], self.last_seen.get(device), device in self.silent,
                            self.states.get(device, SensorState()))

    def take_changes(self) -> list[SensorRecord]:
        """Records of the sensors changed since the last call: save them with the alarm
        events returned since, in one transaction."""
        changed, self._changed = self._changed, set()
        return [self.record(device) for device in sorted(changed)]

    def restore(self, records: Iterable[SensorRecord]) -> None:
        """Resume each sensor where its saved record left it."""
        for rec in records:
            self.components[rec.device] = rec.component
            self.states[rec.device] = rec.rules
            if rec.last_seen_ms is not None:
                self.last_seen[rec.device] = rec.last_seen_ms
            else:
                self.last_seen.pop(rec.device, None)
            if rec.silent:
                self.silent.add(rec.device)
            else:
                self.silent.discard(rec.device)

    def resume_open(self, latest: Iterable[tuple[str, str, str, bool, float | None]]) -> list[str]:
        """Sensors not known yet, from the newest alarm event of each (device, kind) in
        the outbox: ``(device, component, kind, raised, value)``. Returns them, marked
        changed so that their records get saved.

        What was raised and not cleared stays raised until the sensor says otherwise
        (:func:`~alerts.sensor_rules.resumed`); a sensor declared silent stays so until
        heard. When such a sensor was last heard is not in the outbox: its silent timer
        starts with its next record.
        """
        open_alarms: dict[str, dict[str, float | None]] = {}
        components: dict[str, str] = {}
        for device, component, kind, raised, value in latest:
            if device in self.components:
                continue
            components[device] = component
            if raised:
                open_alarms.setdefault(device, {})[kind] = value
        for device, component in components.items():
            still_open = open_alarms.get(device, {})
            self.components[device] = component
            if SILENT in still_open:
                del still_open[SILENT]
                self.silent.add(device)
            self.states[device] = resumed(device, component, still_open, None)
            self._changed.add(device)
        return sorted(components)
