"""Datum conversion: published reference pairs, round trips over China, identity abroad;
distances between positions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from protocols.coords import (
    bd09_to_gcj02,
    distance_m,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    outside_china,
    to_wgs84,
    wgs84_to_gcj02,
)
from protocols.model import Datum

# China's bounding box as the GCJ-02 formula defines it.
LAT_MIN, LAT_MAX = 0.8293, 55.8271
LON_MIN, LON_MAX = 72.004, 137.8347

ANNING = (36.1046, 103.7191)  # Anning district centre, Lanzhou (WGS-84)


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance on the mean Earth sphere."""
    r = 6_371_008.8
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(h))


inside_china = st.tuples(
    st.floats(LAT_MIN, LAT_MAX, allow_nan=False),
    st.floats(LON_MIN, LON_MAX, allow_nan=False),
)
# Anywhere on Earth at least 0.1° from the box: no GCJ-02 offset can reach it.
abroad = st.tuples(st.floats(-90.0, 90.0), st.floats(-180.0, 180.0)).filter(
    lambda p: not (LAT_MIN - 0.1 <= p[0] <= LAT_MAX + 0.1 and LON_MIN - 0.1 <= p[1] <= LON_MAX + 0.1)
)


# --- published reference pairs --------------------------------------------------------

# googollee/eviltransform, python/test.py and go/transform_test.go (the same three pairs in
# every language port): (wgs_lat, wgs_lng, gcj_lat, gcj_lng).
EVILTRANSFORM_PAIRS = [
    pytest.param(31.1774276, 121.5272106, 31.17530398364597, 121.531541859215, id="shanghai"),
    pytest.param(22.543847, 113.912316, 22.540796131694766, 113.9171764808363, id="shenzhen"),
    pytest.param(39.911954, 116.377817, 39.91334545536069, 116.38404722455657, id="beijing"),
]
# eviltransform's two BD-09 pairs (TESTS_bd) are left out: its own bd2wgs does not
# reproduce them (about 10 m off), so they cannot pin this implementation down.


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM_PAIRS)
def test_wgs84_to_gcj02_matches_eviltransform(wlat, wlon, glat, glon):
    assert wgs84_to_gcj02(wlat, wlon) == pytest.approx((glat, glon), abs=1e-9)


@pytest.mark.parametrize(("wlat", "wlon", "glat", "glon"), EVILTRANSFORM_PAIRS)
def test_gcj02_to_wgs84_recovers_eviltransform_origin_within_half_a_metre(wlat, wlon, glat, glon):
    assert metres(gcj02_to_wgs84(glat, glon), (wlat, wlon)) < 0.5


# wandergis/coordtransform, test/app.js: every conversion applied to (lng 116.404, lat 39.915)
# near Tiananmen. Pairs below are (lat, lon).
TIANANMEN = (39.915, 116.404)


def test_wgs84_to_gcj02_matches_coordtransform():
    assert wgs84_to_gcj02(*TIANANMEN) == pytest.approx((39.91640428150164, 116.41024449916938), abs=1e-9)


def test_gcj02_to_bd09_matches_coordtransform():
    assert gcj02_to_bd09(*TIANANMEN) == pytest.approx((39.92133699351021, 116.41036949371029), abs=1e-9)


def test_bd09_to_gcj02_agrees_with_coordtransform_single_step_within_a_decimetre():
    # coordtransform stops after one closed-form step; we iterate to sub-millimetre.
    assert metres(bd09_to_gcj02(*TIANANMEN), (39.90865673957631, 116.39762729119315)) < 0.1


def test_gcj02_to_wgs84_agrees_with_coordtransform_single_step_within_half_a_metre():
    # coordtransform's gcj02towgs84 is the one-step approximation (1-2 m in general).
    assert metres(gcj02_to_wgs84(*TIANANMEN), (39.91359571849836, 116.39775550083061)) < 0.5


# --- round trips inside China ----------------------------------------------------------


@given(inside_china)
def test_wgs_gcj_wgs_round_trip_within_half_a_metre(p):
    assert metres(gcj02_to_wgs84(*wgs84_to_gcj02(*p)), p) < 0.5


@given(inside_china)
def test_wgs_bd_wgs_round_trip_within_half_a_metre(p):
    assert metres(to_wgs84(*from_wgs84(*p, Datum.BD09), Datum.BD09), p) < 0.5


@given(inside_china)
def test_gcj_bd_gcj_round_trip_within_a_millimetre(p):
    assert metres(bd09_to_gcj02(*gcj02_to_bd09(*p)), p) < 0.001


@given(inside_china)
def test_offset_inside_china_stays_under_a_kilometre(p):
    assert metres(wgs84_to_gcj02(*p), p) < 1000.0


@pytest.mark.parametrize(
    "corner",
    [(LAT_MIN, LON_MIN), (LAT_MIN, LON_MAX), (LAT_MAX, LON_MIN), (LAT_MAX, LON_MAX), (LAT_MAX, 120.0)],
)
def test_round_trip_holds_on_the_box_edge_where_the_offset_crosses_it(corner):
    assert metres(gcj02_to_wgs84(*wgs84_to_gcj02(*corner)), corner) < 0.5


def test_anning_centre_moves_by_a_few_hundred_metres():
    assert 100.0 < metres(wgs84_to_gcj02(*ANNING), ANNING) < 700.0


# --- identity outside China ------------------------------------------------------------


@given(abroad)
def test_outside_china_reports_true_abroad(p):
    assert outside_china(*p)


@given(abroad)
def test_wgs84_to_gcj02_is_identity_abroad(p):
    assert wgs84_to_gcj02(*p) == p


@given(abroad)
def test_gcj02_to_wgs84_is_identity_abroad(p):
    assert gcj02_to_wgs84(*p) == p


@given(abroad)
def test_gcj02_datum_round_trip_is_identity_abroad(p):
    assert to_wgs84(*from_wgs84(*p, Datum.GCJ02), Datum.GCJ02) == p


def test_just_outside_the_box_is_untouched():
    assert wgs84_to_gcj02(LAT_MAX + 1e-6, 120.0) == (LAT_MAX + 1e-6, 120.0)


# --- to_wgs84 / from_wgs84 per datum ---------------------------------------------------


def test_wgs84_datum_is_identity_both_ways():
    assert (to_wgs84(*ANNING, Datum.WGS84), from_wgs84(*ANNING, Datum.WGS84)) == (ANNING, ANNING)


def test_from_wgs84_gcj02_is_the_forward_transform():
    assert from_wgs84(*ANNING, Datum.GCJ02) == wgs84_to_gcj02(*ANNING)


def test_to_wgs84_gcj02_is_the_inverse_transform():
    assert to_wgs84(*ANNING, Datum.GCJ02) == gcj02_to_wgs84(*ANNING)


def test_from_wgs84_bd09_goes_through_gcj02():
    assert from_wgs84(*ANNING, Datum.BD09) == gcj02_to_bd09(*wgs84_to_gcj02(*ANNING))


def test_to_wgs84_bd09_goes_through_gcj02():
    assert to_wgs84(*ANNING, Datum.BD09) == gcj02_to_wgs84(*bd09_to_gcj02(*ANNING))


@pytest.mark.parametrize("datum", list(Datum))
def test_every_datum_round_trips_at_anning(datum):
    assert metres(to_wgs84(*from_wgs84(*ANNING, datum), datum), ANNING) < 0.5


@pytest.mark.parametrize("datum", list(Datum))
def test_datum_given_as_its_string_value_converts_the_same(datum):
    assert to_wgs84(*ANNING, datum.value) == to_wgs84(*ANNING, datum)


@pytest.mark.parametrize("convert", [to_wgs84, from_wgs84])
def test_unknown_datum_is_refused_rather_than_treated_as_bd09(convert):
    with pytest.raises(ValueError, match="unknown datum"):
        convert(*ANNING, "cgcs2000")


# --- distance_m ---------------------------------------------------------------------------

# Two positions up to ~0.2° apart (about 20 km: across a city) anywhere but the poles.
city_legs = st.tuples(st.floats(-80, 80), st.floats(-179, 179), st.floats(-0.2, 0.2), st.floats(-0.2, 0.2))


@given(city_legs)
def test_distance_is_symmetric_and_within_a_thousandth_of_the_great_circle(leg):
    lat, lon, dlat, dlon = leg
    a, b = (lat, lon), (lat + dlat, lon + dlon)
    d = distance_m(*a, *b)
    assert d >= 0 and abs(d - distance_m(*b, *a)) < 1e-6
    assert d == pytest.approx(metres(a, b), rel=1e-3, abs=1e-6)


def test_a_thousandth_of_a_degree_north_is_111_metres():
    assert distance_m(36.1046, 103.7191, 36.1056, 103.7191) == pytest.approx(111.195, abs=1e-3)
