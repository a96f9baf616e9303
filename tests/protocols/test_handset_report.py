"""Collector problem reports and verification reports as handsets send them (msgpack and
JSON), the mistakes a report is refused for, and garbage of every shape refused cleanly."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, strategies as st

from protocols.coords import distance_m, to_wgs84
from protocols.errors import DecodeError
from protocols.handset.report import MAX_PHOTOS, ProblemReport, Verdict, VerificationReport, decode_report
from protocols.model import Datum, DeviceClass, DeviceRef

REF = DeviceRef("c0001", DeviceClass.COLLECTOR, "620105")
RX = 1_764_000_000_000  # 2025-11-24 16:00 UTC
PHOTO = "sha256:" + "ab" * 32

# as a handset sends it: msgpack, a photo hash and an upload URL, GCJ-02 from the map SDK
REFUSE = msgpack.packb({
    "id": "c0001-20251124-0007", "t": RX - 90_000, "cat": "E0102", "desc": "安宁西路北侧绿化带内暴露垃圾约2立方",
    "lat": 36.10335, "lon": 103.72631, "acc": 8.0, "crs": "gcj02",
    "photos": [PHOTO, "https://img.example.cn/u/7/0007.jpg", PHOTO],
})


def test_a_problem_report_keeps_its_id_category_text_place_and_photos():
    report = decode_report(REFUSE, REF, RX)
    assert isinstance(report, ProblemReport)
    assert (report.device, report.district, report.report_id, report.t_ms, report.category) == \
        ("c0001", "620105", "c0001-20251124-0007", RX - 90_000, "E0102")
    assert report.description.startswith("安宁西路")
    assert report.photos == (PHOTO, "https://img.example.cn/u/7/0007.jpg")  # the repeated hash once
    assert report.place.datum is Datum.GCJ02
    # stored in WGS-84: GCJ-02 is offset a few hundred metres in Lanzhou
    assert (report.place.lat, report.place.lon) == to_wgs84(36.10335, 103.72631, Datum.GCJ02)
    assert 100 < distance_m(report.place.lat, report.place.lon, 36.10335, 103.72631) < 700


def test_a_verification_report_in_json_answers_its_case():
    payload = json.dumps({"id": "v-88", "t": RX - 1000, "verify": {"case": 4711, "result": "done"},
                          "note": "已清理", "lat": 36.1034, "lon": 103.7262, "photos": [PHOTO]}).encode()
    report = decode_report(payload, REF, RX)
    assert isinstance(report, VerificationReport)
    assert (report.case, report.verdict, report.note, report.photos) == (4711, Verdict.DONE, "已清理", (PHOTO,))
    assert report.place is not None and report.place.lat == 36.1034


def test_a_verification_without_a_position_is_kept():
    payload = msgpack.packb({"id": "v-89", "t": RX, "verify": {"case": 12, "result": "not_done"}})
    report = decode_report(payload, REF, RX)
    assert isinstance(report, VerificationReport) and report.place is None and report.verdict is Verdict.NOT_DONE


def test_unknown_accuracy_is_kept_as_unknown():
    doc = msgpack.unpackb(REFUSE)
    doc["acc"] = -1.0
    assert decode_report(msgpack.packb(doc), REF, RX).place.acc is None


@pytest.mark.parametrize(("change", "reason", "field"), [
    ({"id": ""}, "bad_id", "id"),
    ({"id": "x" * 65}, "bad_id", "id"),
    ({"id": "a b"}, "bad_id", "id"),
    ({"cat": "X0102"}, "bad_category", "cat"),
    ({"cat": None}, "missing_field", "cat"),
    ({"desc": None}, "missing_field", "desc"),
    ({"desc": "x" * 2001}, "too_long", "desc"),
    ({"desc": "a\x00b"}, "bad_value", "desc"),
    ({"lat": None}, "missing_field", "lat"),
    ({"lat": 91.0}, "lat_range", "lat"),
    ({"lat": 0.0, "lon": 0.0}, "zero_position", None),
    ({"crs": "bd"}, "bad_crs", "crs"),
    ({"acc": 1e308}, "bad_value", "acc"),
    ({"t": RX + 3_600_000}, "future_time", "t"),
    ({"t": "yesterday"}, "bad_type", "t"),
    ({"photos": ["file:///sdcard/1.jpg"]}, "bad_photo", "photos"),
    ({"photos": [PHOTO] * 0 + [f"sha256:{i:064x}" for i in range(MAX_PHOTOS + 1)]}, "too_large", "photos"),
    ({"photos": "one.jpg"}, "bad_type", "photos"),
    ({"verify": {"case": 1, "result": "done"}}, "bad_value", "cat"),
    ({"verify": {"case": 0, "result": "done"}}, "bad_value", "verify"),
    ({"verify": {"case": 5, "result": "maybe"}}, "bad_value", "verify"),
    ({"verify": [5]}, "bad_type", "verify"),
    ({"image": "base64..."}, "unknown_field", "image"),
])
def test_a_report_with_a_mistake_is_refused_saying_which(change, reason, field):
    doc = msgpack.unpackb(REFUSE)
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    with pytest.raises(DecodeError) as refused:
        decode_report(msgpack.packb(doc), REF, RX)
    assert (refused.value.reason, refused.value.field) == (reason, field)


@pytest.mark.parametrize("payload", [b"", b"[]", b"\xc1", b"{", b"7", b"x" * 40000])
def test_what_is_not_a_report_is_refused(payload):
    with pytest.raises(DecodeError):
        decode_report(payload, REF, RX)


@given(st.binary(max_size=300))
def test_garbage_bytes_give_a_report_or_a_decode_error(payload):
    try:
        decode_report(payload, REF, RX)
    except DecodeError:
        pass


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1), st.floats(),
                    st.text(max_size=20), st.binary(max_size=5))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)


@given(st.dictionaries(st.sampled_from(["id", "t", "cat", "desc", "lat", "lon", "acc", "crs", "photos", "verify", "note"]),
                       VALUES))
def test_maps_of_any_values_give_a_report_or_a_decode_error(doc):
    doc.setdefault("id", "r1")
    try:
        decode_report(msgpack.packb(doc), REF, RX)
    except DecodeError:
        pass
