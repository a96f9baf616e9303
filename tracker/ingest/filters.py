"""Position filters: which decoded fixes become track points.

Pure and per device. Each filter can be switched off in ``[filters] enabled``; a refused
fix is counted by reason and kept for inspection (table ``filtered_fixes``), never
silently dropped. Late fixes are not refused: they are stored in fix-time order and
marked late. Invalid coordinates and impossible times are refused earlier, by the
decoders.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from protocols.coords import M_PER_DEG, distance_m
from protocols.model import DeviceClass, Fix

FILTERS = ("duplicate", "accuracy", "speed", "drift")


@dataclass(frozen=True, slots=True)
class FilterParams:
    enabled: frozenset[str] = frozenset(FILTERS)
    max_accuracy_m: float = 150.0
    max_speed_mps: dict = field(default_factory=lambda: {DeviceClass.COLLECTOR: 12.0, DeviceClass.VEHICLE: 50.0, DeviceClass.SENSOR: 2.0})
    drift_m: float = 15.0
    drift_classes: frozenset[DeviceClass] = frozenset({DeviceClass.SENSOR})
    duplicate_window: int = 256


@dataclass(slots=True)
class _DeviceMemory:
    device_class: DeviceClass | None = None
    seqs: set = field(default_factory=set)  # recent seq numbers, pruned in bulk
    max_seq: int = -1
    last: Fix | None = None  # newest accepted fix
    # the device's class decides these; kept here because hashing an enum member runs
    # Python code, once per fix if looked up in the parameters' tables
    max_speed_mps: float | None = None
    drifts: bool = False


class PositionFilter:
    def __init__(self, params: FilterParams) -> None:
        self.params = params
        self._memory: dict[str, _DeviceMemory] = {}
        enabled = params.enabled
        self._dedupe = "duplicate" in enabled
        self._accuracy = params.max_accuracy_m if "accuracy" in enabled else math.inf
        self._speed = "speed" in enabled
        self._drift = "drift" in enabled

    def _remember(self, fix: Fix, previous: _DeviceMemory | None) -> _DeviceMemory:
        """A device's memory, new or (when its class changed) with its recent seqs kept."""
        memory = _DeviceMemory(device_class=fix.device_class,
                               max_speed_mps=self.params.max_speed_mps.get(fix.device_class),
                               drifts=fix.device_class in self.params.drift_classes)
        if previous is not None:
            memory.seqs, memory.max_seq, memory.last = previous.seqs, previous.max_seq, previous.last
        return memory

    def screen_all(self, fixes: Iterable[Fix]) -> list[str | None]:
        """For each fix in turn, None when it is a track point, else the reason it is not
        (the pipeline calls it once per batch)."""
        memories = self._memory
        dedupe, max_acc, speed, drift = self._dedupe, self._accuracy, self._speed, self._drift
        drift_m = self.params.drift_m
        window = self.params.duplicate_window
        distance = distance_m
        reasons: list[str | None] = []
        verdict = reasons.append
        for fix in fixes:
            memory = memories.get(fix.device)
            if memory is None or memory.device_class is not fix.device_class:
                memory = memories[fix.device] = self._remember(fix, memory)
            last = memory.last
            seq, t = fix.seq, fix.t_ms
            if dedupe:
                if seq is not None:
                    if seq in memory.seqs:
                        verdict("duplicate")
                        continue
                elif last is not None and t == last.t_ms and fix.lat == last.lat and fix.lon == last.lon:
                    verdict("duplicate")
                    continue
            acc = fix.acc
            if acc is not None and acc > max_acc:
                verdict("accuracy")
                continue
            reason = None
            newer = last is None or t > last.t_ms
            if last is not None and newer:
                # a leg is never longer than |dlat| + |dlon| degrees of latitude: when that
                # bound settles a check, the fix needs no distance (most fixes, most checks)
                lat, lon = last.lat, last.lon
                reach = (abs(fix.lat - lat) + abs(fix.lon - lon)) * M_PER_DEG
                limit = memory.max_speed_mps
                if speed and limit is not None:
                    slack = (acc or 0.0) + (last.acc or 0.0)
                    budget = limit * (t - last.t_ms)
                    if (reach - slack) * 1000 > budget and (distance(lat, lon, fix.lat, fix.lon) - slack) * 1000 > budget:
                        verdict("speed")
                        continue
                if drift and memory.drifts and (reach < drift_m or distance(lat, lon, fix.lat, fix.lon) < drift_m):
                    reason = "drift"
            if seq is not None:
                seqs = memory.seqs
                seqs.add(seq)
                if seq > memory.max_seq:
                    memory.max_seq = seq
                if len(seqs) > 2 * window:
                    floor = memory.max_seq - window
                    memory.seqs = {s for s in seqs if s > floor}
            if reason is None and newer:
                memory.last = fix
            verdict(reason)
        return reasons
