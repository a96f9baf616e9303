"""The patrol listener takes the pipeline's placed fixes in bulk: what it records does not
depend on how the fixes were cut into slices or in what order they came."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from alerts.patrol import PatrolState
from geofence.coverage import CoverageState
from geofence.placed import Placed, PlacedSlice
from protocols.model import DeviceClass, Fix
from tests.coverage_city import MONDAY, NE, NW, OUTSIDE, RULE, SCHEDULE, SE, TERRITORY, at, cells, slots_for
from tracker.live import patrol as patrol_module
from tracker.live.patrol import ABSORB_FIXES, Patrol
from tracker.metrics import Metrics

T0 = at("2025-09-29 07:58")  # Monday, two minutes before c01's 08:00-10:00 slot
CELLS = {NW: cells(NW)[0], NE: cells(NE)[-1], SE: cells(SE)[3], None: TERRITORY.cell_of(*OUTSIDE)}

placed_fixes = st.lists(
    st.builds(
        lambda device, cls, minute, grid: Placed(
            Fix(device, cls, "620105", T0 + minute * 60_000, 36.1, 103.72, T0, acc=5.0), CELLS[grid], grid),
        st.sampled_from(["c01", "c02", "v01"]),
        st.sampled_from([DeviceClass.COLLECTOR, DeviceClass.COLLECTOR, DeviceClass.VEHICLE]),
        st.integers(0, 130), st.sampled_from(list(CELLS))),
    max_size=80)


def listener(with_plan: bool) -> Patrol:
    # no store or hub needed; with a plan, coverage is on for c01's Monday slot
    patrol = Patrol(None, None, {}, None, Metrics(), clock_ms=lambda: T0)
    if with_plan:
        patrol.state = PatrolState(SCHEDULE, TERRITORY)
    return patrol


@pytest.mark.parametrize("with_plan", [False, True], ids=["no plan", "coverage on"])
@settings(max_examples=150, deadline=None)
@given(placed=placed_fixes, data=st.data())
def test_what_the_listener_records_does_not_depend_on_slicing_or_order(with_plan, placed, data):
    expected: dict[str, int] = {}
    for p in placed:
        if p.fix.device_class is DeviceClass.COLLECTOR and p.grid is not None:
            expected[p.grid] = max(expected.get(p.grid, 0), p.fix.t_ms)
    # the coverage engine fed one fix at a time: c01's collector fixes only
    one_by_one = CoverageState(SCHEDULE, TERRITORY)
    for p in placed:
        if p.fix.device_class is DeviceClass.COLLECTOR:
            one_by_one.observe(p)
    slot = slots_for(SCHEDULE, "c01", MONDAY)[0]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(placed)), max_size=5)))
    ordered = sorted(placed, key=lambda p: p.fix.t_ms)  # the way a handset reports as it walks
    for fixes in (placed, ordered):
        patrol = listener(with_plan)
        for lo, hi in zip([0, *cuts], [*cuts, len(fixes)], strict=True):
            patrol.observe_slice(PlacedSlice.of(fixes[lo:hi]))
            if data.draw(st.booleans()):
                patrol.absorb()  # the watchdog reading coverage between slices
        assert patrol.last_visit == expected
        if with_plan:
            assert patrol.state.coverage.slot_coverage(slot, RULE) == one_by_one.slot_coverage(slot, RULE)


def test_fixes_wait_for_a_bulk_step_but_every_reader_sees_them():
    patrol = listener(with_plan=True)
    one = Placed(Fix("c01", DeviceClass.COLLECTOR, "620105", T0, 36.1, 103.72, T0), CELLS[NW], NW)
    patrol.observe_slice(PlacedSlice.of([one]))
    assert patrol._pending_fixes == 1  # waiting
    assert patrol.last_visit == {NW: T0}  # reading absorbs first
    assert patrol._pending_fixes == 0
    many = [one._replace(fix=one.fix._replace(t_ms=T0 + i)) for i in range(ABSORB_FIXES)]
    patrol.observe_slice(PlacedSlice.of(many))
    assert patrol._pending_fixes == 0  # a full bulk step is taken at once


def test_at_a_high_rate_coverage_compacts_without_waiting_for_the_watchdog(monkeypatch):
    monkeypatch.setattr(patrol_module, "COMPACT_FIXES", 50)
    monkeypatch.setattr(patrol_module, "ABSORB_FIXES", 10)
    patrol = listener(with_plan=True)

    def track():
        return patrol.state.coverage._tracks["c01"].samples

    walk = [Placed(Fix("c01", DeviceClass.COLLECTOR, "620105", T0 + 120_000 + i * 1000, 36.1, 103.72, T0), CELLS[NW], NW)
            for i in range(60)]
    for i in range(0, 40, 10):
        patrol.observe_slice(PlacedSlice.of(walk[i:i + 10]))
    assert len(track().hot) == 40  # held whole, below the limit
    patrol.observe_slice(PlacedSlice.of(walk[40:50]))
    assert len(track().hot) == 0 and len(track()) == 50  # the limit reached: all in columns
    patrol.observe_slice(PlacedSlice.of(walk[50:60]))
    assert len(track().hot) == 10 and len(track()) == 60  # and counting again
