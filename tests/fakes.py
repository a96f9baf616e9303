"""Stand-ins for the database and the pipeline where a test times or counts what reaches them."""

from __future__ import annotations

import collections
from collections.abc import Sequence

import trio

from protocols.jt808.session import VehicleAlarm
from protocols.model import Fix


class RecordingStore:
    """Stands in for the database in timing tests: records what was written and when."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, int]] = []
        self.alarm_batches: list[list[tuple]] = []
        self.sensor_states: dict[str, tuple] = {}  # device → its latest saved row
        self.dead: list[tuple] = []
        self.readings: list[tuple] = []
        self.hold: trio.Event | None = None  # writes wait for it: a commit that takes its time

    async def write_pings(self, rows, days, devices, filtered=(), alarms=(), components=()) -> int:
        if self.hold is not None:
            await self.hold.wait()
        if rows:
            self.writes.append((trio.current_time(), len(rows)))
        if alarms:
            self.alarm_batches.append(list(alarms))
        return len(rows)  # every row new

    async def record_alarms(self, alarms, sensors=()) -> None:
        if self.hold is not None:
            await self.hold.wait()
        if alarms:
            self.alarm_batches.append(list(alarms))
        self.sensor_states.update((row[0], row) for row in sensors)

    async def add_dead_letters(self, rows) -> None:
        self.dead.extend(rows)

    async def add_sensor_readings(self, rows) -> None:
        self.readings.extend(rows)


class RecordingSink:
    def __init__(self) -> None:
        self.got_fixes: list[Fix] = []
        self.got_heard: list[tuple[str, int]] = []
        self.got_alarms: list[VehicleAlarm] = []
        self.rejects: collections.Counter[str] = collections.Counter()
        self.tolerated_counts: collections.Counter[str] = collections.Counter()
        self.hold = None  # an Event: fixes() waits for it, to play a pipeline pushing back

    async def fixes(self, fixes: list[Fix]) -> None:
        if self.hold is not None:
            await self.hold.wait()
        self.got_fixes.extend(fixes)

    async def alarms(self, alarms: list[VehicleAlarm], fixes: Sequence[Fix] = ()) -> None:
        self.got_alarms.extend(alarms)

    def heard(self, device: str, rx_ms: int) -> None:
        self.got_heard.append((device, rx_ms))

    def rejected(self, protocol: str, reason: str, raw: bytes, peer: str) -> None:
        assert protocol == "jt808"
        self.rejects[reason] += 1

    def tolerated(self, protocol: str, reason: str, raw: bytes, peer: str) -> None:
        assert protocol == "jt808"
        self.tolerated_counts[reason] += 1


