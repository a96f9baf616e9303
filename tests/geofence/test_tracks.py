"""Tracks as people read them: a 25-minute walk with GPS jitter measures close to the
distance walked, not three times it; a ten-minute dwell is a stop and a two-minute pause
is not; poor fixes are dropped; nothing is invented."""

from __future__ import annotations

import random

from hypothesis import given, strategies as st

from geofence.tracks import Point, TrackSettings, length_m, smoothed, stops
from protocols.coords import distance_m

LAT, LON = 36.1050, 103.7200
M_LAT = 1 / 111_195  # degrees of latitude per metre


def walk_with_jitter(seed: int = 7) -> tuple[list[Point], float]:
    """A collector walking north at 1.2 m/s for 25 min, a fix every 2 s with ±8 m noise,
    accuracy 10 m; and the distance really walked."""
    rng = random.Random(seed)
    points = []
    for i in range(750):
        north = 1.2 * 2 * i
        points.append(Point(i * 2000, LAT + (north + rng.gauss(0, 8)) * M_LAT, LON + rng.gauss(0, 8) * M_LAT / 0.807, 10.0))
    return points, 1.2 * 2 * 749


def test_jitter_no_longer_triples_the_distance_walked():
    points, walked = walk_with_jitter()
    assert length_m(points) > 2.5 * walked  # what joining every fix says
    kept = smoothed(points)
    assert 0.9 * walked < length_m(kept) < 1.15 * walked
    assert kept[0].t_ms == points[0].t_ms and kept[-1].t_ms == points[-1].t_ms


def test_a_ten_minute_dwell_is_a_stop_and_a_two_minute_pause_is_not():
    rng = random.Random(3)
    points, t = [], 0

    def stay(minutes: float, lat: float) -> None:
        nonlocal t
        for _ in range(int(minutes * 30)):
            points.append(Point(t, lat + rng.gauss(0, 5) * M_LAT, LON, 8.0))
            t += 2000

    def go(metres: float, lat: float) -> float:
        nonlocal t
        for step in range(int(metres / 2.4)):
            points.append(Point(t, lat + step * 2.4 * M_LAT, LON, 8.0))
            t += 2000
        return lat + metres * M_LAT

    stay(10, LAT)
    lat = go(300, LAT)
    stay(2, lat)
    lat = go(300, lat)
    stay(6, lat)
    found = stops(points)
    assert [round(s.minutes) for s in found] == [10, 6]
    assert distance_m(found[0].lat, found[0].lon, LAT, LON) < 5
    assert found[0].start_ms == 0


def test_fixes_worse_than_the_accuracy_limit_are_dropped():
    points = [Point(0, LAT, LON, 5.0), Point(60_000, LAT + 200 * M_LAT, LON, 150.0), Point(120_000, LAT + 20 * M_LAT, LON, 5.0)]
    kept = smoothed(points)  # a minute apart: nothing to average
    assert [p.t_ms for p in kept] == [0, 120_000]
    assert all(abs(k.lat - p.lat) < 1e-12 and abs(k.lon - p.lon) < 1e-12 for k, p in zip(kept, (points[0], points[2]), strict=True))


def test_no_points_no_track():
    assert smoothed([]) == [] and length_m([]) == 0 and stops([]) == []


POINTS = st.lists(st.tuples(st.floats(-0.002, 0.002), st.floats(-0.002, 0.002), st.one_of(st.none(), st.floats(0, 80))),
                  max_size=60)


@given(POINTS)
def test_the_filtered_track_keeps_fix_times_in_order_within_the_fixes_bounds(raw):
    points = [Point(i * 1000, LAT + dy, LON + dx, acc) for i, (dy, dx, acc) in enumerate(raw)]
    kept = smoothed(points)
    good = [p for p in points if p.acc is None or p.acc <= TrackSettings().max_acc_m]
    assert {p.t_ms for p in kept} <= {p.t_ms for p in good}
    assert [p.t_ms for p in kept] == sorted({p.t_ms for p in kept})
    assert bool(kept) == bool(good)
    if good:  # a mean never leaves the box of what it averages
        assert min(p.lat for p in good) - 1e-9 <= min(p.lat for p in kept) <= max(p.lat for p in kept) <= max(p.lat for p in good) + 1e-9
