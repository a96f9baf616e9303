"""Patrol alerts: pure rules over coverage facts, driven by fix time and a watchdog's now.

An alert's identity is (kind, collector, slot id, unit grid or None). ``evaluate`` works out
which alerts hold at ``now_ms`` on the fixes known so far and reports how that differs
from the alerts already open: raised, updated or resolved. When a condition stops holding,
its alert is resolved as follows. If the fixes now known show the condition did not hold
when the alert was raised, the resolution is DISPROVED: a late batch proved the grid was
covered, or that the handset was recording all along. Otherwise it is CLEARED. If the
condition comes back later in the same slot, the same key is raised again as a new episode.

Conditions about the collector (offline, off_grid, stationary, battery_low, not_started)
are judged as of min(now, slot end). One that still holds when the slot ends stays open as
a record of how the slot ended, until late fixes disprove it or ``prune`` drops it.
``grid_not_covered`` is judged at slot end; ``coverage_warning`` looks ahead before it and
resolves as SLOT_ENDED when the slot ends with grids still short.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Protocol

from geofence.coverage import CoverageState, GridCoverage
from geofence.schedule import Schedule, Slot
from geofence.territory import CoverageRule, Territory

_MIN = 60_000
CHECKPOINT_VERSION = 1


class AlertKind(enum.StrEnum):
    GRID_NOT_COVERED = "grid_not_covered"
    COVERAGE_WARNING = "coverage_warning"
    OFFLINE = "offline"
    OFF_GRID = "off_grid"
    STATIONARY = "stationary"
    BATTERY_LOW = "battery_low"
    NOT_STARTED = "not_started"


class Change(enum.StrEnum):
    RAISED = "raised"
    UPDATED = "updated"
    RESOLVED = "resolved"


class Resolution(enum.StrEnum):
    CLEARED = "condition cleared"
    DISPROVED = "late fixes show it did not happen"
    SLOT_ENDED = "slot ended"
    UNSCHEDULED = "slot withdrawn from the schedule"


class AlertKey(NamedTuple):
    kind: AlertKind
    collector: str
    slot_id: str
    grid: str | None


# Detail fields that move with the clock or every fix; a change in them alone is no update.
_VOLATILE = frozenset({"minutes", "minutes_left", "battery_pct", "battery_at_ms"})


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert episode; ``detail`` holds JSON-able facts behind it."""

    kind: AlertKind
    slot: Slot
    grid: str | None
    raised_at_ms: int
    updated_at_ms: int
    detail: dict[str, Any]
    resolved_at_ms: int | None = None
    resolution: Resolution | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AlertKind(self.kind))
        object.__setattr__(self, "detail", dict(self.detail))
        if (self.grid is None) == (self.kind is AlertKind.GRID_NOT_COVERED):
            raise ValueError(f"{self.kind} alert with grid {self.grid!r}")
        if (self.resolved_at_ms is None) != (self.resolution is None):
            raise ValueError("an alert is resolved with both a time and a resolution, or open")
        if self.resolution is not None:
            object.__setattr__(self, "resolution", Resolution(self.resolution))
        if not self.raised_at_ms <= self.updated_at_ms <= (self.resolved_at_ms or math.inf):
            raise ValueError("alert times out of order")

    @property
    def collector(self) -> str:
        return self.slot.collector

    @property
    def key(self) -> AlertKey:
        return AlertKey(self.kind, self.slot.collector, self.slot.id, self.grid)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind), "collector": self.collector, "slot_id": self.slot.id,
            "slot": self.slot.to_dict(), "grid": self.grid,
            "raised_at_ms": self.raised_at_ms, "updated_at_ms": self.updated_at_ms,
            "detail": self.detail, "resolved_at_ms": self.resolved_at_ms,
            "resolution": None if self.resolution is None else self.resolution.name.lower(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        resolution = data.get("resolution")
        return cls(
            kind=AlertKind(data["kind"]), slot=Slot.from_dict(data["slot"]),
            grid=data.get("grid"), raised_at_ms=int(data["raised_at_ms"]),
            updated_at_ms=int(data["updated_at_ms"]), detail=dict(data["detail"]),
            resolved_at_ms=data.get("resolved_at_ms"),
            resolution=None if resolution is None else Resolution[resolution.upper()])


@dataclass(frozen=True, slots=True)
class AlertChange:
    change: Change
    alert: Alert


class RuleSource(Protocol):
    """A ``CoverageRule`` (one for every area) or ``CoverageRules`` (per area)."""

    def for_area(self, area: str) -> CoverageRule: ...


class PatrolState:
    """Coverage facts plus the alerts currently open. Mutable; no clock, no I/O."""

    __slots__ = ("coverage", "last_evaluated_ms", "_open")

    def __init__(self, schedule: Schedule, territory: Territory,
                 coverage: CoverageState | None = None) -> None:
        self.coverage = coverage or CoverageState(schedule, territory)
        self.last_evaluated_ms: int | None = None
        self._open: dict[str, dict[AlertKey, Alert]] = {}  # by slot id

    @property
    def open_alerts(self) -> list[Alert]:
        return sorted((a for by_key in self._open.values() for a in by_key.values()),
                      key=_alert_order)

    def prune(self, before_ms: int) -> list[Alert]:
        """Forget fixes before ``before_ms`` and open alerts of slots that ended before it.

        Returns the alerts dropped, still open: no late fix can now change them.
        """
        self.coverage.prune(before_ms)
        dropped: list[Alert] = []
        for slot_id in list(self._open):
            by_key = self._open[slot_id]
            if next(iter(by_key.values())).slot.end_ms < before_ms:
                dropped.extend(by_key.values())
                del self._open[slot_id]
        return sorted(dropped, key=_alert_order)

    def checkpoint(self) -> dict[str, Any]:
        """Everything as a JSON-able dict; ``restore`` rebuilds an equal state."""
        return {
            "version": CHECKPOINT_VERSION,
            "coverage": self.coverage.checkpoint(),
            "alerts": [a.to_dict() for a in self.open_alerts],
            "last_evaluated_ms": self.last_evaluated_ms,
        }

    @classmethod
    def restore(cls, data: dict[str, Any], schedule: Schedule,
                territory: Territory) -> PatrolState:
        if data.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"unsupported patrol checkpoint version {data.get('version')!r}")
        state = cls(schedule, territory,
                    CoverageState.restore(data["coverage"], schedule, territory))
        state.last_evaluated_ms = data.get("last_evaluated_ms")
        for row in data["alerts"]:
            alert = Alert.from_dict(row)
            state._open.setdefault(alert.slot.id, {})[alert.key] = alert
        return state


def _alert_order(a: Alert) -> tuple:
    return (a.slot.start_ms, a.slot.collector, a.slot.area, a.kind, a.grid or "")


def evaluate(state: PatrolState, now_ms: int, rule: RuleSource) -> list[AlertChange]:
    """Bring the open alerts in line with the facts at ``now_ms``; return what changed.

    Looks at slots that were running at some point since the previous call, slots that got
    new fixes, and slots with open alerts. Call it from a watchdog (say once a minute) and
    after every batch of late fixes. The first call only sees slots running at ``now_ms``.
    A ``now_ms`` before the previous call's (a wall clock stepped back) counts as that one.
    """
    schedule = state.coverage.schedule
    since = now_ms = max(now_ms, state.last_evaluated_ms or now_ms)
    if state.last_evaluated_ms is not None:
        since = state.last_evaluated_ms
    slots = {s.id: s for s in schedule.slots_overlapping(since, now_ms + 1)}
    for collector, (lo, hi) in state.coverage.take_changes().items():
        slots.update((s.id, s) for s in schedule.slots_overlapping(lo, hi + 1, collector))
    for by_key in state._open.values():
        slot = next(iter(by_key.values())).slot
        slots.setdefault(slot.id, slot)

    changes: list[AlertChange] = []
    for slot in sorted(slots.values(), key=lambda s: (s.start_ms, s.collector, s.area)):
        if slot.start_ms <= now_ms:
            changes += _evaluate_slot(state, slot, now_ms, rule.for_area(slot.area))
    state.last_evaluated_ms = now_ms
    return changes


def _evaluate_slot(state: PatrolState, slot: Slot, now_ms: int,
                   rule: CoverageRule) -> list[AlertChange]:
    scheduled = state.coverage.schedule.is_scheduled(slot)
    holding = _conditions(state.coverage, slot, now_ms, rule) if scheduled else {}
    open_here = state._open.setdefault(slot.id, {})
    changes: list[AlertChange] = []
    for key in sorted(holding, key=lambda k: (k.kind, k.grid or "")):
        detail = holding[key]
        alert = open_here.get(key)
        if alert is None:
            alert = Alert(key.kind, slot, key.grid, now_ms, now_ms, detail)
            changes.append(AlertChange(Change.RAISED, alert))
        elif _stable(alert.detail) != _stable(detail):
            alert = replace(alert, detail=detail, updated_at_ms=now_ms)
            changes.append(AlertChange(Change.UPDATED, alert))
        open_here[key] = alert
    for key in sorted((k for k in open_here if k not in holding),
                      key=lambda k: (k.kind, k.grid or "")):
        alert = open_here.pop(key)
        resolution = _resolution(state.coverage, alert, rule, scheduled, holding)
        detail = alert.detail | _resolution_facts(state.coverage, alert, now_ms, rule)
        changes.append(AlertChange(Change.RESOLVED, replace(
            alert, detail=detail, updated_at_ms=now_ms, resolved_at_ms=now_ms,
            resolution=resolution)))
    if not open_here:
        del state._open[slot.id]
    return changes


def _stable(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if k not in _VOLATILE}


def _minutes(ms: float) -> float:
    return round(ms / _MIN, 1)


def _grid_detail(g: GridCoverage, rule: CoverageRule) -> dict[str, Any]:
    return {
        "share": round(g.share, 3), "min_cell_share": rule.min_cell_share,
        "cells_visited": g.cells_visited, "cells_total": g.cells_total,
        "passes": g.passes, "passes_required": rule.passes_required,
        "first_visit_ms": g.first_visit_ms, "last_visit_ms": g.last_visit_ms,
        "longest_unvisited_min": _minutes(g.longest_unvisited_ms),
        "shortfalls": list(g.shortfalls(rule)),
    }


def _conditions(coverage: CoverageState, slot: Slot, at_ms: int,
                rule: CoverageRule) -> dict[AlertKey, dict[str, Any]]:
    """The alerts that hold for ``slot`` at ``at_ms``, judged on fixes timed up to then."""
    cov = coverage.slot_coverage(slot, rule, at_ms)
    as_of = cov.as_of_ms
    found: dict[AlertKey, dict[str, Any]] = {}

    def hold(kind: AlertKind, detail: dict[str, Any], grid: str | None = None) -> None:
        found[AlertKey(kind, slot.collector, slot.id, grid)] = detail

    if cov.first_fix_ms is None:
        if as_of - slot.start_ms >= rule.not_started_min * _MIN:
            hold(AlertKind.NOT_STARTED, {"minutes": _minutes(as_of - slot.start_ms)})
    elif cov.last_fix_ms is not None and as_of - cov.last_fix_ms > rule.offline_min * _MIN:  # set with first_fix_ms
        hold(AlertKind.OFFLINE, {"last_fix_ms": cov.last_fix_ms,
                                 "minutes": _minutes(as_of - cov.last_fix_ms)})
    if cov.last_counted_ms is not None:
        if (cov.outside_since_ms is not None
                and cov.last_counted_ms - cov.outside_since_ms > rule.off_grid_min * _MIN):
            hold(AlertKind.OFF_GRID, {
                "since_ms": cov.outside_since_ms,
                "minutes": _minutes(cov.last_counted_ms - cov.outside_since_ms)})
        if (cov.stationary_since_ms is not None
                and cov.last_counted_ms - cov.stationary_since_ms > rule.stationary_min * _MIN):
            hold(AlertKind.STATIONARY, {
                "since_ms": cov.stationary_since_ms, "radius_m": rule.stationary_radius_m,
                "minutes": _minutes(cov.last_counted_ms - cov.stationary_since_ms)})
    if (rule.battery_low_pct is not None and cov.battery_pct is not None
            and cov.battery_pct < rule.battery_low_pct):
        hold(AlertKind.BATTERY_LOW, {"battery_pct": cov.battery_pct,
                                     "battery_at_ms": cov.battery_at_ms,
                                     "threshold_pct": rule.battery_low_pct})
    if at_ms >= slot.end_ms:
        for g in cov.uncovered(rule):
            hold(AlertKind.GRID_NOT_COVERED, _grid_detail(g, rule), g.grid)
    elif rule.warning_lead_min is not None and at_ms >= slot.end_ms - rule.warning_lead_min * _MIN:
        short = cov.uncovered(rule, final=False)
        if short:
            hold(AlertKind.COVERAGE_WARNING, {
                "grids": [g.grid for g in short],
                "unvisited": [g.grid for g in short if not g.visits],
                "slot_end_ms": slot.end_ms,
                "minutes_left": math.ceil((slot.end_ms - at_ms) / _MIN)})
    return found


def _resolution(coverage: CoverageState, alert: Alert, rule: CoverageRule, scheduled: bool,
                holding: dict[AlertKey, dict]) -> Resolution:
    if not scheduled:
        return Resolution.UNSCHEDULED
    if (alert.kind is AlertKind.COVERAGE_WARNING
            and any(k.kind is AlertKind.GRID_NOT_COVERED for k in holding)):
        return Resolution.SLOT_ENDED
    # Judge the moment the alert was raised again, on the fixes known now.
    then = _conditions(coverage, alert.slot, alert.raised_at_ms, rule)
    return Resolution.CLEARED if alert.key in then else Resolution.DISPROVED


def _resolution_facts(coverage: CoverageState, alert: Alert, now_ms: int,
                      rule: CoverageRule) -> dict[str, Any]:
    """What the fixes show now, kept beside the alert's own detail when it resolves."""
    slot = alert.slot
    if alert.kind is AlertKind.GRID_NOT_COVERED:
        cov = coverage.slot_coverage(slot, rule, now_ms)
        assert alert.grid is not None  # a grid's alert names it
        return _grid_detail(cov.grid(alert.grid), rule)
    if alert.kind is AlertKind.OFFLINE:
        after = coverage.samples(slot.collector, alert.detail["last_fix_ms"] + 1, slot.end_ms)
        if after:
            return {"next_fix_ms": after[0].t_ms}
    if alert.kind is AlertKind.NOT_STARTED:
        first = coverage.samples(slot.collector, slot.start_ms, slot.end_ms)
        if first:
            return {"first_fix_ms": first[0].t_ms}
    return {}

