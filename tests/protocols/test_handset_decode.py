"""The handset decoder: real-shaped payloads, one assertion each, and garbage."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from unittest import mock

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import protocols.handset.decode as handset_decode
from protocols.coords import from_wgs84, wgs84_to_gcj02
from protocols.errors import DecodeError
from protocols.handset import HandsetLimits, decode_position, decode_status
from protocols.model import Datum, DeviceClass, DeviceRef

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
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["t", "lat", "lon", "acc", "spd", "hdg", "alt", "bat", "crs", "seq", "x"]), inner, max_size=8),
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


# --- the msgspec fast path against the Python path ------------------------------------
#
# decode_position tries msgspec first and hands anything it refuses to the Python path
# (_decode_position_slow). Whatever the payload, the two must give the same outcome: the
# same fixes, value for value (types and the sign of zero included), or the same errors.

LIMITS = HandsetLimits()
SMALL_LIMITS = [HandsetLimits(max_batch=3), HandsetLimits(max_payload_bytes=120)]
OLDEST, NEWEST = NOW - LIMITS.max_age_ms, NOW + LIMITS.max_future_ms


def fix_key(fix) -> tuple:
    return (type(fix).__name__, *((type(v).__name__, repr(v)) for v in fix))


def outcome(decode, payload: bytes, limits: HandsetLimits = LIMITS):
    try:
        batch = decode(payload, REF, NOW, limits)
    except DecodeError as exc:
        return ("raised", exc.reason, str(exc))
    except (ValueError, AssertionError) as exc:
        # a converted position out of range, refused by tests/sanity.py: the same in both paths
        return ("failed", type(exc).__name__, str(exc))
    return ([fix_key(f) for f in batch.fixes], [(e.reason, str(e)) for e in batch.rejected])


def assert_same_as_slow(payload: bytes, limits: HandsetLimits = LIMITS):
    expected = outcome(handset_decode._decode_position_slow, payload, limits)
    assert outcome(decode_position, payload, limits) == expected
    return expected


@contextmanager
def slow_path_forbidden():
    def refuse(*args):
        raise AssertionError("the payload reached the Python path")

    with mock.patch.object(handset_decode, "_decode_position_slow", refuse):
        yield


class Raw(bytes):
    """Bytes spliced into a payload as they are: what no encoder would write."""


# a string that is not UTF-8, a timestamp ext of bad length, another ext, a map and an array
# as keys, a never-used byte, float32 NaN and 36.1, an int beyond int64, int64's minimum
RAW_MSGPACK = [Raw(b"\xa2\xff\xfe"), Raw(b"\xd5\xff\x00\x00"), Raw(b"\xd4\x05\x00"), Raw(b"\x81\x81\x01\x02\x03"),
               Raw(b"\x81\x91\x01\x03"), Raw(b"\xc1"), Raw(b"\xca\x7f\xc0\x00\x00"), Raw(b"\xca\x42\x10\x6a\xe1"),
               Raw(b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), Raw(b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00")]
RAW_JSON = [Raw(b"NaN"), Raw(b"Infinity"), Raw(b"-Infinity"), Raw(b"1e400"), Raw(b"-0"), Raw(b"-0.0"), Raw(b"1.0"),
            Raw(b"1E1"), Raw(b"9" * 5000), Raw(b'"\xff"'), Raw(b'"\\ud800"'), Raw(b'"\xed\xa0\x80"'), Raw(b'"\\q"'),
            Raw(b"[[[]]]"), Raw(b"36.104600000000000000000000001"), Raw(b"01"), Raw(b"tru")]

junk = (st.none() | st.booleans() | st.text(max_size=4) | st.binary(max_size=4) | st.just([]) | st.just({})
        | st.sampled_from([2**63, 2**64 - 1, -(2**63), 2**70, "36.1", "NaN"]))


def plausible(lo: float, hi: float) -> st.SearchStrategy:
    """A value the handset decoder takes: a float or an int in range, the bounds, zero of either sign."""
    return st.floats(lo, hi) | st.integers(math.ceil(lo), math.floor(hi)) | st.sampled_from([lo, hi, max(lo, 0.0), max(lo, -0.0)])


def mostly(likely: st.SearchStrategy, rest: st.SearchStrategy) -> st.SearchStrategy:
    """`likely` three times in four (``|`` would weigh each branch of `rest` as much)."""
    return st.integers(0, 3).flatmap(lambda i: likely if i else rest)


def implausible(lo: float, hi: float) -> st.SearchStrategy:
    """A value it refuses: just outside (mostly), further out, not finite, not a number."""
    just_outside = st.sampled_from([math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf)])
    further = st.sampled_from([lo - 1, hi + 1, math.floor(hi) + 1, math.nan, math.inf, -math.inf, 1e300])
    return mostly(mostly(just_outside, further), st.floats().filter(lambda x: not lo <= x <= hi) | junk)


BOUNDS = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0), "acc": (0.0, 100_000.0), "spd": (0.0, 340.0), "hdg": (0.0, 360.0),
          "alt": (-1_000.0, 20_000.0), "bat": (0.0, 100.0)}
GOOD_VALUES = {
    "t": st.integers(NOW - 86_400_000, NOW) | st.sampled_from([OLDEST, NEWEST]),
    **{name: plausible(lo, hi) for name, (lo, hi) in BOUNDS.items()},
    "crs": st.sampled_from(["wgs84", "gcj02", "bd09"]),
    "seq": st.integers(0, 2**63 - 1) | st.sampled_from([0, 2**63 - 1]),
}
BAD_VALUES = {
    "t": mostly(st.sampled_from([OLDEST - 1, NEWEST + 1, float(NOW), NOW + 0.5, 0, -1, math.nan]), st.integers() | junk),
    **{name: implausible(lo, hi) for name, (lo, hi) in BOUNDS.items()},
    "crs": mostly(st.sampled_from(["WGS84", "utm50", "", b"gcj02", None, 1]), junk),
    "seq": mostly(st.sampled_from([2**63, -1, 2**64 - 1, 7.0, True, "7"]), junk),
}
REQUIRED = ("t", "lat", "lon", "acc")
OPTIONAL = ("spd", "hdg", "alt", "bat", "crs", "seq")
# keys the decoder does not know, or knows in a form the loaders may read differently
ODD_KEYS = ["x", "", "src", "LAT", "lat ", 1, None, 1.5, True, b"lat", b"x", Raw(b"\xa2\xff\xfe")]


@st.composite
def fix_pairs(draw, raw: list[Raw], faults: bool = True) -> list[tuple[object, object]]:
    """A handset map as key/value pairs, so that keys may repeat, good (in China when in
    GCJ-02 or BD-09). With faults, one in six has an unknown key and one in four one or two
    faults."""
    pairs = [(name, draw(GOOD_VALUES[name])) for name in REQUIRED]
    pairs += [(name, draw(st.none() | GOOD_VALUES[name])) for name in OPTIONAL if draw(st.booleans())]
    if dict(pairs).get("crs", "wgs84") != "wgs84":
        pairs[1:3] = [("lat", draw(st.floats(1.0, 55.0))), ("lon", draw(st.floats(73.0, 135.0)))]
    if draw(st.integers(0, 3)) == 0:  # a repeated key with a good value: the last one wins, in both loaders
        name = draw(st.sampled_from(REQUIRED + OPTIONAL[:-2]))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(GOOD_VALUES[name])))
    if not faults:
        return pairs
    if draw(st.integers(0, 5)) == 0:  # an unknown key: ignored, though its value has to load
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(st.sampled_from(ODD_KEYS)), draw(st.sampled_from(raw) | junk)))
    if draw(st.integers(0, 3)):
        return pairs
    for _ in range(draw(st.integers(1, 2))):
        fault = draw(st.sampled_from(["value", "value", "value", "missing", "zero", "repeat", "unknown key", "raw"]))
        at = draw(st.integers(0, len(pairs)))
        if fault == "value":  # in place of the good one, if any
            name = draw(st.sampled_from(REQUIRED + OPTIONAL))
            pairs = [(k, v) for k, v in pairs if k != name]
            pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(BAD_VALUES[name])))
        elif fault == "missing":
            name = draw(st.sampled_from(REQUIRED))
            pairs = [(k, v) for k, v in pairs if k != name]
        elif fault == "zero":
            pairs += [("lat", draw(st.sampled_from([0, 0.0, -0.0]))), ("lon", draw(st.sampled_from([0, 0.0, -0.0])))]
        elif fault == "repeat":  # a bad value before or after a good one
            name = draw(st.sampled_from(REQUIRED + OPTIONAL))
            pairs.insert(at, (name, draw(BAD_VALUES[name])))
        elif fault == "unknown key":
            pairs.insert(at, (draw(st.sampled_from(ODD_KEYS)), draw(junk | GOOD_VALUES["lat"] | st.sampled_from(raw))))
        else:  # raw junk as the value of a known key
            pairs.insert(at, (draw(st.sampled_from(REQUIRED + OPTIONAL)), draw(st.sampled_from(raw))))
    return pairs


def pack_msgpack(doc, single_float: bool) -> bytes:
    if isinstance(doc, Raw):
        return bytes(doc)
    if isinstance(doc, list) and doc and isinstance(doc[0], tuple):  # a map as pairs
        return msgpack.Packer().pack_map_header(len(doc)) + b"".join(pack_msgpack(k, single_float) + pack_msgpack(v, single_float)
                                                                     for k, v in doc)
    if isinstance(doc, list) and doc and isinstance(doc[0], list):  # a batch of maps
        return msgpack.Packer().pack_array_header(len(doc)) + b"".join(pack_msgpack(d, single_float) for d in doc)
    try:
        return msgpack.packb(doc, use_bin_type=True, use_single_float=single_float)
    except OverflowError:  # an int beyond 64 bits: as a string instead
        return msgpack.packb(str(doc))


def pack_json(doc, space: str) -> bytes:
    if isinstance(doc, Raw):
        return bytes(doc)
    if isinstance(doc, list) and doc and isinstance(doc[0], tuple):
        return b"{" + b",".join(pack_json(k if isinstance(k, (str, Raw)) else str(k), space) + b":" + space.encode() + pack_json(v, space)
                                for k, v in doc) + b"}"
    if isinstance(doc, list) and doc and isinstance(doc[0], list):
        return b"[" + (b"," + space.encode()).join(pack_json(d, space) for d in doc) + b"]"
    return json.dumps(doc, default=lambda b: b.decode("latin-1")).encode()  # bytes: as a string


@st.composite
def position_payloads(draw) -> bytes:
    """One map, a batch (now and then empty or over the limit), or any structure at all;
    in msgpack (floats in 64 or 32 bits) or in JSON (blanks here and there)."""
    as_json = draw(st.booleans())
    raw = RAW_JSON if as_json else RAW_MSGPACK
    shape = draw(st.sampled_from(["single", "single", "batch", "batch", "batch", "junk"]))
    if shape == "single":
        doc = draw(fix_pairs(raw))
    elif shape == "batch":
        doc = draw(st.lists(fix_pairs(raw), max_size=draw(st.sampled_from([4, 25]))))
    else:
        doc = draw(json_values)
    if as_json:
        space = draw(st.sampled_from(["", " ", "\n\t"]))
        return draw(st.sampled_from(["", " ", "\r\n", "\t "])).encode() + pack_json(doc, space) + space.encode()
    return pack_msgpack(doc, draw(st.booleans()))


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(position_payloads(), st.sampled_from([LIMITS, LIMITS, LIMITS, *SMALL_LIMITS]))
def test_fast_path_decodes_every_payload_as_the_python_path_does(payload, limits):
    assert_same_as_slow(payload, limits)


def encode(doc, as_json: bool) -> bytes:
    return b" " + pack_json(doc, " ") if as_json else pack_msgpack(doc, False)


@pytest.mark.parametrize("name", REQUIRED + OPTIONAL)
@settings(max_examples=100)
@given(data=st.data(), as_json=st.booleans(), others=st.integers(0, 3), single=st.booleans())
def test_one_bad_value_among_good_ones_is_told_by_the_python_path(name, data, as_json, others, single):
    """The fast path accepts no value the Python path refuses, and hands the payload over."""
    good = data.draw(st.lists(fix_pairs(RAW_JSON if as_json else RAW_MSGPACK, faults=False), min_size=others + 1, max_size=others + 1))
    bad = [(k, v) for k, v in good[0] if k != name]
    bad.insert(data.draw(st.integers(0, len(bad))), (name, data.draw(BAD_VALUES[name])))
    assert_same_as_slow(encode(bad if single else [*good[1:], bad], as_json))


@settings(max_examples=500)
@given(st.binary(max_size=300) | st.builds(lambda head, tail: head + tail, st.sampled_from([b"{", b"[", b" ", b"\x81", b"\x91"]),
                                            st.binary(max_size=300)))
def test_fast_path_agrees_with_the_python_path_on_random_bytes(data):
    assert_same_as_slow(data)


@settings(max_examples=300)
@given(st.sampled_from(VALID_PAYLOADS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_fast_path_agrees_with_the_python_path_on_mutated_payloads(payload, flips):
    data = bytearray(payload)
    for position, value in flips:
        data[position % len(data)] = value
    assert_same_as_slow(bytes(data))


def good_fixes_in(lat: st.SearchStrategy, lon: st.SearchStrategy, crs: list[str]) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {"t": st.integers(OLDEST, NEWEST), "lat": lat, "lon": lon, "acc": st.floats(0, 100_000) | st.integers(0, 100_000)},
        optional={"spd": st.none() | st.floats(0, 340), "hdg": st.none() | st.floats(0, 360) | st.integers(0, 360),
                  "alt": st.none() | st.floats(-1_000, 20_000), "bat": st.none() | st.integers(0, 100),
                  "crs": st.sampled_from(crs), "seq": st.none() | st.integers(0, 2**63 - 1)})


# anywhere in WGS-84; in China in GCJ-02 and BD-09 (converted near ±180° or the poles, a
# BD-09 position can leave the valid range: both paths build the same Fix then)
good_fixes = (good_fixes_in(st.floats(-90, 90).filter(bool), st.floats(-180, 180), ["wgs84"])
              | good_fixes_in(st.floats(0.5, 56), st.floats(72, 138), ["wgs84", "gcj02", "bd09"]))


@settings(max_examples=300)
@given(st.lists(good_fixes, min_size=1, max_size=20), st.booleans(), st.booleans(), st.sampled_from(["", " ", "\n\t\r"]))
def test_good_fixes_never_reach_the_python_path(docs, as_json, single, blank):
    payload_doc = docs[0] if single else docs
    payload = (blank + json.dumps(payload_doc)).encode() if as_json else msgpack.packb(payload_doc)
    expected = outcome(handset_decode._decode_position_slow, payload)
    assert len(expected[0]) == len(docs[:1] if single else docs) and not expected[1]
    with slow_path_forbidden():
        assert outcome(decode_position, payload) == expected
    # one fix over the batch limit: refused whole, as the Python path refuses it
    assert_same_as_slow(payload, HandsetLimits(max_batch=len(docs) - 1))


def collectors_batch(n: int = 20) -> list[dict]:
    glat, glon = wgs84_to_gcj02(36.1046, 103.7191)
    return [{**GOOD, "t": NOW - 1000 * (n - i), "seq": i, "lat": 36.1046 + i * 1e-4, "hdg": float(i * 18), "spd": None,
             **({"lat": glat, "lon": glon, "crs": "gcj02"} if i % 4 == 0 else {})} for i in range(n)]


def test_a_normal_batch_takes_the_fast_path():
    for payload in (msgpack.packb(collectors_batch()), json.dumps(collectors_batch()).encode(), msgpack.packb(GOOD),
                    b"\r\n " + json.dumps(GOOD).encode()):
        expected = outcome(handset_decode._decode_position_slow, payload)
        with slow_path_forbidden():
            got = outcome(decode_position, payload)
        assert got == expected and len(got[0]) in (1, 20)


def test_a_bad_element_costs_only_itself():
    docs = collectors_batch()
    docs[7] = {**docs[7], "lat": 91.0}
    batch = decode_position(msgpack.packb(docs), REF, NOW)
    assert [f.seq for f in batch.fixes] == [i for i in range(20) if i != 7]
    assert [e.reason for e in batch.rejected] == ["lat_range"]
    with slow_path_forbidden(), pytest.raises(AssertionError, match="Python path"):
        decode_position(msgpack.packb(docs), REF, NOW)


@pytest.mark.parametrize("bad, reason", [
    ({"t": NOW + 3_600_000}, "future_time"),
    ({"lat": 0.0, "lon": 0}, "zero_position"),
    ({"spd": True}, "bad_type"),
    ({"seq": 7.0}, "bad_type"),
    ({"crs": None}, "bad_crs"),
    ({"acc": 2**64 - 1}, "bad_value"),
    ({"hdg": math.nan}, "not_finite"),
])
def test_what_the_fast_path_refuses_is_told_by_the_python_path(bad, reason):
    docs = collectors_batch()
    docs[3] = {**docs[3], **bad}
    batch = decode_position(msgpack.packb(docs), REF, NOW)
    assert (len(batch.fixes), [e.reason for e in batch.rejected]) == (19, [reason])


def test_json_nan_literal_is_not_finite():
    payload = b'[{"t": %d, "lat": NaN, "lon": 103.7, "acc": 5}, {"t": %d, "lat": 36.1, "lon": 103.7, "acc": 5}]' % (NOW, NOW)
    batch = assert_same_as_slow(payload)
    assert (len(batch[0]), [reason for reason, _ in batch[1]]) == (1, ["not_finite"])


def test_repeated_key_last_one_wins():
    head = msgpack.Packer().pack_map_header(5) + b"".join(msgpack.packb(k) + msgpack.packb(v) for k, v in GOOD.items() if k in REQUIRED)
    for payload in (head + msgpack.packb("lat") + msgpack.packb(36.5),
                    b'{"t": %d, "lat": 36.1, "lon": 103.7, "acc": 5, "lat": 36.5}' % NOW):
        assert one(payload).lat == 36.5
        with slow_path_forbidden():
            assert one(payload).lat == 36.5
    # a bad first value is overwritten: the Python path decides, and keeps the last one
    payload = b'{"lat": "north", "t": %d, "lat": 36.5, "lon": 103.7, "acc": 5}' % NOW
    assert one(payload).lat == 36.5


def test_unknown_key_is_ignored_but_its_value_still_has_to_load():
    assert one(msgpack.packb({**GOOD, "src": "gps"})).seq == 42
    for pairs, reason in (([*GOOD.items(), ("src", Raw(b"\xa2\xff\xfe"))], "bad_msgpack"),  # not UTF-8
                          ([*GOOD.items(), ("src", Raw(b"\xd5\xff\x00\x00"))], "bad_msgpack"),  # a timestamp ext of bad length
                          ([*GOOD.items(), ("src", Raw(b"\x81\x81\x01\x02\x03"))], "bad_msgpack")):  # a map as a key
        with pytest.raises(DecodeError) as caught:
            decode_position(pack_msgpack(pairs, False), REF, NOW)
        assert caught.value.reason == reason
    with pytest.raises(DecodeError) as caught:
        decode_position(json.dumps(GOOD).encode()[:-1] + b', "src": ' + b"9" * 5000 + b"}", REF, NOW)
    assert caught.value.reason == "bad_json"


def test_converted_datums_are_the_python_path_fixes():
    for crs in ("gcj02", "bd09"):
        lat, lon = from_wgs84(36.1046, 103.7191, Datum(crs))
        payload = msgpack.packb([{**GOOD, "lat": lat, "lon": lon, "crs": crs}, {**GOOD, "hdg": 360}])
        expected = outcome(handset_decode._decode_position_slow, payload)
        with slow_path_forbidden():
            assert outcome(decode_position, payload) == expected
        first, second = decode_position(payload, REF, NOW).fixes
        assert (round(first.lat, 6), round(first.lon, 6), first.crs, second.hdg) == (36.1046, 103.7191, Datum(crs), 0.0)


def test_a_bd09_position_that_converts_off_the_globe_is_refused_and_costs_only_itself():
    # BD-09 sits about 0.0065° east and 0.006° north of GCJ-02, wherever the point is
    edge = [{**GOOD, "lat": 36.1, "lon": -179.9999, "crs": "bd09"}, {**GOOD, "lat": -89.9999, "lon": 100.0, "crs": "bd09"}]
    batch = decode_position(msgpack.packb([*edge, GOOD]), REF, NOW)
    assert [e.reason for e in batch.rejected] == ["lon_range", "lat_range"]
    assert len(batch.fixes) == 1
    assert all(-90.0 <= f.lat <= 90.0 and -180.0 <= f.lon <= 180.0 for f in batch.fixes)
