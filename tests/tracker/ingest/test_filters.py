"""Position filters: each refusal with its reason; late fixes are kept."""

from __future__ import annotations

from hypothesis import given, strategies as st

from protocols.coords import distance_m
from protocols.model import DeviceClass, Fix
from tracker.ingest.filters import FilterParams, PositionFilter

T0 = 1_795_000_000_000
LAT, LON = 36.1050, 103.7200
M = 1 / 111_195  # one metre of latitude, in degrees


def fix(t_s: float, north_m: float = 0.0, *, cls=DeviceClass.COLLECTOR, acc=5.0, seq=None, device="c1") -> Fix:
    return Fix(device, cls, "620105", T0 + int(t_s * 1000), LAT + north_m * M, LON, T0, acc, None, None, None, None, seq=seq)


DEFAULT_PARAMS = FilterParams()


def screen_all(fixes, params=DEFAULT_PARAMS):
    return PositionFilter(params).screen_all(fixes)


def test_a_walk_passes_every_filter():
    assert screen_all([fix(i * 5, i * 6) for i in range(10)]) == [None] * 10


def test_a_repeated_seq_is_a_duplicate():
    assert screen_all([fix(0, seq=7), fix(5, 6, seq=8), fix(0, seq=7)]) == [None, None, "duplicate"]


def test_the_same_time_and_place_without_seq_is_a_duplicate():
    assert screen_all([fix(0), fix(0)]) == [None, "duplicate"]


def test_a_fix_with_a_poor_accuracy_radius_is_refused():
    assert screen_all([fix(0, acc=400.0)]) == ["accuracy"]


def test_a_walker_at_200_kmh_is_refused():
    # 556 m in 10 s is 200 km/h
    assert screen_all([fix(0), fix(10, 556)]) == [None, "speed"]


def test_a_vehicle_at_144_kmh_is_not():
    assert screen_all([fix(0, cls=DeviceClass.VEHICLE), fix(10, 400, cls=DeviceClass.VEHICLE)]) == [None, None]


def test_a_jump_is_judged_against_the_last_good_fix_not_the_jump():
    assert screen_all([fix(0), fix(10, 2000), fix(20, 20)]) == [None, "speed", None]


def test_a_stationary_sensor_drifting_a_few_metres_is_refused():
    assert screen_all([fix(0, cls=DeviceClass.SENSOR), fix(60, 6, cls=DeviceClass.SENSOR)]) == [None, "drift"]


def test_a_late_fix_is_not_refused_for_speed():
    assert screen_all([fix(0), fix(100, 100), fix(50, 5000)]) == [None, None, None]


def test_a_switched_off_filter_lets_everything_through():
    assert screen_all([fix(0, acc=400.0)], FilterParams(enabled=frozenset())) == [None]


@given(st.sampled_from(list(DeviceClass)), st.floats(-40, 40), st.floats(-40, 40), st.integers(1, 20_000),
       st.floats(0, 20), st.floats(0, 20))
def test_speed_and_drift_are_judged_on_the_distance_between_the_two_fixes(cls, north_m, east_m, dt_ms, acc1, acc2):
    params = FilterParams()
    east = east_m / (111_195 * 0.8077)  # cos(36.105°): metres east, in degrees of longitude
    a = Fix("d1", cls, "620105", T0, LAT, LON, T0, acc1, None, None, None, None)
    b = Fix("d1", cls, "620105", T0 + dt_ms, LAT + north_m * M, LON + east, T0, acc2, None, None, None, None)
    moved = distance_m(a.lat, a.lon, b.lat, b.lon)
    expected = None
    if (moved - (acc2 + acc1)) * 1000 > params.max_speed_mps[cls] * dt_ms:
        expected = "speed"
    elif cls in params.drift_classes and moved < params.drift_m:
        expected = "drift"
    assert screen_all([a, b], params) == [None, expected]
