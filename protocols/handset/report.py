"""Decode a collector's problem report (spec: docs/protocol.md, "Handset reports").

Topic ``gw/v1/{district}/collector/{device}/report``; one map, msgpack or JSON. Two kinds:

- a **problem report** (上报): a category code, a description, where, photo references;
- a **verification report** (核查): the answer to a verification task the service sent,
  naming the case and whether the problem is gone (``verify``).

Each carries the handset's own report id, so a retry (the handset did not see the
broker's acknowledgement, or resent after a restart) is recognised and stored once.
Photos travel separately (an upload service or the handset's own gallery sync): the
report carries references only, a content hash (``sha256:`` and 64 hex digits) or an
http(s) URL, never image bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from protocols.coords import to_wgs84
from protocols.errors import DecodeError
from protocols.model import MAX_ACCURACY_M, Datum, DeviceRef
from protocols.payload import epoch_ms, load, number

MAX_PAYLOAD_BYTES = 32768
MAX_DESCRIPTION = 2000
MAX_PHOTOS = 9
MAX_PHOTO_REF = 512
MAX_FUTURE_MS = 5 * 60_000
MAX_AGE_MS = 7 * 86_400_000  # a report kept on the handset through a week without network

_REPORT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CATEGORY = re.compile(r"^[CE][0-9]{4}$")
_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f]+$")
_DATUMS = {d.value: d for d in Datum}
_KNOWN = frozenset({"id", "t", "cat", "desc", "lat", "lon", "acc", "crs", "photos", "verify", "note"})


class Verdict(StrEnum):
    DONE = "done"  # the problem is gone: the case may close
    NOT_DONE = "not_done"  # still there: the case goes back for rework


@dataclass(frozen=True, slots=True)
class Place:
    lat: float  # WGS-84
    lon: float
    acc: float | None
    datum: Datum  # as the handset sent it


@dataclass(frozen=True, slots=True)
class ProblemReport:
    device: str
    district: str
    report_id: str
    t_ms: int
    category: str  # C0101, E0102…: the city's taxonomy decides whether it exists
    description: str
    place: Place
    photos: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerificationReport:
    device: str
    district: str
    report_id: str
    t_ms: int
    case: int
    verdict: Verdict
    note: str
    place: Place | None
    photos: tuple[str, ...]


def _text(doc: dict, key: str, limit: int, required: bool) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise DecodeError("missing_field", f"missing {key!r}", key)
        return ""
    if type(value) is not str:
        raise DecodeError("bad_type", f"{key!r} must be text, got {type(value).__name__}", key)
    value = value.strip()
    if len(value) > limit:
        raise DecodeError("too_long", f"{key!r} has {len(value)} characters, at most {limit}", key)
    if "\x00" in value:
        raise DecodeError("bad_value", f"{key!r} contains NUL", key)
    return value


def _place(doc: dict, required: bool) -> Place | None:
    if doc.get("lat") is None and doc.get("lon") is None and not required:
        return None
    lat, lon = number(doc, "lat", True), number(doc, "lon", True)
    if not -90.0 <= lat <= 90.0:
        raise DecodeError("lat_range", f"lat {lat} out of range", "lat")
    if not -180.0 <= lon <= 180.0:
        raise DecodeError("lon_range", f"lon {lon} out of range", "lon")
    if lat == 0.0 and lon == 0.0:
        raise DecodeError("zero_position", "lat and lon are both 0 (no fix)")
    acc = number(doc, "acc")
    if acc is not None and acc < 0:
        acc = None  # Android's "unknown accuracy"
    elif acc is not None and acc > MAX_ACCURACY_M:
        raise DecodeError("bad_value", f"accuracy {acc} is not a plausible radius", "acc")
    crs = doc.get("crs", "wgs84")
    datum = _DATUMS.get(crs) if type(crs) is str else None
    if datum is None:
        raise DecodeError("bad_crs", f"unknown coordinate system {crs!r}", "crs")
    if datum is not Datum.WGS84:
        lat, lon = to_wgs84(lat, lon, datum)
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or not (math.isfinite(lat) and math.isfinite(lon)):
            raise DecodeError("lat_range", f"{datum.value} position converts off the globe", "lat")
    return Place(lat, lon, acc, datum)


def _photos(doc: dict) -> tuple[str, ...]:
    value = doc.get("photos")
    if value is None:
        return ()
    if type(value) is not list:
        raise DecodeError("bad_type", f"'photos' must be a list, got {type(value).__name__}", "photos")
    if len(value) > MAX_PHOTOS:
        raise DecodeError("too_large", f"{len(value)} photos, at most {MAX_PHOTOS}", "photos")
    refs = []
    for ref in value:
        if type(ref) is not str or len(ref) > MAX_PHOTO_REF or not (_HASH.match(ref) or _URL.match(ref)):
            shown = ref[:80] if isinstance(ref, str) else type(ref).__name__
            raise DecodeError("bad_photo", f"a photo reference is a sha256:<64 hex> hash or an http(s) URL, got {shown!r}",
                              "photos")
        refs.append(ref)
    return tuple(dict.fromkeys(refs))  # the same photo twice is one reference


def decode_report(payload: bytes, ref: DeviceRef, rx_ms: int) -> ProblemReport | VerificationReport:
    """Decode one ``report`` payload; DecodeError says what is wrong (nothing is kept of a
    bad report: it is one record, and its sender retries with the same id)."""
    doc = load(payload, MAX_PAYLOAD_BYTES)
    if type(doc) is not dict:
        raise DecodeError("not_a_map", f"a report must be a map, got {type(doc).__name__}")
    unknown = [k for k in doc if k not in _KNOWN]
    if unknown:
        raise DecodeError("unknown_field", f"unknown member {str(unknown[0])[:40]!r}", str(unknown[0])[:40])
    report_id = doc.get("id")
    if type(report_id) is not str or not _REPORT_ID.match(report_id):
        raise DecodeError("bad_id", "'id' must be 1–64 letters, digits or . _ : -", "id")
    t = epoch_ms(doc, rx_ms, MAX_FUTURE_MS, MAX_AGE_MS, "report")
    photos = _photos(doc)
    verify = doc.get("verify")
    if verify is not None:
        return _verification(doc, verify, ref, report_id, t, photos)
    category = doc.get("cat")
    if category is None:
        raise DecodeError("missing_field", "missing 'cat' (a problem report names its category)", "cat")
    if type(category) is not str or not _CATEGORY.match(category):
        raise DecodeError("bad_category", f"'cat' must be C or E and four digits, got {str(category)[:20]!r}", "cat")
    place = _place(doc, required=True)
    assert place is not None  # required
    return ProblemReport(ref.device, ref.district, report_id, t, category, _text(doc, "desc", MAX_DESCRIPTION, True),
                         place, photos)


def _verification(doc: dict, verify: object, ref: DeviceRef, report_id: str, t: int,
                  photos: tuple[str, ...]) -> VerificationReport:
    if type(verify) is not dict:
        raise DecodeError("bad_type", f"'verify' must be a map, got {type(verify).__name__}", "verify")
    case = verify.get("case")
    if type(case) is not int or not 0 < case < 2**63:
        raise DecodeError("bad_value", "'verify.case' must be the case's number", "verify")
    try:
        verdict = Verdict(str(verify.get("result")))
    except ValueError:
        raise DecodeError("bad_value", "'verify.result' must be \"done\" or \"not_done\"", "verify") from None
    if doc.get("cat") is not None:
        raise DecodeError("bad_value", "a verification report names no category", "cat")
    return VerificationReport(ref.device, ref.district, report_id, t, case, verdict,
                              _text(doc, "note", MAX_DESCRIPTION, False) or _text(doc, "desc", MAX_DESCRIPTION, False),
                              _place(doc, required=False), photos)
