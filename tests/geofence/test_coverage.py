"""Patrol coverage per collector, slot and unit grid, on real H3 cells in Anning, Lanzhou.

Four unit grids of about 100 m x 100 m, numbered west to east, north to south:

    620105001001001 | 620105001001002
    ----------------+----------------
    620105001001003 | 620105001001004

2025-09-29 is a Monday.
"""

import base64
import json
import sys
from array import array
from datetime import time

import h3.api.basic_int as h3
import pytest
from hypothesis import given, settings, strategies as st

from geofence.coverage import CoverageState
from geofence.placed import Placed
from geofence.schedule import Reassignment, Schedule, Shift
from geofence.territory import CoverageRule, CoverageRules, Territory
from tests.coverage_city import MONDAY, NE, NW, OUTSIDE, RULE, SCHEDULE, SE, SW, TERRITORY, at, cells, fix, monday_slot, slots_for, walk


def test_the_grids_are_about_ten_thousand_square_metres_of_res_12_cells():
    assert TERRITORY.res == 12
    for grid, grid_cells in TERRITORY.grids.items():
        assert 30 <= len(grid_cells) <= 45, grid
        cell = next(iter(grid_cells))
        assert TERRITORY.locate(cell) == (cell, grid)
    assert TERRITORY.locate(TERRITORY.cell_of(*OUTSIDE)) is None


def test_cells_visited_passes_and_minutes_inside():
    state = CoverageState(SCHEDULE, TERRITORY)
    morning = walk(cells(NW), at("2025-09-29 08:00"))          # 08:00–08:18, every cell
    return_visit = walk(cells(NW)[:5], at("2025-09-29 09:00"))  # back after 42 min
    for f in morning + return_visit:
        assert state.observe(f) == monday_slot()

    cov = state.slot_coverage(monday_slot(), RULE)
    nw, ne = cov.grid(NW), cov.grid(NE)
    assert (nw.share, nw.passes, nw.visits) == (1.0, 2, len(morning) + 5)
    assert nw.first_visit_ms == at("2025-09-29 08:00")
    assert nw.last_visit_ms == at("2025-09-29 09:02")
    assert nw.shortfalls(RULE) == ()
    assert (ne.share, ne.passes, ne.first_visit_ms) == (0.0, 0, None)
    assert ne.longest_unvisited_ms == 120 * 60_000
    assert ne.shortfalls(RULE) == ("cells", "passes")
    # 18 min walking, 2 min on the return; the 42 min the handset was silent do not count
    assert cov.inside_min == pytest.approx((len(morning) - 1 + 4) * 0.5)
    assert (cov.fixes, cov.first_fix_ms, cov.last_fix_ms) == (
        len(morning) + 5, at("2025-09-29 08:00"), at("2025-09-29 09:02"))


def test_a_visit_within_the_pass_gap_is_the_same_pass():
    state = CoverageState(SCHEDULE, TERRITORY)
    for f in walk(cells(NW)[:3], at("2025-09-29 08:00"), every_s=600):  # 08:00, 08:10, 08:20
        state.observe(f)
    assert state.slot_coverage(monday_slot(), RULE).grid(NW).passes == 1
    two_passes = CoverageRule(pass_gap_min=10)
    assert state.slot_coverage(monday_slot(), two_passes).grid(NW).passes == 3


def test_longest_unvisited_counts_from_slot_start_and_up_to_as_of():
    state = CoverageState(SCHEDULE, TERRITORY)
    state.observe(walk(cells(SE)[:1], at("2025-09-29 08:20"))[0])
    state.observe(walk(cells(SE)[:1], at("2025-09-29 09:10"))[0])
    rule = CoverageRule(min_cell_share=0.0, max_unvisited_min=45)
    mid = state.slot_coverage(monday_slot(), rule, at("2025-09-29 08:50")).grid(SE)
    assert mid.longest_unvisited_ms == 30 * 60_000
    end = state.slot_coverage(monday_slot(), rule).grid(SE)
    assert end.longest_unvisited_ms == 50 * 60_000
    assert end.shortfalls(rule) == ("unvisited",)
    assert end.shortfalls(rule, final=False) == ()


def test_a_fix_whose_accuracy_radius_is_too_wide_does_not_count_as_a_visit():
    state = CoverageState(SCHEDULE, TERRITORY)
    (c,) = cells(NE)[:1]
    state.observe(fix(at("2025-09-29 08:05"), *h3.cell_to_latlng(c), acc=80.0))
    state.observe(fix(at("2025-09-29 08:06"), *h3.cell_to_latlng(cells(SW)[0]), acc=None))
    cov = state.slot_coverage(monday_slot(), CoverageRule(max_acc_m=50))
    assert (cov.fixes, cov.counted, cov.grid(NE).visits, cov.grid(SW).visits) == (2, 1, 0, 1)
    lax = state.slot_coverage(monday_slot(), CoverageRule(max_acc_m=None))
    assert lax.grid(NE).visited_cells == {c}


def test_fixes_off_duty_are_not_kept():
    state = CoverageState(SCHEDULE, TERRITORY)
    assert state.observe(fix(at("2025-09-29 07:59"), *OUTSIDE)) is None
    assert state.observe(fix(at("2025-09-29 10:00"), *OUTSIDE)) is None
    assert state.observe(fix(at("2025-09-29 08:30"), *OUTSIDE, device="c99")) is None
    assert state.slot_coverage(monday_slot(), RULE).fixes == 0


def test_a_finer_cell_from_the_pipeline_counts_for_its_unit_grid():
    state = CoverageState(SCHEDULE, TERRITORY)
    target = cells(SW)[4]
    lat, lon = h3.cell_to_latlng(target)
    finer = h3.latlng_to_cell(lat, lon, 13)
    state.observe(Placed(fix(at("2025-09-29 08:01"), lat, lon), finer, SW))
    assert state.slot_coverage(monday_slot(), RULE).grid(SW).visited_cells == {target}


def test_the_device_can_report_for_a_named_collector():
    state = CoverageState(SCHEDULE, TERRITORY)
    handset = fix(at("2025-09-29 08:01"), *h3.cell_to_latlng(cells(NW)[0]), device="imei-8615")
    assert state.observe(handset) is None
    assert state.observe(handset, collector="c01") == monday_slot()


def test_the_current_runs_outside_and_standing_still():
    state = CoverageState(SCHEDULE, TERRITORY)
    inside = walk(cells(NW)[:4], at("2025-09-29 08:00"), every_s=60)
    away = [fix(at("2025-09-29 08:10") + i * 60_000, OUTSIDE[0], OUTSIDE[1] + i * 1e-5)
            for i in range(20)]
    for f in inside + away:
        state.observe(f)
    cov = state.slot_coverage(monday_slot(), RULE)
    assert cov.outside_since_ms == at("2025-09-29 08:10")
    assert cov.stationary_since_ms == at("2025-09-29 08:10")  # 19 m drift in 19 min
    assert cov.last_counted_ms == at("2025-09-29 08:29")
    back = walk(cells(NW)[:1], at("2025-09-29 08:30"))
    state.observe(back[0])
    cov = state.slot_coverage(monday_slot(), RULE)
    assert cov.outside_since_ms is None
    assert cov.stationary_since_ms == at("2025-09-29 08:30")


def test_the_latest_battery_reading_by_fix_time_wins():
    state = CoverageState(SCHEDULE, TERRITORY)
    lat, lon = h3.cell_to_latlng(cells(NW)[0])
    state.observe(fix(at("2025-09-29 08:20"), lat, lon, bat=18.0))
    state.observe(fix(at("2025-09-29 08:10"), lat, lon, bat=40.0))  # arrives late
    state.observe(fix(at("2025-09-29 08:25"), lat, lon, bat=None))
    cov = state.slot_coverage(monday_slot(), RULE)
    assert (cov.battery_pct, cov.battery_at_ms) == (18.0, at("2025-09-29 08:20"))


def test_checkpoint_survives_json_and_restores_the_same_coverage():
    state = CoverageState(SCHEDULE, TERRITORY)
    for f in walk([*cells(NE), TERRITORY.cell_of(*OUTSIDE)], at("2025-09-29 08:00")):
        state.observe(f)
    state.observe(fix(at("2025-09-29 09:00"), *OUTSIDE, acc=None, bat=None))
    saved = json.loads(json.dumps(state.checkpoint()))
    restored = CoverageState.restore(saved, SCHEDULE, TERRITORY)
    assert restored.slot_coverage(monday_slot(), RULE) == state.slot_coverage(monday_slot(), RULE)
    assert restored.take_changes() == state.take_changes()
    with pytest.raises(ValueError):
        CoverageState.restore({**saved, "version": 99}, SCHEDULE, TERRITORY)


def checkpointed_walk() -> CoverageState:
    state = CoverageState(SCHEDULE, TERRITORY)
    for f in walk(cells(NE), at("2025-09-29 08:00")):
        state.observe(f)
    state.observe(fix(at("2025-09-29 09:00"), *OUTSIDE, acc=None, bat=None))
    return state


def test_a_checkpoint_written_a_list_per_fix_still_restores():
    state = checkpointed_walk()
    expected = state.slot_coverage(monday_slot(), RULE)
    # version 1, as the service wrote it before coverage kept columns
    old = {"version": 1, "tracks": {"c01": [list(s) for s in state.samples("c01", 0, 2**62)]},
           "changed": {c: list(span) for c, span in state.take_changes().items()}}
    restored = CoverageState.restore(json.loads(json.dumps(old)), SCHEDULE, TERRITORY)
    assert restored.slot_coverage(monday_slot(), RULE) == expected
    assert restored.checkpoint() == checkpointed_walk().checkpoint()


def test_a_checkpoint_from_a_machine_of_the_other_byte_order_restores():
    saved = checkpointed_walk().checkpoint()
    foreign = {**saved, "byteorder": "big" if sys.byteorder == "little" else "little", "tracks": {}}
    for collector, columns in saved["tracks"].items():
        foreign["tracks"][collector] = {}
        for name, text in columns.items():
            column = array("q" if name in ("t", "cell") else "d", base64.b64decode(text))
            column.byteswap()
            foreign["tracks"][collector][name] = base64.b64encode(column.tobytes()).decode()
    restored = CoverageState.restore(foreign, SCHEDULE, TERRITORY)
    assert restored.slot_coverage(monday_slot(), RULE) == checkpointed_walk().slot_coverage(monday_slot(), RULE)


@pytest.mark.parametrize("damage", ["short column", "not base64", "out of order"])
def test_a_damaged_checkpoint_is_refused(damage):
    saved = checkpointed_walk().checkpoint()
    columns = saved["tracks"]["c01"]
    times = array("q", base64.b64decode(columns["t"]))
    if damage == "short column":
        columns["lat"] = base64.b64encode(base64.b64decode(columns["lat"])[:-8]).decode()
    elif damage == "not base64":
        columns["cell"] = "not base64!"
    else:
        times[0], times[1] = times[1], times[0]
        columns["t"] = base64.b64encode(times.tobytes()).decode()
    with pytest.raises(ValueError):
        CoverageState.restore(saved, SCHEDULE, TERRITORY)


def test_prune_forgets_old_fixes_and_changes_are_reported_once():
    state = CoverageState(SCHEDULE, TERRITORY)
    for f in walk(cells(NW)[:10], at("2025-09-29 08:00"), every_s=60):
        state.observe(f)
    assert state.take_changes() == {"c01": (at("2025-09-29 08:00"), at("2025-09-29 08:09"))}
    assert state.take_changes() == {}
    assert state.prune(at("2025-09-29 08:05")) == 5
    assert state.slot_coverage(monday_slot(), RULE).first_fix_ms == at("2025-09-29 08:05")


@pytest.mark.parametrize("compacted", [0, 3, 7, 10])
def test_prune_cuts_across_compacted_and_recent_fixes_alike(compacted):
    walked = walk(cells(NW)[:10], at("2025-09-29 08:00"), every_s=60)
    state = CoverageState(SCHEDULE, TERRITORY)
    for f in walked[:compacted]:
        state.observe(f)
    state.compact()
    for f in walked[compacted:]:
        state.observe(f)
    assert state.prune(at("2025-09-29 08:05")) == 5
    kept = state.samples("c01", at("2025-09-29 08:00"), at("2025-09-29 10:00"))
    assert [s.t_ms for s in kept] == [f.t_ms for f in walked[5:]]
    assert kept[0] == (walked[5].t_ms, cells(NW)[5], walked[5].lat, walked[5].lon, 5.0, 80.0)


def test_a_new_schedule_re_judges_the_same_fixes():
    state = CoverageState(SCHEDULE, TERRITORY)
    for f in walk(cells(SW), at("2025-09-29 08:00")):
        state.observe(f)
    assert state.slot_coverage(monday_slot(), RULE).grid(SW).share == 1.0
    state.take_changes()
    moved = Schedule(SCHEDULE.shifts, (Reassignment("c01", MONDAY, "anning-north"),))
    state.reconfigure(schedule=moved)
    (north_slot,) = slots_for(moved, "c01", MONDAY)
    cov = state.slot_coverage(north_slot, RULE)
    assert [g.grid for g in cov.grids] == [NW, NE]
    assert cov.outside_since_ms == at("2025-09-29 08:00")
    assert "c01" in state.take_changes()


def test_rules_per_area_inherit_the_city_default():
    rules = CoverageRules.from_dict({
        "default": {"min_cell_share": 0.5, "passes_required": 2},
        "areas": {"anning-north": {"passes_required": 3}},
    })
    assert rules.for_area("anning-south") == CoverageRule(min_cell_share=0.5, passes_required=2)
    assert rules.for_area("anning-north") == CoverageRule(min_cell_share=0.5, passes_required=3)
    with pytest.raises(ValueError):
        CoverageRule.from_dict({"min_share": 0.5})
    with pytest.raises(ValueError):
        CoverageRule(min_cell_share=1.5)
    with pytest.raises(ValueError):
        CoverageRule(offline_min=-1)


def test_a_territory_from_the_importers_cell_cover_matches_the_polygons():
    cover = {cell: code for code, grid_cells in TERRITORY.grids.items() for cell in grid_cells}
    rebuilt = Territory.from_cover(cover, TERRITORY.areas)
    assert rebuilt == TERRITORY and rebuilt.res == 12


def test_a_bad_territory_or_a_schedule_naming_an_unknown_area_is_refused():
    nw_cells = TERRITORY.grids[NW]
    with pytest.raises(ValueError, match="in unit grids"):
        Territory({NW: nw_cells, NE: nw_cells}, {})
    with pytest.raises(ValueError, match="unit grid code"):
        Territory({"6201050010": nw_cells}, {})
    with pytest.raises(ValueError, match="area"):
        Territory({NW: nw_cells}, {"anning-01": [NW, NE]})
    with pytest.raises(ValueError, match="unknown responsibility grids"):
        CoverageState(Schedule((Shift("c01", "xigu-09", "Mon", time(8), time(10)),)), TERRITORY)


# Every cell of the four grids plus a few outside, as fix positions.
POSITIONS = [h3.cell_to_latlng(c) for g in (NW, NE, SW, SE) for c in cells(g)] + [
    OUTSIDE, (36.1041, 103.7185), (36.1060, 103.7200)]
fixes_in_the_slot = st.lists(
    st.builds(
        lambda minute, second, where, acc, bat: fix(
            at("2025-09-29 07:58") + minute * 60_000 + second * 1000, *POSITIONS[where],
            acc=acc, bat=bat),
        st.integers(0, 124), st.sampled_from([0, 30]), st.integers(0, len(POSITIONS) - 1),
        st.sampled_from([None, 3.0, 20.0, 49.0, 80.0]), st.sampled_from([None, 15.0, 60.0])),
    max_size=60)


@settings(max_examples=150, deadline=None)
@given(fixes=fixes_in_the_slot, data=st.data())
def test_any_arrival_order_gives_the_same_coverage(fixes, data):
    shuffled = data.draw(st.permutations(fixes))
    resent = data.draw(st.lists(st.sampled_from(fixes), max_size=5)) if fixes else []
    repeated = shuffled + resent
    slot = monday_slot()
    rule = CoverageRule(passes_required=2, pass_gap_min=10, max_unvisited_min=40)
    in_order, out_of_order = CoverageState(SCHEDULE, TERRITORY), CoverageState(SCHEDULE, TERRITORY)
    for f in sorted(fixes, key=lambda f: f.t_ms):
        in_order.observe(f)
        in_order.slot_coverage(slot, rule, f.t_ms)  # as a watchdog would, fix by fix
    for f in repeated:
        out_of_order.observe(f)
        out_of_order.slot_coverage(slot, rule)  # late fixes must redo what this folded
    # the pipeline's way: placed fixes, a slice at a time
    in_slices = CoverageState(SCHEDULE, TERRITORY)
    placed = [Placed(f, TERRITORY.cell_of(f.lat, f.lon), None) for f in repeated]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(placed)), max_size=4)))
    on_duty = 0
    for lo, hi in zip([0, *cuts], [*cuts, len(placed)], strict=True):
        on_duty += in_slices.observe_many(placed[lo:hi])
    assert on_duty == sum(slot.start_ms <= f.t_ms < slot.end_ms for f in repeated)
    # a handset reporting as it walks: runs in time order, each recorded in one step
    in_runs = CoverageState(SCHEDULE, TERRITORY)
    walked = sorted(placed, key=lambda p: p.fix.t_ms)
    for lo, hi in zip([0, *cuts], [*cuts, len(walked)], strict=True):
        in_runs.observe_groups({"c01": [(p.fix, p.cell) for p in walked[lo:hi]]})
        if data.draw(st.booleans()):
            in_runs.slot_coverage(slot, rule)  # folded, then compacted under the fold
            in_runs.compact()  # what was kept as fixes goes into columns
    in_runs.observe_many(placed[len(shuffled):])  # the resent ones again, into the columns too
    # fixes held back until the rest was compacted: they land among the columns
    held = data.draw(st.sets(st.integers(0, max(len(placed) - 1, 0)))) if placed else set()
    compacted = CoverageState(SCHEDULE, TERRITORY)
    compacted.observe_many(p for i, p in enumerate(placed) if i not in held)
    compacted.slot_coverage(slot, rule)
    compacted.compact()
    compacted.observe_many(placed[i] for i in sorted(held, reverse=True))
    for as_of in (None, at("2025-09-29 08:45"), at("2025-09-29 09:30")):
        assert (in_order.slot_coverage(slot, rule, as_of)
                == out_of_order.slot_coverage(slot, rule, as_of)
                == in_slices.slot_coverage(slot, rule, as_of)
                == in_runs.slot_coverage(slot, rule, as_of)
                == compacted.slot_coverage(slot, rule, as_of))
    assert in_runs.checkpoint() == in_slices.checkpoint() == out_of_order.checkpoint() == compacted.checkpoint()


def test_the_longest_unvisited_stretch_runs_on_to_the_time_asked():
    state = CoverageState(SCHEDULE, TERRITORY)
    state.observe(fix(at("2025-09-29 08:40"), *h3.cell_to_latlng(cells(NW)[0])))
    state.observe(fix(at("2025-09-29 08:45"), *h3.cell_to_latlng(cells(NW)[1])))
    state.observe(fix(at("2025-09-29 08:50"), *h3.cell_to_latlng(cells(NE)[0])))
    minutes = {}
    for as_of in ("08:55", "09:20", "09:45"):
        cov = state.slot_coverage(monday_slot(), RULE, at(f"2025-09-29 {as_of}"))
        minutes[as_of] = {g.grid: g.longest_unvisited_ms // 60_000 for g in cov.grids}
    # NW: 40 min from the slot start to its first visit, then the time since 08:45 once longer
    # NE: 50 min before its visit, then the time since 08:50; SW, SE: never visited
    assert minutes["08:55"] == {NW: 40, NE: 50, SW: 55, SE: 55}
    assert minutes["09:20"] == {NW: 40, NE: 50, SW: 80, SE: 80}
    assert minutes["09:45"] == {NW: 60, NE: 55, SW: 105, SE: 105}
