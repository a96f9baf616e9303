"""Stage deadlines: when a stage is due, when to warn, and how a stage stands at an instant.

A stage's limit comes from its category (``taxonomy``) and runs on the working-time
calendar (``worktime``), or around the clock for categories with a natural clock. An
approved extension adds to the limit on the same clock. Time spent parked (挂账) does not
count: on resume the clock is moved on by the parked stretch, measured on the same clock.

Everything here is a pure function of stored facts (when the stage started, extensions,
parked time) and an instant, so a watcher recomputes every deadline from the database after
a restart and decides the same: no timer lives only in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from alerts.cases.lifecycle import Stage
from alerts.cases.taxonomy import Category, limit_duration
from alerts.cases.worktime import WorkCalendar


class Standing(StrEnum):
    ON_TIME = "on_time"
    WARNING = "warning"  # within the warning share of the limit's end
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class StageClock:
    stage: Stage
    started: datetime
    limit: timedelta  # on its clock, extensions included
    natural: bool  # around the clock, else working time
    due: datetime
    warn_at: datetime
    provisional: bool  # the calendar guessed a day in between (its year's schedule unpublished)


def _add(calendar: WorkCalendar, natural: bool, start: datetime, amount: timedelta) -> datetime:
    return start + amount if natural else calendar.add(start, amount)


def stage_clock(category: Category, stage: Stage, started: datetime, calendar: WorkCalendar, *,
                extension: timedelta = timedelta(), warn_share: float = 0.8) -> StageClock:
    """The clock of ``stage`` of a case of ``category`` started at ``started``. A warning
    falls when ``warn_share`` of the limit has run."""
    if not 0 < warn_share <= 1:
        raise ValueError("warn_share must be in (0, 1]")
    limit = limit_duration(category.limits[stage], calendar.day_length) + extension
    natural = category.natural_clock
    due = _add(calendar, natural, started, limit)
    warn_at = _add(calendar, natural, started, limit * warn_share)
    provisional = not natural and calendar.provisional(started, due)
    return StageClock(stage, started, limit, natural, due, warn_at, provisional)


def paused_for(clock: StageClock, parked_from: datetime, parked_until: datetime, calendar: WorkCalendar) -> timedelta:
    """How much of the stage's clock a parked stretch took (working time, or natural time
    for a natural clock): what the deadline moves on by."""
    if parked_until < parked_from:
        raise ValueError("a parked stretch cannot end before it starts")
    return parked_until - parked_from if clock.natural else calendar.between(parked_from, parked_until)


def shifted(clock: StageClock, paused: timedelta, calendar: WorkCalendar) -> StageClock:
    """The clock with its due and warning moved on by ``paused`` on its own clock."""
    if paused < timedelta():
        raise ValueError("a clock cannot be moved back")
    if clock.natural:
        return replace(clock, due=clock.due + paused, warn_at=clock.warn_at + paused)
    due = calendar.add(clock.due, paused)
    return replace(clock, due=due, warn_at=calendar.add(clock.warn_at, paused),
                   provisional=calendar.provisional(clock.started, due))


def resumed(clock: StageClock, parked_from: datetime, parked_until: datetime, calendar: WorkCalendar) -> StageClock:
    """The clock after a parked stretch: due and warning move on by the time parked."""
    return shifted(clock, paused_for(clock, parked_from, parked_until, calendar), calendar)


def standing(clock: StageClock, now: datetime) -> Standing:
    if now >= clock.due:
        return Standing.OVERDUE
    if now >= clock.warn_at:
        return Standing.WARNING
    return Standing.ON_TIME


def remaining(clock: StageClock, now: datetime, calendar: WorkCalendar) -> timedelta:
    """Time left on the stage's clock (negative: overdue by that much)."""
    return clock.due - now if clock.natural else calendar.between(now, clock.due)


def escalation_due(reported: datetime, after: timedelta, acknowledged: datetime | None) -> datetime | None:
    """When a case nobody has acknowledged goes up to the next role (district → city):
    ``after`` of natural time from its report; None once it was acknowledged in time."""
    due = reported + after
    if acknowledged is not None and acknowledged <= due:
        return None
    return due
