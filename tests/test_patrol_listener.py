"""The patrol listener takes the pipeline's placed fixes in bulk: what it records does not
depend on how the fixes were cut into slices or in what order they came."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from tracker.metrics import Metrics
from tracker.model import DeviceClass, Fix, Placed, PlacedSlice
from tracker.patrol import ABSORB_FIXES, Patrol

T0 = 1_795_392_000_000
GRIDS = ["620105003003010", "620105003003011", "620105003003012", None]

placed_fixes = st.lists(
    st.builds(
        lambda device, cls, minute, grid: Placed(
            Fix(device, cls, "620105", T0 + minute * 60_000, 36.1, 103.72, T0), 0x8C3D0, grid),
        st.sampled_from(["c01", "c02", "v01"]),
        st.sampled_from([DeviceClass.COLLECTOR, DeviceClass.COLLECTOR, DeviceClass.VEHICLE]),
        st.integers(0, 120), st.sampled_from(GRIDS)),
    max_size=80)


def listener() -> Patrol:
    # no plan: the listener keeps grids' last visits alone, no store or hub needed
    return Patrol(None, None, {}, None, Metrics(), clock_ms=lambda: T0)


@settings(max_examples=200, deadline=None)
@given(placed=placed_fixes, data=st.data())
def test_grids_last_visits_are_the_newest_collector_fix_whatever_the_slicing(placed, data):
    expected: dict[str, int] = {}
    for p in placed:
        if p.fix.device_class is DeviceClass.COLLECTOR and p.grid is not None:
            expected[p.grid] = max(expected.get(p.grid, 0), p.fix.t_ms)
    patrol = listener()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(placed)), max_size=5)))
    for lo, hi in zip([0, *cuts], [*cuts, len(placed)]):
        patrol.observe_slice(PlacedSlice.of(placed[lo:hi]))
        if data.draw(st.booleans()):
            patrol.absorb()  # the watchdog reading coverage between slices
    assert patrol.last_visit == expected
    # in time order, the way a handset reports as it walks
    walked = listener()
    ordered = sorted(placed, key=lambda p: p.fix.t_ms)
    for lo, hi in zip([0, *cuts], [*cuts, len(ordered)]):
        walked.observe_slice(PlacedSlice.of(ordered[lo:hi]))
        walked.absorb()
    assert walked.last_visit == expected


def test_fixes_wait_for_a_bulk_step_but_every_reader_sees_them():
    patrol = listener()
    one = Placed(Fix("c01", DeviceClass.COLLECTOR, "620105", T0, 36.1, 103.72, T0), 0x8C3D0, GRIDS[0])
    patrol.observe_slice(PlacedSlice.of([one]))
    assert patrol._pending_fixes == 1  # waiting
    assert patrol.last_visit == {GRIDS[0]: T0}  # reading absorbs first
    assert patrol._pending_fixes == 0
    many = [one._replace(fix=one.fix._replace(t_ms=T0 + i)) for i in range(ABSORB_FIXES)]
    patrol.observe_slice(PlacedSlice.of(many))
    assert patrol._pending_fixes == 0  # a full bulk step is taken at once
