"""The nearest collectors on duty, by H3 ring search: the same answer as measuring every
collector, only those on duty, nobody beyond the limit, and moves keep the index right."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from geofence.nearby import CollectorIndex, Position
from protocols.coords import distance_m

LAT, LON = 36.1050, 103.7200  # Anning


def test_collectors_are_ranked_by_distance_and_those_off_duty_are_left_out():
    index = CollectorIndex([
        Position("c1", LAT + 0.0010, LON, 1),  # ~111 m north
        Position("c2", LAT, LON + 0.0030, 2),  # ~270 m east
        Position("c3", LAT - 0.0001, LON, 3),  # ~11 m south
        Position("c4", LAT + 0.05, LON, 4),  # ~5.5 km: beyond the limit
    ])
    ranked = index.nearest(LAT, LON, k=3)
    assert [c.device for c in ranked] == ["c3", "c1", "c2"]
    assert 10 < ranked[0].distance_m < 12 and ranked[0].t_ms == 3
    assert [c.device for c in index.nearest(LAT, LON, k=3, on_duty={"c1", "c2", "c4"})] == ["c1", "c2"]
    assert index.nearest(LAT, LON, k=3, on_duty=set()) == []


def test_a_collector_who_moved_is_found_where_they_are_now():
    index = CollectorIndex([Position("c1", LAT + 0.02, LON, 1), Position("c2", LAT + 0.001, LON, 1)])
    index.move(Position("c1", LAT, LON + 0.0001, 2))
    assert [c.device for c in index.nearest(LAT, LON, k=1)] == ["c1"]
    index.forget("c1")
    assert [c.device for c in index.nearest(LAT, LON, k=1)] == ["c2"] and len(index) == 1


def test_the_responsible_collector_is_marked_and_wins_a_tie():
    # the same distance east and west
    index = CollectorIndex([Position("c1", LAT, LON + 0.001, 1), Position("c2", LAT, LON - 0.001, 1)])
    assert [c.device for c in index.nearest(LAT, LON, k=2)] == ["c1", "c2"]  # by id when nothing else decides
    ranked = index.nearest(LAT, LON, k=2, responsible={"c2": True})
    assert ranked[0].distance_m == ranked[1].distance_m
    assert [(c.device, c.in_grid) for c in ranked] == [("c2", True), ("c1", False)]


OFFSETS = st.tuples(st.floats(-0.03, 0.03), st.floats(-0.03, 0.03))


@settings(max_examples=60, deadline=None)
@given(st.lists(OFFSETS, min_size=1, max_size=40), st.integers(1, 5), st.floats(200, 4000))
def test_the_ring_search_finds_what_measuring_everyone_finds(offsets, k, max_m):
    positions = [Position(f"c{i}", LAT + dy, LON + dx, i) for i, (dy, dx) in enumerate(offsets)]
    index = CollectorIndex(positions)
    expected = sorted((distance_m(LAT, LON, p.lat, p.lon), p.device) for p in positions)
    expected = [device for d, device in expected if d <= max_m][:k]
    assert [c.device for c in index.nearest(LAT, LON, k=k, max_m=max_m)] == expected
