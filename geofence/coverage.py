"""Patrol coverage: what each collector's fixes show about each unit grid of a slot.

The state keeps the facts only (one sample per fix time per collector, sorted by fix time)
and derives everything else from them. So fixes may arrive in any order: a late batch
lands where it belongs in time, and any permutation of the same fixes yields the same
coverage. How the facts are judged (accuracy cut-off, pass gap, ...) comes from a
``CoverageRule`` given at query time, so a changed rule re-judges the past as well.
What coverage is judged against (grids, areas, rules) is in ``geofence.territory``.

Longer than the house's ~500 lines on purpose: the compact sample columns, their
checkpoint form and the queries over them are one data structure whose invariants (sorted
by fix time, late fixes landing in place, compaction) hold only if they change together.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from array import array
from base64 import b64decode, b64encode
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from operator import lt
from typing import NamedTuple

from geofence.placed import Placed
from geofence.schedule import Schedule, Slot
from geofence.territory import CoverageRule, Territory
from protocols.coords import distance_m
from protocols.model import DeviceClass, Fix

_MIN = 60_000
CHECKPOINT_VERSION = 2  # 1: a list per fix; 2: base64 columns
_COLUMNS = ("t", "cell", "lat", "lon", "acc", "bat")


class Sample(NamedTuple):
    """The part of a fix coverage needs, as ``CoverageState.samples`` reports it."""

    t_ms: int
    cell: int
    lat: float
    lon: float
    acc: float | None
    bat: float | None


# A track keeps each new sample as a tuple that starts with the fix and its H3 cell, the way
# its caller built it (the patrol listener's (fix, cell, unit grid)): recording a fix
# builds nothing; the watchdog compacts them after each round (_Samples).
_Pair = tuple  # (Fix, int, ...)


def _sample(pair: _Pair) -> Sample:
    fix, cell = pair[0], pair[1]
    return Sample(fix.t_ms, cell, fix.lat, fix.lon, fix.acc, fix.bat)


def _preference(pair: _Pair) -> tuple:
    # Two fixes with the same fix time: keep the most accurate, then any fixed order,
    # so the survivor does not depend on which arrived first.
    fix, cell = pair[0], pair[1]
    return (fix.acc is None, fix.acc or 0.0, cell, fix.lat, fix.lon, fix.bat is None, fix.bat or 0.0)


def strictly_increasing(times: list[int]) -> bool:
    """Each time after the one before it (a run with no duplicate and nothing out of order)."""
    return all(map(lt, times, islice(times, 1, None)))


@dataclass(frozen=True, slots=True)
class GridCoverage:
    """One unit grid of one slot, from the counted fixes up to ``as_of_ms``."""

    grid: str
    cells_total: int
    visited_cells: frozenset[int]
    visits: int                    # counted fixes inside the grid
    passes: int
    first_visit_ms: int | None
    last_visit_ms: int | None
    longest_unvisited_ms: int      # from the slot start, between visits, and up to as_of

    @property
    def cells_visited(self) -> int:
        return len(self.visited_cells)

    @property
    def share(self) -> float:
        return len(self.visited_cells) / self.cells_total

    def shortfalls(self, rule: CoverageRule, *, final: bool = True) -> tuple[str, ...]:
        """Which parts of ``rule`` this grid misses: () when covered.

        ``final=False`` asks only what can still be made up before the slot ends (cells and
        passes), for early warnings.
        """
        missing = []
        if self.share < rule.min_cell_share:
            missing.append("cells")
        if self.passes < rule.passes_required:
            missing.append("passes")
        if (final and rule.max_unvisited_min is not None
                and self.longest_unvisited_ms > rule.max_unvisited_min * _MIN):
            missing.append("unvisited")
        return tuple(missing)


@dataclass(frozen=True, slots=True)
class SlotCoverage:
    """What one collector's fixes in one slot show, up to ``as_of_ms``."""

    slot: Slot
    as_of_ms: int
    grids: tuple[GridCoverage, ...]    # the area's unit grids, by code
    fixes: int                         # every fix in the slot
    counted: int                       # fixes accurate enough to count
    first_fix_ms: int | None
    last_fix_ms: int | None
    last_counted_ms: int | None
    inside_ms: int                     # on duty inside the area (between counted fixes)
    outside_since_ms: int | None       # start of the current run of fixes outside the area
    stationary_since_ms: int | None    # start of the current run within the radius
    battery_pct: float | None          # latest reading
    battery_at_ms: int | None

    @property
    def inside_min(self) -> float:
        return self.inside_ms / _MIN

    def grid(self, code: str) -> GridCoverage:
        for g in self.grids:
            if g.grid == code:
                return g
        raise KeyError(code)

    def uncovered(self, rule: CoverageRule, *, final: bool = True) -> list[GridCoverage]:
        return [g for g in self.grids if g.shortfalls(rule, final=final)]


@dataclass(slots=True)
class _GridFold:
    cells: set[int] = field(default_factory=set)
    visits: int = 0
    passes: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    longest_gap_ms: int = 0  # slot start to first visit, and between visits


class _Fold:
    """A slot's facts folded over its samples in time order.

    Extended in place while fixes arrive in time order; a fix that lands in the middle
    makes the track drop its folds, and they are folded again from the slot start.
    """

    __slots__ = ("slot", "rule", "territory", "area", "lo", "hi", "grids", "fixes", "counted",
                 "first_fix_ms", "last_fix_ms", "last_counted", "last_inside", "inside_ms",
                 "outside_since_ms", "battery", "_snapshot", "_views", "_changed")

    def __init__(self, slot: Slot, rule: CoverageRule, territory: Territory, lo: int) -> None:
        self.slot, self.rule, self.territory = slot, rule, territory
        self.area = territory.area_grids(slot.area)
        self.lo = self.hi = lo
        self.grids = {code: _GridFold() for code in sorted(self.area)}
        self.fixes = self.counted = self.inside_ms = 0
        self.first_fix_ms: int | None = None
        self.last_fix_ms: int | None = None
        self.outside_since_ms: int | None = None
        self.last_counted: Fix | None = None
        self.last_inside = False
        self.battery: Fix | None = None
        self._snapshot: SlotCoverage | None = None
        self._views: dict[str, GridCoverage] = {}  # each grid as the last snapshot showed it
        self._changed: set[str] = set(self.grids)  # grids visited since then

    def counts(self, fix: Fix) -> bool:
        max_acc = self.rule.max_acc_m
        return max_acc is None or fix.acc is None or fix.acc <= max_acc

    def extend(self, samples: _Samples, hi: int) -> None:
        gap_ms = self.rule.pass_gap_min * _MIN
        silence_ms = self.rule.offline_min * _MIN
        for sample in samples.between(self.hi, hi):
            fix, cell = sample[0], sample[1]
            t = fix.t_ms
            self.fixes += 1
            if self.first_fix_ms is None:
                self.first_fix_ms = t
            self.last_fix_ms = t
            if fix.bat is not None:
                self.battery = fix
            if not self.counts(fix):
                continue
            self.counted += 1
            place = self.territory.locate(cell)
            inside = place is not None and place[1] in self.area
            if inside and place is not None:
                cell, code = place
                g = self.grids[code]
                g.cells.add(cell)
                if g.last_ms is None:
                    g.first_ms, g.passes = t, 1
                    g.longest_gap_ms = t - self.slot.start_ms
                else:
                    gap = t - g.last_ms
                    g.passes += gap >= gap_ms
                    g.longest_gap_ms = max(g.longest_gap_ms, gap)
                g.last_ms = t
                g.visits += 1
                self._changed.add(code)
                # Time inside runs between consecutive counted fixes that are both inside,
                # unless the handset went quiet for longer than the offline limit.
                last = self.last_counted
                if self.last_inside and last is not None:
                    step = t - last.t_ms
                    if step <= silence_ms:
                        self.inside_ms += step
                self.outside_since_ms = None
            elif self.outside_since_ms is None:
                self.outside_since_ms = t
            self.last_counted, self.last_inside = fix, inside
        if hi != self.hi:
            self.hi, self._snapshot = hi, None

    def snapshot(self, samples: _Samples) -> SlotCoverage:
        """Coverage as of the last folded fix; unvisited stretches end at the last visit."""
        if self._snapshot is None:
            self._snapshot = SlotCoverage(
                slot=self.slot,
                as_of_ms=self.slot.start_ms if self.last_fix_ms is None else self.last_fix_ms,
                grids=self._grid_views(),
                fixes=self.fixes,
                counted=self.counted,
                first_fix_ms=self.first_fix_ms,
                last_fix_ms=self.last_fix_ms,
                last_counted_ms=self.last_counted.t_ms if self.last_counted else None,
                inside_ms=self.inside_ms,
                outside_since_ms=self.outside_since_ms,
                stationary_since_ms=self._stationary_since(samples),
                battery_pct=self.battery.bat if self.battery else None,
                battery_at_ms=self.battery.t_ms if self.battery else None,
            )
        return self._snapshot

    def _grid_views(self) -> tuple[GridCoverage, ...]:
        """Every grid of the area, by code; only those visited since the last call are built
        anew."""
        views = self._views
        for code in self._changed:
            g = self.grids[code]
            views[code] = GridCoverage(code, len(self.territory.grids[code]), frozenset(g.cells), g.visits,
                                       g.passes, g.first_ms, g.last_ms, g.longest_gap_ms)
        self._changed.clear()
        return tuple(views[code] for code in self.grids)

    def _stationary_since(self, samples: _Samples) -> int | None:
        """Start of the run of counted fixes within the radius of the latest one."""
        anchor, since = self.last_counted, None
        if anchor is None:
            return None
        for sample in samples.backwards(self.hi, self.lo):
            fix = sample[0]
            if not self.counts(fix):
                continue
            if distance_m(fix.lat, fix.lon, anchor.lat, anchor.lon) > self.rule.stationary_radius_m:
                break
            since = fix.t_ms
        return since


class _Kept(NamedTuple):
    """A compacted sample read back: the fields of a fix that coverage uses."""

    t_ms: int
    lat: float
    lon: float
    acc: float | None
    bat: float | None


class _Samples:
    """One collector's samples in time order (fix times in ``times``, shared with the
    track). The newest are the tuples they came in, (fix, cell, ...); ``compact`` moves
    them into typed columns, 48 bytes a sample where a kept fix takes about 500. Reading
    gives (fix or _Kept, cell) either way."""

    __slots__ = ("times", "cells", "lat", "lon", "acc", "bat", "hot")

    def __init__(self, times: array) -> None:
        self.times = times
        self.cells, self.lat, self.lon = array("q"), array("d"), array("d")
        self.acc, self.bat = array("d"), array("d")  # NaN: not reported
        self.hot: list[_Pair] = []

    def __len__(self) -> int:
        return len(self.cells) + len(self.hot)

    def _kept(self, i: int) -> _Pair:
        acc, bat = self.acc[i], self.bat[i]
        return (_Kept(self.times[i], self.lat[i], self.lon[i], None if acc != acc else acc,
                      None if bat != bat else bat), self.cells[i])

    def __getitem__(self, i: int) -> _Pair:
        cold = len(self.cells)
        return self.hot[i - cold] if i >= cold else self._kept(i)

    def between(self, lo: int, hi: int) -> Iterator[_Pair]:
        """Samples lo..hi-1, in time order."""
        cold = len(self.cells)
        for i in range(lo, min(hi, cold)):
            yield self._kept(i)
        if hi > cold:
            yield from self.hot[max(lo - cold, 0):hi - cold]

    def backwards(self, hi: int, lo: int) -> Iterator[_Pair]:
        """Samples hi-1 down to lo."""
        cold = len(self.cells)
        if hi > cold:
            yield from reversed(self.hot[max(lo - cold, 0):hi - cold])
        for i in range(min(hi, cold) - 1, lo - 1, -1):
            yield self._kept(i)

    def append(self, pair: _Pair) -> None:
        self.hot.append(pair)

    def extend(self, pairs: list[_Pair]) -> None:
        self.hot += pairs

    def insert(self, i: int, pair: _Pair) -> None:
        cold = len(self.cells)
        if i >= cold:
            self.hot.insert(i - cold, pair)
        else:
            for column, value in zip(self._columns(), _values(pair), strict=True):
                column.insert(i, value)

    def __setitem__(self, i: int, pair: _Pair) -> None:
        cold = len(self.cells)
        if i >= cold:
            self.hot[i - cold] = pair
        else:
            for column, value in zip(self._columns(), _values(pair), strict=True):
                column[i] = value

    def drop_first(self, n: int) -> None:
        cold = len(self.cells)
        for column in self._columns():
            del column[:n]
        if n > cold:
            del self.hot[:n - cold]

    def compact(self) -> int:
        """Move the newest samples into the columns; returns how many moved."""
        hot, self.hot = self.hot, []
        for pair in hot:
            for column, value in zip(self._columns(), _values(pair), strict=True):
                column.append(value)
        return len(hot)

    def _columns(self) -> tuple[array, ...]:
        return self.cells, self.lat, self.lon, self.acc, self.bat


def _values(pair: _Pair) -> tuple:
    fix = pair[0]
    return (pair[1], fix.lat, fix.lon, math.nan if fix.acc is None else fix.acc,
            math.nan if fix.bat is None else fix.bat)


class _Track:
    __slots__ = ("times", "samples", "folds")

    def __init__(self) -> None:
        self.times = array("q")  # fix times, ms
        self.samples = _Samples(self.times)
        self.folds: dict[tuple[Slot, CoverageRule], _Fold] = {}

    def columns(self) -> tuple[array, ...]:
        """Fix times, then the compacted columns, in the order of _COLUMNS."""
        return (self.times, *self.samples._columns())


class CoverageState:
    """Every on-duty fix per collector, and the coverage they add up to.

    Mutable, but with no clock and no I/O. ``schedule`` and ``territory`` may be replaced
    through ``reconfigure``; the facts are kept and re-judged.
    """

    __slots__ = ("schedule", "territory", "_tracks", "_changed", "_last_slot")

    def __init__(self, schedule: Schedule, territory: Territory) -> None:
        self.schedule = schedule
        self.territory = territory
        self._tracks: dict[str, _Track] = {}
        self._changed: dict[str, tuple[int, int]] = {}
        # the slot a collector's previous fix fell in: a fix that falls in it too needs no
        # schedule lookup. Samples are kept per collector, not per slot, so any slot that
        # contains the fix gives the same state.
        self._last_slot: dict[str, Slot] = {}
        self._check_areas()

    def _check_areas(self) -> None:
        unknown = self.schedule.areas - self.territory.areas.keys()
        if unknown:
            raise ValueError(f"schedule names unknown responsibility grids {sorted(unknown)}")

    def reconfigure(self, schedule: Schedule | None = None,
                    territory: Territory | None = None) -> None:
        """Swap in a new schedule or territory; every collector's facts are re-judged."""
        self.schedule = schedule or self.schedule
        self.territory = territory or self.territory
        self._last_slot.clear()
        self._check_areas()
        for collector, track in self._tracks.items():
            track.folds.clear()
            if track.times:
                self._mark(collector, track.times[0], track.times[-1])

    def observe(self, item: Fix | Placed, collector: str | None = None) -> Slot | None:
        """Record a fix (any order, duplicates welcome); returns its slot, None if off duty.

        ``collector`` defaults to the fix's device id. A ``Placed`` brings its H3 cell; for
        a bare ``Fix`` the cell is computed at the territory's resolution.
        """
        if isinstance(item, Placed):
            fix, cell = item.fix, item.cell
        else:
            fix, cell = item, self.territory.cell_of(item.lat, item.lon)
        who = collector or fix.device
        on_duty = self.observe_groups({who: [(fix, cell)]})
        return self._last_slot[who] if on_duty else None

    def observe_many(self, batch: Iterable[Placed], collector_of: Callable[[str], str | None] | None = None) -> int:
        """Record placed fixes (any order, duplicates welcome); returns how many were on duty.

        A fix counts for its device, or for ``collector_of(device)`` when given (None: for
        nobody).
        """
        groups: dict[str, list[_Pair]] = {}
        for placed in batch:
            fix = placed.fix
            who = fix.device if collector_of is None else collector_of(fix.device)
            if who is not None:
                groups.setdefault(who, []).append((fix, placed.cell))
        return self.observe_groups(groups)

    def observe_groups(self, groups: Mapping[str, list[_Pair]],
                       times_of: Mapping[str, list[int]] | None = None) -> int:
        """Record fixes given per collector as tuples (fix, H3 cell, ...), in any order (duplicates
        welcome); returns how many were on duty. The pipeline's path; ``times_of`` gives
        each group's fix times when the caller has them already.

        A collector's run of fixes that are newer than all before, in time order and inside
        the slot of its previous fix (a handset reporting as it walks) is appended in one
        step; any other fix is placed one at a time, where it belongs in time.
        """
        on_duty = 0
        for who, pairs in groups.items():
            if not pairs:
                continue
            times = times_of[who] if times_of is not None else [pair[0].t_ms for pair in pairs]
            if self._append_run(who, pairs, times):
                on_duty += len(pairs)
                continue
            # a collector's first fix, or the first of a new slot: placed alone, it opens the
            # track and the slot, and the rest of the run may then go in one step
            on_duty += self._observe_one(who, pairs[0])
            if self._append_run(who, pairs[1:], times[1:]):
                on_duty += len(pairs) - 1
                continue
            for pair in islice(pairs, 1, None):
                on_duty += self._observe_one(who, pair)
        return on_duty

    def _append_run(self, who: str, pairs: list[_Pair], times: list[int]) -> bool:
        """Append a run newer than all the collector's fixes before, in time order and inside
        the slot of its previous fix, in one step; False (and nothing done) otherwise."""
        track, slot = self._tracks.get(who), self._last_slot.get(who)
        if track is None or slot is None or not track.times or not times:
            return False
        first, last = times[0], times[-1]
        if not (track.times[-1] < first and slot.start_ms <= first and last < slot.end_ms
                and strictly_increasing(times)):
            return False
        track.times.extend(times)
        track.samples.extend(pairs)
        self._mark(who, first, last)
        return True

    def _observe_one(self, who: str, pair: _Pair) -> bool:
        t = pair[0].t_ms
        # the slot of the collector's previous fix: a fix that falls in it too needs no
        # schedule lookup
        slot = self._last_slot.get(who)
        if slot is None or not slot.start_ms <= t < slot.end_ms:
            slot = self.schedule.slot_at(who, t)
            if slot is None:
                return False
            self._last_slot[who] = slot
        track = self._tracks.get(who)
        if track is not None and track.times and t > track.times[-1]:
            # the common case, a fix newer than all before it: append
            track.times.append(t)
            track.samples.append(pair)
            self._mark(who, t, t)
        else:
            self._add(who, pair)
        return True

    def _add(self, collector: str, pair: _Pair) -> None:
        track = self._tracks.get(collector)
        if track is None:
            track = self._tracks[collector] = _Track()
        t = pair[0].t_ms
        i = bisect_left(track.times, t)
        if i < len(track.times) and track.times[i] == t:
            if _preference(pair) >= _preference(track.samples[i]):
                return
            track.samples[i] = pair
            track.folds.clear()
        else:
            if i < len(track.times):  # lands in the past: refold from the slot start
                track.folds.clear()
            track.times.insert(i, t)
            track.samples.insert(i, pair)
        self._mark(collector, t, t)

    def _mark(self, collector: str, lo: int, hi: int) -> None:
        seen = self._changed.get(collector)
        self._changed[collector] = (lo, hi) if seen is None else (min(seen[0], lo),
                                                                  max(seen[1], hi))

    def take_changes(self) -> dict[str, tuple[int, int]]:
        """Per collector, the span of fix times added since the last call (and reset)."""
        changed, self._changed = self._changed, {}
        return changed

    def samples(self, collector: str, start_ms: int, end_ms: int) -> list[Sample]:
        """``collector``'s samples with fix time in [start_ms, end_ms), by time."""
        track = self._tracks.get(collector)
        if track is None:
            return []
        return [_sample(pair) for pair in track.samples.between(bisect_left(track.times, start_ms),
                                                                bisect_left(track.times, end_ms))]

    def slot_coverage(self, slot: Slot, rule: CoverageRule,
                      as_of_ms: int | None = None) -> SlotCoverage:
        """Coverage of ``slot`` from the fixes timed before ``as_of_ms`` (default: slot end).

        Fixes timed exactly at ``as_of_ms`` count too, so a watchdog that evaluates at a
        fix's own time sees it.
        """
        as_of = slot.end_ms if as_of_ms is None else max(slot.start_ms,
                                                         min(as_of_ms, slot.end_ms))
        track = self._tracks.get(slot.collector) or _Track()
        lo = bisect_left(track.times, slot.start_ms)
        hi = min(bisect_right(track.times, as_of), bisect_left(track.times, slot.end_ms))
        fold = track.folds.get((slot, rule))
        if fold is not None and fold.lo == lo and fold.hi <= hi:
            fold.extend(track.samples, hi)
        else:
            earlier = fold is not None and fold.lo == lo  # as of before the cached fold
            fold = _Fold(slot, rule, self.territory, lo)
            fold.extend(track.samples, hi)
            if not earlier:
                track.folds[(slot, rule)] = fold
        base = fold.snapshot(track.samples)
        grids = []
        for g in base.grids:
            # the stretch unvisited since the last visit runs on to as_of; built directly
            # (dataclasses.replace costs several times as much, once per grid per slot)
            unvisited = as_of - (slot.start_ms if g.last_visit_ms is None else g.last_visit_ms)
            grids.append(g if unvisited <= g.longest_unvisited_ms else GridCoverage(
                g.grid, g.cells_total, g.visited_cells, g.visits, g.passes, g.first_visit_ms,
                g.last_visit_ms, unvisited))
        return dataclasses.replace(base, as_of_ms=as_of, grids=tuple(grids))

    def prune(self, before_ms: int) -> int:
        """Forget fixes timed before ``before_ms``; returns how many were dropped."""
        dropped = 0
        for collector in list(self._tracks):
            track = self._tracks[collector]
            i = bisect_left(track.times, before_ms)
            if i:
                dropped += i
                track.samples.drop_first(i)
                del track.times[:i]
                track.folds.clear()
            if not track.times:
                del self._tracks[collector]
        return dropped

    def compact(self) -> int:
        """Move every sample kept as its fix into compact columns; returns how many moved.
        The service does it after each watchdog round (tracker.live.patrol)."""
        return sum(track.samples.compact() for track in self._tracks.values())

    def checkpoint(self) -> dict:
        """The facts as a JSON-able dict; ``restore`` rebuilds an equal state.

        Compacts first, then writes each track's columns as base64 of their bytes: no
        Python object per fix, so a city's two days of fixes checkpoint in a blink.
        """
        self.compact()
        return {
            "version": CHECKPOINT_VERSION,
            "byteorder": sys.byteorder,
            "tracks": {c: {name: b64encode(column.tobytes()).decode("ascii")
                           for name, column in zip(_COLUMNS, t.columns(), strict=True)}
                       for c, t in self._tracks.items()},
            "changed": {c: list(span) for c, span in self._changed.items()},
        }

    @classmethod
    def restore(cls, data: Mapping, schedule: Schedule, territory: Territory) -> CoverageState:
        version = data.get("version")
        if version not in (1, CHECKPOINT_VERSION):
            raise ValueError(f"unsupported coverage checkpoint version {version!r}")
        state = cls(schedule, territory)
        for collector, saved in data["tracks"].items():
            if version == 1:  # a list [t, cell, lat, lon, acc, bat] per fix
                for t, cell, lat, lon, acc, bat in saved:
                    fix = Fix(collector, DeviceClass.COLLECTOR, "", int(t), float(lat), float(lon), int(t),
                              acc=acc, bat=bat)
                    state._add(collector, (fix, int(cell)))
                continue
            track = state._tracks[collector] = _Track()
            for name, column in zip(_COLUMNS, track.columns(), strict=True):
                column.frombytes(b64decode(saved[name], validate=True))
                if data.get("byteorder") != sys.byteorder:
                    column.byteswap()
            if (len({len(column) for column in track.columns()}) != 1
                    or not strictly_increasing(track.times.tolist())):
                raise ValueError(f"coverage checkpoint: {collector}'s columns disagree or are out of order")
        state._changed = {c: (int(lo), int(hi)) for c, (lo, hi) in data["changed"].items()}
        return state
