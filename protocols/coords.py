"""Datum conversion between WGS-84, GCJ-02 and BD-09, and distances between positions.

WGS-84 → GCJ-02 is the widely published reverse-engineered formula (Krasovsky ellipsoid);
it is the identity outside China's bounding box. GCJ-02 → WGS-84 has no closed form: we
iterate the forward transform until the residual is below a millimetre-scale tolerance.
GCJ-02 ↔ BD-09 is a small polar transform.

The box test belongs to the WGS-84 point. A GCJ-02 point is up to ~1 km from its WGS-84
origin, so near the box edge the two can fall on opposite sides of it: the inverse decides
by where the WGS-84 solution lands, not by where the GCJ-02 input lies.
"""

from __future__ import annotations

import math

from protocols.model import Datum

_A = 6378245.0  # Krasovsky 1940 semi-major axis
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
M_PER_DEG = math.radians(EARTH_RADIUS_M)  # metres in a degree of latitude (~111,195)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Metres between two WGS-84 positions, equirectangular about their mean latitude.

    Within 0.1% of the great-circle distance up to tens of kilometres (a city), for a
    fraction of haversine's cost: the position filters call it once per fix.
    """
    x = (lon2 - lon1) * math.cos(math.radians((lat1 + lat2) * 0.5))
    y = lat2 - lat1
    return math.sqrt(x * x + y * y) * M_PER_DEG


def outside_china(lat: float, lon: float) -> bool:
    return not _in_box(lat, lon, 0.0)


def _in_box(lat: float, lon: float, margin: float) -> bool:
    return 72.004 - margin <= lon <= 137.8347 + margin and 0.8293 - margin <= lat <= 55.8271 + margin


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


# The GCJ-02 offset never exceeds ~0.011° (in longitude) anywhere in the box; a GCJ-02
# point further than this from the box cannot have a WGS-84 origin inside it.
_INVERSE_MARGIN = 0.05
_EDGE_TOLERANCE = 1e-9


def _offset(lat: float, lon: float) -> tuple[float, float]:
    """The GCJ-02 offset (dlat, dlon) in degrees at a WGS-84 point, box test not applied."""
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = math.sin(radlat)
    magic = 1 - _EE * magic * magic
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return dlat, dlon


def wgs84_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    if outside_china(lat, lon):
        return lat, lon
    dlat, dlon = _offset(lat, lon)
    return lat + dlat, lon + dlon


def gcj02_to_wgs84(lat: float, lon: float) -> tuple[float, float]:
    """Inverse by fixed-point iteration: converges to well under 0.5 m in a few steps.

    Iterates the unconditional offset, then applies the box test to the WGS-84 solution;
    testing the GCJ-02 input instead gets points within ~1 km of the box edge wrong by
    the whole offset (up to ~700 m).
    """
    if not _in_box(lat, lon, _INVERSE_MARGIN):
        return lat, lon
    wlat, wlon = lat, lon
    for _ in range(30):
        dlat, dlon = _offset(wlat, wlon)
        rlat, rlon = wlat + dlat - lat, wlon + dlon - lon
        wlat -= rlat
        wlon -= rlon
        if abs(rlat) < 1e-9 and abs(rlon) < 1e-9:
            break
    # a solution on the box edge lands a rounding error either side of it
    if not _in_box(wlat, wlon, _EDGE_TOLERANCE):
        return lat, lon
    return wlat, wlon


def gcj02_to_bd09(lat: float, lon: float) -> tuple[float, float]:
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.sin(theta) + 0.006, z * math.cos(theta) + 0.0065


def bd09_to_gcj02(lat: float, lon: float) -> tuple[float, float]:
    """Inverse of :func:`gcj02_to_bd09`, refined by iteration to sub-millimetre."""
    x, y = lon - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    glat, glon = z * math.sin(theta), z * math.cos(theta)
    for _ in range(10):
        blat, blon = gcj02_to_bd09(glat, glon)
        dlat, dlon = blat - lat, blon - lon
        glat -= dlat
        glon -= dlon
        if abs(dlat) < 1e-10 and abs(dlon) < 1e-10:
            break
    return glat, glon


# Datum is a StrEnum, so "gcj02" and Datum.GCJ02 compare equal: compare with ==, and
# refuse anything else rather than let it fall through to one of the branches.
def to_wgs84(lat: float, lon: float, datum: Datum) -> tuple[float, float]:
    if datum == Datum.WGS84:
        return lat, lon
    if datum == Datum.GCJ02:
        return gcj02_to_wgs84(lat, lon)
    if datum == Datum.BD09:
        return gcj02_to_wgs84(*bd09_to_gcj02(lat, lon))
    raise ValueError(f"unknown datum {datum!r}")


def from_wgs84(lat: float, lon: float, datum: Datum) -> tuple[float, float]:
    if datum == Datum.WGS84:
        return lat, lon
    if datum == Datum.GCJ02:
        return wgs84_to_gcj02(lat, lon)
    if datum == Datum.BD09:
        return gcj02_to_bd09(*wgs84_to_gcj02(lat, lon))
    raise ValueError(f"unknown datum {datum!r}")
