"""Working time: the clock that case limits are counted on (工作时 / 工作日).

A case's stage limit is given in working hours or working days, so its deadline depends on
the city's office hours (e.g. 08:30–12:00 and 14:00–18:00), on which days are working
days, and on the city's time zone. Which days are working days in China is not a weekday
rule: statutory holidays move, and the State Council's adjusted working days (调休) put
work on some Saturdays and Sundays. Those come from ``chinesecalendar``, a maintained
library that carries each year's published schedule; the city can override any day
(a local holiday, an emergency working weekend).

The library knows only the years already published (it raises for later years). For such
a day the calendar falls back to Monday–Friday and says so (``Day.confirmed`` is False):
a deadline that reaches into next year before its schedule is published is provisional,
and the service can show and count that, instead of failing or silently guessing.

A working day of N is N times the length of one day's office hours: a case filed at
15:00 on a Friday with one working day is due at 15:00 on the next working day.
Counting starts when the office opens if the start falls outside office hours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

# Fallback when no schedule is known for the year: Monday to Friday.
_WEEKDAYS = frozenset(range(5))
_MAX_SEARCH_DAYS = 3660  # a calendar with no working day at all in ten years is a configuration error


class CalendarError(ValueError):
    """The working-time configuration cannot be used (bad hours, no working days)."""


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    working: bool
    confirmed: bool  # False: the statutory schedule of its year is not known; the weekday rule decided
    reason: str  # "weekday", "weekend", a holiday's name, "adjusted working day", "local override"


def statutory(day: date) -> tuple[bool, str] | None:
    """China's published schedule for ``day``: (working, why), or None when the library does
    not know its year yet."""
    try:
        working = chinese_calendar.is_workday(day)
        _holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        return None
    weekend = day.weekday() >= 5
    if working:
        return True, "adjusted working day" if weekend else "weekday"
    return False, name or ("weekend" if weekend else "holiday")


@dataclass(frozen=True)
class WorkCalendar:
    """Office hours in ``zone`` on working days. ``hours``: the day's office spans in local
    time, in order and not overlapping. ``overrides``: local decisions that win over the
    statutory schedule (True: a working day, False: a day off)."""

    zone: ZoneInfo
    hours: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(14, 0), time(18, 0)))
    overrides: Mapping[date, bool] = field(default_factory=dict)
    schedule: Callable[[date], tuple[bool, str] | None] = statutory

    def __post_init__(self) -> None:
        if not self.hours:
            raise CalendarError("office hours: at least one span is needed")
        previous = time.min
        for start, end in self.hours:
            if not start < end:
                raise CalendarError(f"office hours: span {start:%H:%M}–{end:%H:%M} does not end after it starts")
            if start < previous:
                raise CalendarError(f"office hours: span {start:%H:%M}–{end:%H:%M} overlaps or precedes the one before")
            previous = end

    @property
    def day_length(self) -> timedelta:
        """Working time in one working day: what "1 working day" adds."""
        return sum((_span(self.hours[i]) for i in range(len(self.hours))), timedelta())

    def day(self, day: date) -> Day:
        if day in self.overrides:
            return Day(day, self.overrides[day], True, "local override")
        known = self.schedule(day)
        if known is not None:
            return Day(day, known[0], True, known[1])
        working = day.weekday() in _WEEKDAYS
        return Day(day, working, False, "weekday" if working else "weekend")

    def is_working_day(self, day: date) -> bool:
        return self.day(day).working

    def _office_spans(self, start_day: date) -> Iterator[tuple[datetime, datetime]]:
        """The office spans of working days from ``start_day`` on, as aware datetimes."""
        day = start_day
        for _ in range(_MAX_SEARCH_DAYS):
            if self.is_working_day(day):
                for open_at, close_at in self.hours:
                    yield (datetime.combine(day, open_at, self.zone), datetime.combine(day, close_at, self.zone))
            day += timedelta(days=1)
        raise CalendarError(f"no working day in the {_MAX_SEARCH_DAYS} days from {start_day}")

    def add(self, start: datetime, working: timedelta) -> datetime:
        """The instant ``working`` working time after ``start`` (an aware datetime). Zero
        gives ``start`` itself, or the next office opening when ``start`` is outside hours."""
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        if working < timedelta():
            raise ValueError("working time to add must not be negative")
        local = start.astimezone(self.zone)
        left = working
        for open_at, close_at in self._office_spans(local.date()):
            if close_at <= local:
                continue
            begin = max(open_at, local)
            if begin + left <= close_at:
                return begin + left
            left -= close_at - begin
        raise AssertionError("unreachable: _office_spans raises when it runs out")

    def add_hours(self, start: datetime, hours: float) -> datetime:
        return self.add(start, timedelta(hours=hours))

    def add_days(self, start: datetime, days: float) -> datetime:
        return self.add(start, self.day_length * days)

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end`` (negative when ``end`` is earlier): how long
        a stage has run, or how far past its deadline it is, in working time."""
        if end < start:
            return -self.between(end, start)
        local_start, local_end = start.astimezone(self.zone), end.astimezone(self.zone)
        total = timedelta()
        for open_at, close_at in self._office_spans(local_start.date()):
            if open_at >= local_end:
                break
            overlap = min(close_at, local_end) - max(open_at, local_start)
            if overlap > timedelta():
                total += overlap
        return total

    def provisional(self, start: datetime, end: datetime) -> bool:
        """Whether a day between ``start`` and ``end`` was judged without its year's
        published schedule (so a deadline in that stretch may move once it is published)."""
        day, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        while day <= last:
            if not self.day(day).confirmed:
                return True
            day += timedelta(days=1)
        return False


def _span(span: tuple[time, time]) -> timedelta:
    start, end = span
    return datetime.combine(date.min, end) - datetime.combine(date.min, start)
