"""Keeps each sensor's rule state and heartbeat; turns readings and ticks into alarms.

No I/O: the pipeline feeds it readings and, from its watchdog, the time.
"""

from __future__ import annotations

from collections.abc import Iterable

from alerts.sensor_rules import ComponentAlarm, SensorRuleParams, SensorState, advance, silent_sensors, update
from protocols.sensor import SensorReading


class SensorMonitor:
    def __init__(self, params: SensorRuleParams, silent_after_ms: int) -> None:
        self.params = params
        self.silent_after_ms = silent_after_ms
        self.states: dict[str, SensorState] = {}
        self.last_seen: dict[str, int] = {}  # device → receive time, epoch ms
        self.components: dict[str, str] = {}
        self.silent: set[str] = set()

    def observe(self, readings: Iterable[SensorReading]) -> list[ComponentAlarm]:
        alarms: list[ComponentAlarm] = []
        for r in sorted(readings, key=lambda r: r.t_ms):
            self.components[r.device] = r.component
            self.last_seen[r.device] = max(self.last_seen.get(r.device, 0), r.rx_ms)
            if r.device in self.silent:
                self.silent.discard(r.device)
                alarms.append(ComponentAlarm(r.device, r.component, "silent", r.rx_ms, False, None, "heard again"))
            state, events = update(self.states.get(r.device, SensorState()), r, self.params)
            self.states[r.device] = state
            alarms.extend(events)
        return alarms

    def tick(self, now_ms: int) -> list[ComponentAlarm]:
        """Debounced conditions that matured with no new message, and silent sensors."""
        alarms: list[ComponentAlarm] = []
        for device, state in list(self.states.items()):
            state, events = advance(state, now_ms, self.params)
            self.states[device] = state
            alarms.extend(events)
        for device in silent_sensors(self.last_seen, now_ms, self.silent_after_ms):
            if device not in self.silent:
                self.silent.add(device)
                quiet_min = (now_ms - self.last_seen[device]) / 60_000
                alarms.append(ComponentAlarm(device, self.components[device], "silent", now_ms, True, round(quiet_min, 1),
                                             f"no message for {quiet_min:.0f} min"))
        return alarms
