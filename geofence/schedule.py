"""Shift schedules: which collector patrols which responsibility grid, and when.

A responsibility grid (责任网格) is called an *area* throughout this package, to keep it apart
from the unit grids (单元网格) it is made of.

Shifts repeat weekly in local time (``Asia/Shanghai`` unless the schedule names another
zone). A shift whose end is not after its start runs past midnight and belongs to the day it
starts on: a holiday on Saturday does not cancel Friday's 22:00–02:00 night shift.

Dated overrides are applied to one day's slots in this order:

1. ``Holiday``: no duty for anyone that day.
2. ``MakeupDay`` (调休): a weekend day worked as the weekday it names.
3. the day's shifts, plus any ``ExtraDuty``;
4. ``Reassignment``: a collector's slot goes to another area that day;
5. ``Swap``: A's slot goes to B (all swaps of a day apply at once, so A↔B works);
6. ``Leave``: whoever holds the slot after the swaps is off, and the slot is dropped.
   A collector on leave whose slot was swapped to a colleague keeps nothing, and the
   colleague keeps the slot.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_CACHE_DAYS = 256  # memoised days per schedule; cleared wholesale when full


def weekdays(spec: str) -> frozenset[int]:
    """Weekday numbers (Monday = 0) from ``"Mon-Fri"``, ``"Sat,Sun"``, ``"Mon-Wed,Fri"``."""
    days: set[int] = set()
    for part in spec.replace(" ", "").lower().split(","):
        first, _, last = part.partition("-")
        try:
            lo = WEEKDAY_NAMES.index(first[:3])
            hi = WEEKDAY_NAMES.index(last[:3]) if last else lo
        except ValueError:
            raise ValueError(f"bad weekday spec {spec!r}") from None
        if hi < lo:
            raise ValueError(f"weekday range runs backwards in {spec!r}")
        days.update(range(lo, hi + 1))
    return frozenset(days)


def _check_id(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or "/" in value:
        raise ValueError(f"bad {what} {value!r}")


@dataclass(frozen=True, slots=True)
class Slot:
    """One stretch of duty: ``collector`` patrols ``area`` during [start_ms, end_ms)."""

    collector: str
    area: str
    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        _check_id("collector", self.collector)
        if not isinstance(self.area, str) or not self.area:
            raise ValueError(f"bad area {self.area!r}")
        if self.end_ms <= self.start_ms:
            raise ValueError(f"slot ends before it starts: {self.start_ms}..{self.end_ms}")

    @property
    def id(self) -> str:
        """Stable across restarts: the same duty always gets the same id."""
        return f"{self.collector}/{self.area}/{self.start_ms}/{self.end_ms}"

    def to_dict(self) -> dict[str, object]:
        return {"collector": self.collector, "area": self.area,
                "start_ms": self.start_ms, "end_ms": self.end_ms}

    @classmethod
    def from_dict(cls, data: dict) -> Slot:
        return cls(data["collector"], data["area"], int(data["start_ms"]), int(data["end_ms"]))


@dataclass(frozen=True, slots=True)
class Shift:
    """A weekly duty: on ``days`` from ``start`` to ``end`` local time, patrol ``area``.

    ``days`` takes weekday numbers (Monday = 0) or a spec such as ``"Mon-Fri"``.
    ``valid_from``/``valid_until`` (inclusive) bound the assignment, so a collector can move
    to another area from a given date.
    """

    collector: str
    area: str
    days: frozenset[int] | str
    start: time
    end: time
    valid_from: date | None = None
    valid_until: date | None = None

    def __post_init__(self) -> None:
        _check_id("collector", self.collector)
        days = weekdays(self.days) if isinstance(self.days, str) else frozenset(self.days)
        if not days or not days <= set(range(7)):
            raise ValueError(f"bad shift days {self.days!r}")
        object.__setattr__(self, "days", days)
        _check_times(self.start, self.end)
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("shift valid_until is before valid_from")

    def applies(self, day: date, weekday: int) -> bool:
        return (weekday in self.days
                and (self.valid_from is None or self.valid_from <= day)
                and (self.valid_until is None or day <= self.valid_until))


def _check_times(start: time, end: time) -> None:
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("shift times are local wall-clock times: no tzinfo")
    if start == end:
        raise ValueError(f"shift from {start} to {end} has no length")


@dataclass(frozen=True, slots=True)
class Holiday:
    """No duty for anyone on ``day``."""

    day: date
    name: str = ""


@dataclass(frozen=True, slots=True)
class MakeupDay:
    """A weekend day worked as a weekday (调休): ``day`` follows weekday ``follows``'s shifts."""

    day: date
    follows: int

    def __post_init__(self) -> None:
        if self.follows not in range(7):
            raise ValueError(f"bad weekday {self.follows!r}")


@dataclass(frozen=True, slots=True)
class Leave:
    """``collector`` is off on ``day``: every slot, or only the one starting at ``start``."""

    collector: str
    day: date
    start: time | None = None

    def __post_init__(self) -> None:
        _check_id("collector", self.collector)


@dataclass(frozen=True, slots=True)
class Swap:
    """``giver``'s slot on ``day`` goes to ``taker``: every slot, or the one at ``start``."""

    day: date
    giver: str
    taker: str
    start: time | None = None

    def __post_init__(self) -> None:
        _check_id("collector", self.taker)
        if self.giver == self.taker:
            raise ValueError("a swap needs two collectors")


@dataclass(frozen=True, slots=True)
class Reassignment:
    """On ``day`` ``collector`` patrols ``area`` instead (every slot, or the one at ``start``)."""

    collector: str
    day: date
    area: str
    start: time | None = None

    def __post_init__(self) -> None:
        _check_id("collector", self.collector)


@dataclass(frozen=True, slots=True)
class ExtraDuty:
    """A one-off slot on ``day`` from ``start`` to ``end`` (past midnight if end <= start)."""

    collector: str
    area: str
    day: date
    start: time
    end: time

    def __post_init__(self) -> None:
        _check_id("collector", self.collector)
        _check_times(self.start, self.end)


Override = Holiday | MakeupDay | Leave | Swap | Reassignment | ExtraDuty


@dataclass(slots=True)
class _Duty:
    """A slot while the day's overrides are applied to it."""

    collector: str
    area: str
    start: time
    end: time

    def matches(self, collector: str, start: time | None) -> bool:
        return self.collector == collector and (start is None or start == self.start)


_QUARTER_MS = 15 * 60_000


@dataclass(frozen=True, slots=True)
class Schedule:
    """Weekly shifts plus dated overrides, in one time zone. Pure: no clock, no I/O."""

    shifts: tuple[Shift, ...] = ()
    overrides: tuple[Override, ...] = ()
    zone: str = DEFAULT_ZONE
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _by_day: dict[date, list[Override]] = field(init=False, repr=False, compare=False)
    _memo: dict[date, tuple[list[Slot], dict[str, list[Slot]]]] = field(
        init=False, repr=False, compare=False)
    _dates: dict[int, date] = field(init=False, repr=False, compare=False)
    _candidates: dict[tuple[str, int], tuple[Slot, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shifts", tuple(self.shifts))
        object.__setattr__(self, "overrides", tuple(self.overrides))
        object.__setattr__(self, "_tz", ZoneInfo(self.zone))
        for shift in self.shifts:
            if not isinstance(shift, Shift):
                raise TypeError(f"not a Shift: {shift!r}")
        by_day: dict[date, list[Override]] = defaultdict(list)
        for override in self.overrides:
            if not isinstance(override, Override):
                raise TypeError(f"not a schedule override: {override!r}")
            by_day[override.day].append(override)
        object.__setattr__(self, "_by_day", dict(by_day))
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "_dates", {})
        object.__setattr__(self, "_candidates", {})

    @property
    def collectors(self) -> frozenset[str]:
        names = {shift.collector for shift in self.shifts}
        for o in self.overrides:
            if isinstance(o, ExtraDuty):
                names.add(o.collector)
            elif isinstance(o, Swap):
                names.add(o.taker)
        return frozenset(names)

    @property
    def areas(self) -> frozenset[str]:
        named = {shift.area for shift in self.shifts}
        named.update(o.area for o in self.overrides if isinstance(o, ExtraDuty | Reassignment))
        return frozenset(named)

    def local_date(self, t_ms: int) -> date:
        # Every UTC offset in use is a multiple of 15 minutes, and so is every transition
        # time, so the local date is constant within a 15-minute UTC bucket: convert once
        # per bucket instead of once per fix.
        bucket = t_ms // _QUARTER_MS
        day = self._dates.get(bucket)
        if day is None:
            if len(self._dates) > 100_000:
                self._dates.clear()
            day = self._dates[bucket] = (_EPOCH + bucket * _QUARTER_MS * _MS).astimezone(self._tz).date()
        return day

    def to_ms(self, day: date, at: time) -> int:
        """Epoch ms of local wall-clock ``at`` on ``day`` in this schedule's zone."""
        return (datetime.combine(day, at, tzinfo=self._tz) - _EPOCH) // _MS

    def slots_on(self, day: date) -> list[Slot]:
        """Every collector's slots starting on local date ``day``, by start time."""
        return self._day(day)[0]

    def slot_at(self, collector: str, t_ms: int) -> Slot | None:
        """The slot ``collector`` is on duty in at ``t_ms``, or None when off duty."""
        # the candidates depend on the local date only, which is constant within a
        # 15-minute UTC bucket (see local_date): look them up by bucket, once per fix
        key = (collector, t_ms // _QUARTER_MS)
        candidates = self._candidates.get(key)
        if candidates is None:
            day = self.local_date(t_ms)
            # slots are shorter than a day, so only yesterday's can still be running
            candidates = tuple(slot for d in (day - timedelta(days=1), day) for slot in self._day(d)[1].get(collector, ()))
            if len(self._candidates) > 200_000:
                self._candidates.clear()
            self._candidates[key] = candidates
        for slot in candidates:
            if slot.start_ms <= t_ms < slot.end_ms:
                return slot
        return None

    def slots_overlapping(self, start_ms: int, end_ms: int,
                          collector: str | None = None) -> list[Slot]:
        """Slots that share some time with [start_ms, end_ms), by start time."""
        if end_ms <= start_ms:
            return []
        found: list[Slot] = []
        day = self.local_date(start_ms) - timedelta(days=1)
        last = self.local_date(end_ms)
        while day <= last:
            every, by_collector = self._day(day)
            for slot in every if collector is None else by_collector.get(collector, ()):
                if slot.start_ms < end_ms and slot.end_ms > start_ms:
                    found.append(slot)
            day += timedelta(days=1)
        return found

    def is_scheduled(self, slot: Slot) -> bool:
        """Whether ``slot`` is still part of this schedule (overrides can withdraw it)."""
        return slot in self._day(self.local_date(slot.start_ms))[1].get(slot.collector, ())

    def _day(self, day: date) -> tuple[list[Slot], dict[str, list[Slot]]]:
        memo = self._memo.get(day)
        if memo is None:
            if len(self._memo) >= _CACHE_DAYS:
                self._memo.clear()
            every = self._build(day)
            by_collector: dict[str, list[Slot]] = defaultdict(list)
            for slot in every:
                by_collector[slot.collector].append(slot)
            memo = self._memo[day] = (every, dict(by_collector))
        return memo

    def _build(self, day: date) -> list[Slot]:
        overrides = self._by_day.get(day, [])
        if any(isinstance(o, Holiday) for o in overrides):
            return []
        weekday = day.weekday()
        for o in overrides:
            if isinstance(o, MakeupDay):
                weekday = o.follows
        duties = [_Duty(s.collector, s.area, s.start, s.end)
                  for s in self.shifts if s.applies(day, weekday)]
        duties += [_Duty(o.collector, o.area, o.start, o.end)
                   for o in overrides if isinstance(o, ExtraDuty)]
        for o in overrides:
            if isinstance(o, Reassignment):
                for duty in duties:
                    if duty.matches(o.collector, o.start):
                        duty.area = o.area
        takers = [(duty, o.taker) for o in overrides if isinstance(o, Swap)
                  for duty in duties if duty.matches(o.giver, o.start)]
        for duty, taker in takers:
            duty.collector = taker
        leaves = [o for o in overrides if isinstance(o, Leave)]
        duties = [d for d in duties if not any(d.matches(o.collector, o.start) for o in leaves)]
        slots = {self._slot(day, d) for d in duties}
        return sorted(slots, key=lambda s: (s.start_ms, s.collector, s.area, s.end_ms))

    def _slot(self, day: date, duty: _Duty) -> Slot:
        end_day = day + timedelta(days=1) if duty.end <= duty.start else day
        return Slot(duty.collector, duty.area,
                    self.to_ms(day, duty.start), self.to_ms(end_day, duty.end))

