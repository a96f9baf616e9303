"""Patrol alerts on real H3 cells in Anning, Lanzhou, with a watchdog evaluating every minute.

The four unit grids of tests/coverage_city.py, numbered west to east, north to south:

    620105001001001 | 620105001001002
    ----------------+----------------
    620105001001003 | 620105001001004

2025-09-29 is a Monday; 1 October 2025 is National Day.
"""

import json
from collections import deque
from datetime import date, time

import h3.api.basic_int as h3

from alerts.messages import describe
from alerts.patrol import (
    Alert,
    AlertChange,
    AlertKind,
    Change,
    PatrolState,
    Resolution,
    evaluate,
)
from geofence.placed import Placed
from geofence.schedule import Holiday, Leave, Schedule, Shift
from geofence.territory import CoverageRule, CoverageRules
from protocols.model import DeviceClass, Fix
from tests.coverage_city import DLAT, NE, NORTH_LAT, NW, OUTSIDE, SE, SW, TERRITORY, at, cells, slots_for

RULE = CoverageRule(warning_lead_min=30)


def fix(t_ms: int, lat: float, lon: float, *, device: str = "c01", rx_ms: int | None = None,
        bat: float = 80.0) -> Fix:
    return Fix(device, DeviceClass.COLLECTOR, "620105", t_ms, lat, lon,
               t_ms if rx_ms is None else rx_ms, acc=5.0, bat=bat)


def walk(path: list[int], start_ms: int, every_s: int = 30, **kw) -> list[Fix]:
    return [fix(start_ms + i * every_s * 1000, *h3.cell_to_latlng(c), **kw)
            for i, c in enumerate(path)]


def patrol(state: PatrolState, fixes: list[Fix], start_ms: int, end_ms: int,
           rule=RULE) -> list[tuple[int, AlertChange]]:
    """Hand each fix over when the service receives it and evaluate once a minute."""
    inbox = deque(sorted(fixes, key=lambda f: f.rx_ms))
    log = []
    for now in range(start_ms, end_ms + 1, 60_000):
        while inbox and inbox[0].rx_ms <= now:
            state.coverage.observe(inbox.popleft())
        log += [(now, change) for change in evaluate(state, now, rule)]
    return log


def changes(log, kind: AlertKind, change: Change | None = None) -> list[tuple[int, Alert]]:
    return [(now, c.alert) for now, c in log
            if c.alert.kind is kind and (change is None or c.change is change)]


def raised_kinds(log) -> set[AlertKind]:
    return {c.alert.kind for _, c in log if c.change is Change.RAISED}


def test_skipping_the_north_half_of_a_grid_raises_exactly_one_coverage_alert_at_slot_end():
    schedule = Schedule((Shift("c01", "anning-01", "Mon-Fri", time(8), time(10)),))
    state = PatrolState(schedule, TERRITORY)
    sw = cells(SW)
    mid_lat = (NORTH_LAT - DLAT) - DLAT / 2
    south_half = [c for c in sw if h3.cell_to_latlng(c)[0] < mid_lat]
    path = cells(NW) + cells(NE) + cells(SE) + south_half
    log = patrol(state, walk(path, at("2025-09-29 08:00"), every_s=50),
                 at("2025-09-29 07:55"), at("2025-09-29 10:30"))

    ((when, alert),) = changes(log, AlertKind.GRID_NOT_COVERED)
    assert when == at("2025-09-29 10:00") == alert.raised_at_ms
    assert (alert.grid, alert.collector, alert.detail["shortfalls"]) == (SW, "c01", ["cells"])
    assert alert.detail["share"] < 0.6
    assert describe(alert, 'en').startswith(
        f"unit grid {SW} not covered: {len(south_half)}/{len(sw)} cells")
    # the early warning came first, followed the collector into the grid, and gave way
    warnings = [(now, c.change, describe(c.alert, 'en'))
                for now, c in log if c.alert.kind is AlertKind.COVERAGE_WARNING]
    assert warnings == [
        (at("2025-09-29 09:30"), Change.RAISED, "1 grid unvisited, 30 min left"),
        (at("2025-09-29 09:32"), Change.UPDATED,
         "1 grid not yet covered (0 unvisited), 28 min left"),
        (at("2025-09-29 10:00"), Change.RESOLVED,
         "1 grid not yet covered (0 unvisited), 28 min left (resolved: slot ended)"),
    ]
    assert raised_kinds(log) == {AlertKind.COVERAGE_WARNING, AlertKind.GRID_NOT_COVERED}
    assert [a.key for a in state.open_alerts] == [alert.key]
    assert evaluate(state, at("2025-09-29 10:31"), RULE) == []


def test_a_handset_offline_that_uploads_its_backlog_resolves_the_alerts_it_disproves():
    schedule = Schedule((Shift("c02", "anning-north", "Mon", time(8), time(9)),))
    state = PatrolState(schedule, TERRITORY)
    live = walk((cells(NW) * 3)[:81], at("2025-09-29 08:00"), device="c02")  # to 08:40
    # recorded 08:40:30–09:20 while out of coverage, sent at 09:20 (JT/T 808 0x0704 style)
    backlog = walk((cells(NE) * 3)[:80], at("2025-09-29 08:40:30"), device="c02",
                   rx_ms=at("2025-09-29 09:20"))
    log = patrol(state, live + backlog, at("2025-09-29 08:00"), at("2025-09-29 09:30"))

    offline = changes(log, AlertKind.OFFLINE)
    assert [(now, a.resolution) for now, a in offline] == [
        (at("2025-09-29 08:56"), None),
        (at("2025-09-29 09:20"), Resolution.DISPROVED)]
    assert offline[0][1].detail["last_fix_ms"] == at("2025-09-29 08:40")
    assert offline[1][1].detail["next_fix_ms"] == at("2025-09-29 08:40:30")

    not_covered = changes(log, AlertKind.GRID_NOT_COVERED)
    assert [(now, a.grid, a.resolution) for now, a in not_covered] == [
        (at("2025-09-29 09:00"), NE, None),
        (at("2025-09-29 09:20"), NE, Resolution.DISPROVED)]
    proof = not_covered[1][1]
    assert proof.detail["share"] == 1.0 and proof.detail["shortfalls"] == []
    assert describe(proof, 'en').endswith("(resolved: late fixes show it did not happen)")
    assert state.open_alerts == []


def test_a_handset_that_really_was_offline_is_cleared_when_it_comes_back():
    schedule = Schedule((Shift("c02", "anning-north", "Mon", time(8), time(9)),))
    state = PatrolState(schedule, TERRITORY)
    before = walk((cells(NW) * 3)[:81], at("2025-09-29 08:00"), device="c02")  # to 08:40
    after = walk(cells(NE)[:5], at("2025-09-29 08:58"), device="c02")
    log = patrol(state, before + after, at("2025-09-29 08:00"), at("2025-09-29 08:59"))
    (_, raised), (when, cleared) = changes(log, AlertKind.OFFLINE)
    assert describe(raised, 'en') == "no fix for 16 min"
    assert when == at("2025-09-29 08:58") and cleared.resolution is Resolution.CLEARED
    assert cleared.detail["next_fix_ms"] == at("2025-09-29 08:58")


def test_a_collector_with_two_responsibility_grids_is_judged_against_the_days_one():
    schedule = Schedule((Shift("c03", "anning-north", "Mon", time(8), time(10)),
                         Shift("c03", "anning-south", "Tue", time(8), time(10))))
    south_walk = cells(SW) + cells(SE)

    tuesday = PatrolState(schedule, TERRITORY)
    log = patrol(tuesday, walk(south_walk, at("2025-09-30 08:00"), every_s=60, device="c03"),
                 at("2025-09-30 08:00"), at("2025-09-30 10:05"))
    assert changes(log, AlertKind.GRID_NOT_COVERED) == []
    assert changes(log, AlertKind.OFF_GRID) == []

    monday = PatrolState(schedule, TERRITORY)
    log = patrol(monday, walk(south_walk, at("2025-09-29 08:00"), every_s=60, device="c03"),
                 at("2025-09-29 08:00"), at("2025-09-29 10:05"))
    assert sorted(a.grid for _, a in changes(log, AlertKind.GRID_NOT_COVERED)) == [NW, NE]
    ((when, off_grid),) = changes(log, AlertKind.OFF_GRID)
    assert when == at("2025-09-29 08:16") and off_grid.slot.area == "anning-north"


def test_a_night_slot_crossing_midnight_is_judged_as_one_slot_at_two_in_the_morning():
    schedule = Schedule((Shift("c07", "anning-north", "Fri", time(22), time(2)),))
    before_midnight = walk(cells(NW), at("2025-09-26 22:00"), every_s=180, device="c07")
    after_midnight = walk(cells(NE), at("2025-09-27 00:00"), every_s=180, device="c07")

    full = PatrolState(schedule, TERRITORY)
    log = patrol(full, before_midnight + after_midnight,
                 at("2025-09-26 21:55"), at("2025-09-27 02:05"))
    assert changes(log, AlertKind.GRID_NOT_COVERED) == []
    (night,) = slots_for(schedule, "c07", date(2025, 9, 26))
    cov = full.coverage.slot_coverage(night, RULE)
    assert cov.grid(NE).first_visit_ms == at("2025-09-27 00:00")
    assert (cov.grid(NW).share, cov.grid(NE).share) == (1.0, 1.0)

    stopped = PatrolState(schedule, TERRITORY)
    log = patrol(stopped, before_midnight, at("2025-09-26 21:55"), at("2025-09-27 02:05"))
    ((when, alert),) = changes(log, AlertKind.GRID_NOT_COVERED)
    assert (when, alert.grid, alert.slot) == (at("2025-09-27 02:00"), NE, night)


def test_a_holiday_raises_nothing_for_a_collector_who_stays_home():
    schedule = Schedule((Shift("c01", "anning-01", "Mon-Fri", time(8), time(10)),),
                        (Holiday(date(2025, 10, 1), "National Day"),))
    state = PatrolState(schedule, TERRITORY)
    assert patrol(state, [], at("2025-10-01 07:00"), at("2025-10-01 11:00")) == []

    working_day = PatrolState(schedule, TERRITORY)
    log = patrol(working_day, [], at("2025-09-30 07:00"), at("2025-09-30 11:00"))
    ((when, _),) = changes(log, AlertKind.NOT_STARTED)
    assert when == at("2025-09-30 08:15")
    assert len(changes(log, AlertKind.GRID_NOT_COVERED)) == 4
    assert changes(log, AlertKind.OFFLINE) == []  # never started is not also offline


def test_the_early_warning_counts_down_and_follows_the_patrol():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    state = PatrolState(schedule, TERRITORY)
    fixes = (walk(cells(NW), at("2025-09-29 08:00"), every_s=60)
             + walk(cells(NE), at("2025-09-29 09:40"), every_s=20))
    rule = CoverageRule(warning_lead_min=25)
    log = patrol(state, fixes, at("2025-09-29 08:00"), at("2025-09-29 10:00"), rule)
    warnings = [(now, c.change, describe(c.alert, 'en'))
                for now, c in log if c.alert.kind is AlertKind.COVERAGE_WARNING]
    assert warnings == [
        (at("2025-09-29 09:35"), Change.RAISED, "3 grids unvisited, 25 min left"),
        (at("2025-09-29 09:40"), Change.UPDATED,
         "3 grids not yet covered (2 unvisited), 20 min left"),
        (at("2025-09-29 09:48"), Change.UPDATED, "2 grids unvisited, 12 min left"),
        (at("2025-09-29 10:00"), Change.RESOLVED,
         "2 grids unvisited, 12 min left (resolved: slot ended)"),
    ]


def test_not_started_is_cleared_by_a_late_start_and_disproved_by_a_late_fix():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    late_start = PatrolState(schedule, TERRITORY)
    log = patrol(late_start, walk(cells(NW)[:1], at("2025-09-29 08:20")),
                 at("2025-09-29 08:00"), at("2025-09-29 08:30"))
    (_, raised), (when, cleared) = changes(log, AlertKind.NOT_STARTED)
    assert raised.raised_at_ms == at("2025-09-29 08:15")
    assert describe(raised, 'en') == "no fix 15 min into the slot"
    assert (when, cleared.resolution) == (at("2025-09-29 08:20"), Resolution.CLEARED)
    assert cleared.detail["first_fix_ms"] == at("2025-09-29 08:20")

    delayed = PatrolState(schedule, TERRITORY)
    on_time = walk(cells(NW)[:1], at("2025-09-29 08:05"), rx_ms=at("2025-09-29 08:30"))
    log = patrol(delayed, on_time, at("2025-09-29 08:00"), at("2025-09-29 08:30"))
    (_, _), (when, disproved) = changes(log, AlertKind.NOT_STARTED)
    assert (when, disproved.resolution) == (at("2025-09-29 08:30"), Resolution.DISPROVED)


def test_off_grid_stationary_and_battery_low_rise_and_clear():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    state = PatrolState(schedule, TERRITORY)
    waiting = [fix(at("2025-09-29 08:00") + i * 60_000, *OUTSIDE, bat=15.0) for i in range(40)]
    arriving = walk(cells(NW)[:10], at("2025-09-29 08:40"), every_s=60, bat=14.0)
    log = patrol(state, waiting + arriving, at("2025-09-29 08:00"), at("2025-09-29 08:50"))

    (raised_at, off), (cleared_at, back) = changes(log, AlertKind.OFF_GRID)
    assert (raised_at, describe(off, 'en')) == (
        at("2025-09-29 08:16"), "outside the responsibility grid for 16 min")
    assert (cleared_at, back.resolution) == (at("2025-09-29 08:40"), Resolution.CLEARED)
    (raised_at, still), (cleared_at, moved) = changes(log, AlertKind.STATIONARY)
    assert (raised_at, describe(still, 'en')) == (at("2025-09-29 08:31"), "within 30 m for 31 min")
    assert (cleared_at, moved.resolution) == (at("2025-09-29 08:40"), Resolution.CLEARED)
    ((raised_at, battery),) = changes(log, AlertKind.BATTERY_LOW)  # 15% -> 14%: no update
    assert (raised_at, describe(battery, 'en')) == (at("2025-09-29 08:00"), "battery at 15%")


def test_leave_recorded_after_the_alert_withdraws_it():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    state = PatrolState(schedule, TERRITORY)
    log = patrol(state, [], at("2025-09-29 08:00"), at("2025-09-29 08:20"))
    assert [a.kind for _, a in changes(log, AlertKind.NOT_STARTED)] == [AlertKind.NOT_STARTED]
    on_leave = Schedule(schedule.shifts, (Leave("c01", date(2025, 9, 29)),))
    state.coverage.reconfigure(schedule=on_leave)
    (change,) = evaluate(state, at("2025-09-29 08:21"), RULE)
    assert (change.change, change.alert.resolution) == (Change.RESOLVED, Resolution.UNSCHEDULED)
    assert patrol(state, [], at("2025-09-29 08:22"), at("2025-09-29 10:30")) == []


def test_coverage_rules_can_differ_per_responsibility_grid():
    schedule = Schedule((Shift("c01", "anning-north", "Mon", time(8), time(10)),
                         Shift("c02", "anning-south", "Mon", time(8), time(10))))
    rules = CoverageRules(RULE, {"anning-south": CoverageRule(passes_required=2)})
    state = PatrolState(schedule, TERRITORY)
    fixes = (walk(cells(NW) + cells(NE), at("2025-09-29 08:00"), every_s=60)
             + walk(cells(SW) + cells(SE), at("2025-09-29 08:00"), every_s=60, device="c02"))
    log = patrol(state, fixes, at("2025-09-29 08:00"), at("2025-09-29 10:00"), rules)
    short = changes(log, AlertKind.GRID_NOT_COVERED)
    assert sorted((a.collector, a.grid, tuple(a.detail["shortfalls"])) for _, a in short) == [
        ("c02", SW, ("passes",)), ("c02", SE, ("passes",))]


def test_a_restart_from_a_checkpoint_carries_on_where_it_stopped():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    path = cells(NW) + cells(NE) + cells(SE)
    fixes = walk(path, at("2025-09-29 08:00"), every_s=60)  # runs out at 09:50
    first, second = ([f for f in fixes if f.t_ms <= at("2025-09-29 09:00")],
                     [f for f in fixes if f.t_ms > at("2025-09-29 09:00")])

    steady = PatrolState(schedule, TERRITORY)
    patrol(steady, first, at("2025-09-29 08:00"), at("2025-09-29 09:00"))
    expected = patrol(steady, second, at("2025-09-29 09:01"), at("2025-09-29 10:10"))

    interrupted = PatrolState(schedule, TERRITORY)
    patrol(interrupted, first, at("2025-09-29 08:00"), at("2025-09-29 09:00"))
    saved = json.loads(json.dumps(interrupted.checkpoint()))
    restarted = PatrolState.restore(saved, schedule, TERRITORY)
    assert restarted.open_alerts == interrupted.open_alerts
    assert patrol(restarted, second, at("2025-09-29 09:01"), at("2025-09-29 10:10")) == expected
    assert raised_kinds(expected) == {AlertKind.COVERAGE_WARNING, AlertKind.GRID_NOT_COVERED}


def test_prune_hands_back_open_alerts_of_finished_slots():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    state = PatrolState(schedule, TERRITORY)
    patrol(state, [], at("2025-09-29 08:00"), at("2025-09-29 10:00"))
    assert len(state.open_alerts) == 5  # not started, and four grids not covered
    assert state.prune(at("2025-09-29 10:00")) == []
    dropped = state.prune(at("2025-09-30 10:00"))
    assert len(dropped) == 5 and state.open_alerts == []


def test_a_watchdog_clock_stepping_back_changes_nothing():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    state = PatrolState(schedule, TERRITORY)
    patrol(state, [], at("2025-09-29 08:00"), at("2025-09-29 08:20"))
    assert evaluate(state, at("2025-09-29 08:05"), RULE) == []
    assert state.last_evaluated_ms == at("2025-09-29 08:20")


def test_a_pipeline_batch_is_observed_for_the_collectors_behind_the_devices():
    schedule = Schedule((Shift("c01", "anning-01", "Mon", time(8), time(10)),))
    state = PatrolState(schedule, TERRITORY)
    handsets = {"imei-8615": "c01"}
    handset_fixes = walk(cells(NW)[:3], at("2025-09-29 08:00"), device="imei-8615")
    van_fixes = walk(cells(NW)[:2], at("2025-09-29 08:05"), device="van-07")  # not a handset
    batch = [Placed(f, c, TERRITORY.locate(c)[1])
             for f, c in zip(handset_fixes + van_fixes, cells(NW)[:3] + cells(NW)[:2], strict=True)]
    assert state.coverage.observe_many(batch, handsets.get) == 3
    (slot,) = slots_for(schedule, "c01", date(2025, 9, 29))
    assert state.coverage.slot_coverage(slot, RULE).grid(NW).visits == 3
