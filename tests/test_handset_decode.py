"""The handset decoder: real-shaped payloads, one assertion each, and garbage."""

from __future__ import annotations

import json
import math

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from protocols.coords import wgs84_to_gcj02
from protocols.errors import DecodeError
from protocols.handset import HandsetLimits, decode_position, decode_status
from tracker.model import Datum, DeviceClass, DeviceRef

REF = DeviceRef("c0001", DeviceClass.COLLECTOR, "620105")
NOW = 1_795_000_000_000  # 2026-11-18T09:46:40Z
GOOD = {"t": NOW - 1000, "lat": 36.1046, "lon": 103.7191, "acc": 8.0, "spd": 1.3, "hdg": 270, "alt": 1520, "bat": 77, "seq": 42}


def one(payload: bytes):
    batch = decode_position(payload, REF, NOW)
    assert not batch.rejected
    (fix,) = batch.fixes
    return fix


def test_msgpack_fix_carries_every_field():
    fix = one(msgpack.packb(GOOD))
    assert (fix.device, fix.t_ms, fix.lat, fix.lon, fix.acc, fix.spd, fix.hdg, fix.alt, fix.bat, fix.seq, fix.crs, fix.rx_ms) == (
        "c0001", NOW - 1000, 36.1046, 103.7191, 8.0, 1.3, 270.0, 1520.0, 77.0, 42, Datum.WGS84, NOW)


def test_json_is_told_from_its_first_byte():
    assert one(b"  " + json.dumps(GOOD).encode()).seq == 42


def test_minimal_fix_needs_only_t_lat_lon_acc():
    assert one(msgpack.packb({"t": NOW, "lat": 36.1, "lon": 103.7, "acc": 5})).spd is None


def test_gcj02_input_is_stored_as_wgs84():
    glat, glon = wgs84_to_gcj02(36.1046, 103.7191)
    fix = one(msgpack.packb({**GOOD, "lat": glat, "lon": glon, "crs": "gcj02"}))
    assert (round(fix.lat, 6), round(fix.lon, 6), fix.crs) == (36.1046, 103.7191, Datum.GCJ02)


def test_batch_keeps_good_fixes_beside_a_bad_one():
    batch = decode_position(msgpack.packb([GOOD, {**GOOD, "lat": 91.0}, {**GOOD, "seq": 43}]), REF, NOW)
    assert ([f.seq for f in batch.fixes], [e.reason for e in batch.rejected]) == ([42, 43], ["lat_range"])


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "empty"),
        (b"\xc1\xff\x00garbage", "bad_msgpack"),
        (b"{not json", "bad_json"),
        (msgpack.packb("a string"), "not_a_map"),
        (msgpack.packb([]), "empty"),
        (msgpack.packb({**GOOD, "lat": "36.1"}), "bad_type"),
        (msgpack.packb({**GOOD, "lat": 91.0}), "lat_range"),
        (msgpack.packb({**GOOD, "lon": -180.5}), "lon_range"),
        (msgpack.packb({**GOOD, "lat": math.nan}), "not_finite"),
        (msgpack.packb({**GOOD, "lon": math.inf}), "not_finite"),
        (msgpack.packb({**GOOD, "lat": 0.0, "lon": 0.0}), "zero_position"),
        (msgpack.packb({**GOOD, "t": NOW + 3_600_000}), "future_time"),
        (msgpack.packb({**GOOD, "t": NOW - 30 * 86_400_000}), "stale_time"),
        (msgpack.packb({**GOOD, "t": "yesterday"}), "bad_type"),
        (msgpack.packb({k: v for k, v in GOOD.items() if k != "acc"}), "missing_field"),
        (msgpack.packb({**GOOD, "acc": -1}), "bad_value"),
        (msgpack.packb({**GOOD, "crs": "utm50"}), "bad_crs"),
        (msgpack.packb({**GOOD, "seq": -4}), "bad_type"),
        (msgpack.packb({**GOOD, "bat": 140}), "bad_value"),
        (msgpack.packb({**GOOD, "spd": 1000.0}), "bad_value"),
        (msgpack.packb({**GOOD, "alt": 50_000.0}), "bad_value"),
        (msgpack.packb({**GOOD, "acc": 1e9}), "bad_value"),
        (msgpack.packb({**GOOD, "hdg": 361}), "bad_value"),
        (b"\x91" + msgpack.packb(GOOD)[:-3], "bad_msgpack"),
        (b"\x00" * (1 << 20), "too_large"),
        (msgpack.packb([GOOD] * 501), "too_large"),
    ],
)
def test_bad_payload_is_refused_with_its_reason(payload, reason):
    with pytest.raises(DecodeError) as caught:
        batch = decode_position(payload, REF, NOW)
        if batch.rejected:  # a one-element batch reports its element instead
            raise batch.rejected[0]
    assert caught.value.reason == reason


def test_status_payload():
    status = decode_status(msgpack.packb({"t": NOW, "bat": 55.5, "chg": True, "net": "4g", "app": "2.3.1"}), REF, NOW)
    assert (status.bat, status.charging, status.network, status.app_version) == (55.5, True, "4g", "2.3.1")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["t", "lat", "lon", "acc", "spd", "hdg", "alt", "bat", "crs", "seq", "x"]), inner, max_size=8),
    max_leaves=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_raise_only_decode_errors(data):
    for decode in (decode_position, decode_status):
        try:
            decode(data, REF, NOW)
        except DecodeError:
            pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.booleans())
def test_random_structures_raise_only_decode_errors(doc, as_json):
    try:
        payload = json.dumps(doc).encode() if as_json else msgpack.packb(doc)
    except (TypeError, ValueError):
        payload = msgpack.packb(doc, use_bin_type=True)
    for decode in (decode_position, decode_status):
        try:
            result = decode(payload, REF, NOW)
        except DecodeError:
            continue
        for fix in getattr(result, "fixes", []):
            assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180 and fix.t_ms <= NOW + HandsetLimits().max_future_ms


@settings(max_examples=200)
@given(st.fixed_dictionaries({
    "t": st.integers(NOW - 86_400_000, NOW + 60_000),
    "lat": st.floats(-89.9, 89.9),
    "lon": st.floats(-179.9, 179.9).filter(lambda x: abs(x) > 1e-3),
    "acc": st.floats(0, 500),
    "seq": st.integers(0, 2**40),
}))
def test_any_valid_fix_decodes_to_itself(doc):
    fix = one(msgpack.packb(doc))
    assert (fix.t_ms, fix.lat, fix.lon, fix.acc, fix.seq) == (doc["t"], doc["lat"], doc["lon"], doc["acc"], doc["seq"])


VALID_PAYLOADS = [msgpack.packb(GOOD), msgpack.packb([GOOD, {**GOOD, "seq": 43}]), json.dumps(GOOD).encode(),
                  json.dumps([GOOD] * 3).encode(), msgpack.packb({**GOOD, "crs": "bd09"})]


@settings(max_examples=500)
@given(st.sampled_from(VALID_PAYLOADS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 10_000))
def test_mutated_valid_payloads_raise_only_decode_errors(payload, flips, cut):
    data = bytearray(payload)
    for position, value in flips:
        data[position % len(data)] = value
    for candidate in (bytes(data), bytes(data[: cut % (len(data) + 1)])):
        for decode in (decode_position, decode_status):
            try:
                decode(candidate, REF, NOW)
            except DecodeError:
                pass
