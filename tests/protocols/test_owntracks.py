"""OwnTracks decoding against payloads as the apps publish them, one assertion per payload.

Sources of the payloads, quoted byte for byte unless a note says otherwise:
  booklet   owntracks/booklet docs/tech/json.md
  schema    owntracks/json-schema test/*.json (captured from the iOS app)
  android   owntracks/android project/app/src/test/resources/fixtures/*.json and the
            expected serialisations in project/app/src/test/.../model/ParserTest.kt
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, strategies as st

from protocols.errors import DecodeError
from protocols.model import Datum, DeviceClass, DeviceRef, Fix
from protocols.owntracks import (
    Downlink,
    IgnoredMessage,
    OwnTracksLastWill,
    OwnTracksLocation,
    OwnTracksStatus,
    OwnTracksTransition,
    TransitionEvent,
    command_topic,
    decode_message,
    decode_payload,
    encode_report_location,
    parse_topic,
)

ZHANG = DeviceRef("ot-zhang-phone", DeviceClass.COLLECTOR, "620105")
DEVICES = {("zhang", "phone"): ZHANG}
TOPIC = "owntracks/zhang/phone"
DELAY_MS = 2_000  # broker and network latency between the fix and our receive time


def decode(payload: str | bytes, tst: int, topic: str = TOPIC):
    raw = payload.encode() if isinstance(payload, str) else payload
    return decode_message(topic, raw, DEVICES, tst * 1000 + DELAY_MS)


def fix(t_s, lat, lon, acc=None, spd=None, hdg=None, alt=None, bat=None) -> Fix:
    return Fix(
        ZHANG.device, ZHANG.device_class, ZHANG.district, t_s * 1000, lat, lon,
        t_s * 1000 + DELAY_MS, acc, spd, hdg, alt, bat, Datum.WGS84, None,
    )


def reason(payload: str | bytes, tst: int = 1_701_258_666, topic: str = TOPIC) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(payload, tst, topic)
    return caught.value.reason


# --- location ----------------------------------------------------------------------------

# android ParserTest.kt, "Parser can serialize extended location message to a pretty JSON
# message": what the Android app publishes with extended data on. The app's test uses
# tst 123456789 (1973); a real phone sends its clock, so a 2024 time stands in here.
ANDROID_EXTENDED = """{
    "_type": "location",
    "created_at": 25,
    "_id": "dummyTestId",
    "batt": 30,
    "bs": 2,
    "acc": 10,
    "vac": 1,
    "lat": 50.1,
    "lon": 60.2,
    "alt": 20,
    "vel": 5,
    "cog": 56,
    "tst": 1732327200,
    "m": 1,
    "conn": "TestConn",
    "inregions": [
        "Testregion1",
        "Testregion2"
    ],
    "BSSID": "12:34:56:78",
    "SSID": "Wifi SSID"
}"""


def test_android_extended_location():
    assert decode(ANDROID_EXTENDED, 1732327200) == OwnTracksLocation(
        fix(1732327200, 50.1, 60.2, acc=10.0, spd=5 / 3.6, hdg=56.0, alt=20.0, bat=30.0),
        trigger=None, tracker_id=None, connectivity="TestConn", created_ms=25_000,
        regions=("Testregion1", "Testregion2"),
    )


# schema location-5s.json (an iPhone 5s on hotel wifi)
IOS_5S = (
    '{"_type":"location","acc":9,"alt":93,"batt":94,"bs":1,"BSSID":"ca:fe:ed:40:81:5b",'
    '"cog":252,"conn":"w","lat":53.430722,"lon":5.112126,"m":1,"p":99.182,"SSID":"hotel",'
    '"t":"p","tid":"SG","tst":1701263310,"vac":3,"vel":1}'
)


def test_ios_ping_location():
    assert decode(IOS_5S, 1701263310) == OwnTracksLocation(
        fix(1701263310, 53.430722, 5.112126, acc=9.0, spd=1 / 3.6, hdg=252.0, alt=93.0, bat=94.0),
        trigger="p", tracker_id="SG", connectivity="w",
    )


# schema location-sk.json: inside a region, no velocity or course (zero values are omitted)
IOS_IN_REGION = (
    '{"_type":"location","acc":35,"alt":40,"batt":80,"bs":1,"BSSID":"ca:fe:36:2:b9:2b",'
    '"conn":"w","created_at":1701258670,"inregions":["office"],"inrids":["cb6046"],'
    '"lat":71.215592,"lon":3.767957,"m":1,"p":99.834,"SSID":"office","t":"p","tid":"SG",'
    '"tst":1701258666,"vac":19}'
)


def test_ios_location_inside_a_region():
    assert decode(IOS_IN_REGION, 1701258666) == OwnTracksLocation(
        fix(1701258666, 71.215592, 3.767957, acc=35.0, alt=40.0, bat=80.0),
        trigger="p", tracker_id="SG", connectivity="w", created_ms=1_701_258_670_000,
        regions=("office",),
    )


# android fixtures/location_beacon_trigger.json
ANDROID_BEACON = """{
  "_type": "location",
  "acc": 5,
  "alt": 84,
  "batt": 34,
  "bs": 1,
  "cog": 277,
  "conn": "m",
  "lat": -25.762245,
  "lon": 126.074502,
  "m": 2,
  "p": 100.477,
  "tid": "AA",
  "t": "b",
  "tst": 1721896446,
  "vac": 3,
  "vel": 79
}
"""


def test_android_beacon_triggered_location_converts_kmh_to_ms():
    assert decode(ANDROID_BEACON, 1721896446).fix.spd == pytest.approx(21.944, abs=1e-3)


# android fixtures/location_with_created_at.json
ANDROID_CREATED_AT = (
    '{"_type":"location","BSSID":"00:13:10:85:fe:01","SSID":"AndroidWifi","acc":5,"alt":50,'
    '"batt":100,"bs":0,"conn":"w","created_at":1709037052,"lat":51.0,"lon":0.0,"m":1,'
    '"randomId":9302,"tid":"aa","tst":1709037003,"vac":0,"vel":0}'
)


def test_android_location_queued_before_sending_keeps_fix_time_and_creation_time():
    assert decode(ANDROID_CREATED_AT, 1709037003) == OwnTracksLocation(
        fix(1709037003, 51.0, 0.0, acc=5.0, spd=0.0, alt=50.0, bat=100.0),
        tracker_id="aa", connectivity="w", created_ms=1_709_037_052_000,
    )


# schema location-short.json: the least a location can carry
MINIMAL = '{"lat":44.221389,"lon":6.64635,"tst":1692430980,"_type":"location","batt":100}\n'


def test_minimal_location():
    assert decode(MINIMAL, 1692430980) == OwnTracksLocation(fix(1692430980, 44.221389, 6.64635, bat=100.0))


# The shape of location-5s.json, with a collector's phone in Anning district, Lanzhou.
ANNING = (
    '{"_type":"location","acc":12,"alt":1530,"batt":61,"bs":1,"cog":90,"conn":"m",'
    '"lat":36.1046,"lon":103.7191,"m":2,"t":"r","tid":"ZH","tst":1732327200,"vel":4}'
)


def test_anning_location_answering_report_location_stays_in_wgs84():
    assert decode(ANNING, 1732327200) == OwnTracksLocation(
        fix(1732327200, 36.1046, 103.7191, acc=12.0, spd=4 / 3.6, hdg=90.0, alt=1530.0, bat=61.0),
        trigger="r", tracker_id="ZH", connectivity="m",
    )


# iOS sends Core Location's "unknown" (-1 speed and course, -100 % battery) when it has
# nothing better (ios OwnTracking.m reads vel -1 back as "no speed").
IOS_UNKNOWNS = '{"_type":"location","lat":36.1046,"lon":103.7191,"tst":1732327200,"vel":-1,"cog":-1,"batt":-100}'


def test_ios_unknown_speed_course_and_battery_become_none():
    assert decode(IOS_UNKNOWNS, 1732327200) == OwnTracksLocation(fix(1732327200, 36.1046, 103.7191))


def test_location_on_an_event_subtopic_is_still_a_location():
    assert isinstance(decode(ANNING, 1732327200, topic=TOPIC + "/event"), OwnTracksLocation)


# --- transition, lwt, status ---------------------------------------------------------------

# android fixtures/transition_message.json (published on owntracks/user/device/event)
ANDROID_LEAVE = """{
  "_type": "transition",
  "acc": 3,
  "desc": "myregion",
  "event": "leave",
  "lat": 52.71234,
  "lon": -1.61234123,
  "t": "l",
  "tid": "ce",
  "tst": 1603209966,
  "wtst": 1558351273
}
"""


def test_android_leaves_region():
    assert decode(ANDROID_LEAVE, 1603209966, TOPIC + "/event") == OwnTracksTransition(
        ZHANG, 1_603_209_966_000, TransitionEvent.LEAVE, region="myregion", lat=52.71234,
        lon=-1.61234123, acc=3.0, trigger="l", waypoint_ms=1_558_351_273_000,
    )


# schema transition.json: iOS enters a beacon region
IOS_ENTER = (
    '{"_type":"transition","acc":6,"created_at":1701264373,"desc":"blukii","event":"enter",'
    '"lat":61.195709,"lon":9.688233,"rid":"c00b92","t":"b","tid":"SG","tst":1701264368,'
    '"wtst":1610104404}\n'
)


def test_ios_enters_beacon_region():
    assert decode(IOS_ENTER, 1701264368, TOPIC + "/event") == OwnTracksTransition(
        ZHANG, 1_701_264_368_000, TransitionEvent.ENTER, region="blukii", region_id="c00b92",
        lat=61.195709, lon=9.688233, acc=6.0, trigger="b", waypoint_ms=1_610_104_404_000,
    )


# schema lwt.json
LWT = '{\n    "_type" : "lwt",\n    "tst" : 1699882482\n}\n'


def test_last_will_days_after_connecting():
    rx = 1_699_882_482_000 + 3 * 86_400_000
    assert decode_message(TOPIC, LWT.encode(), DEVICES, rx) == OwnTracksLastWill(ZHANG, 1_699_882_482_000, rx)


# schema lwt-extra.json
LWT_EXTRA = '{\n    "_type" : "lwt",\n    "tst" : 1699882482,\n    "tid": "LW"\n}\n'


def test_last_will_with_extra_members():
    assert decode(LWT_EXTRA, 1699882482) == OwnTracksLastWill(ZHANG, 1_699_882_482_000, 1_699_882_484_000)


# schema status.json (published on owntracks/user/device/status)
IOS_STATUS = """{
  "_type": "status",
  "iOS": {
    "altimeterAuthorizationStatus": "CMAuthorizationStatusNotDetermined",
    "altimeterIsAbsoluteAltitudeAvailable": false,
    "altimeterIsRelativeAltitudeAvailable": false,
    "backgroundRefreshStatus": "UIBackgroundRefreshStatusAvailable",
    "deviceIdentifierForVendor": "27A2DC28-0371-4077-B607-85FE50BDCB74",
    "deviceModel": "iPad",
    "deviceSystemName": "iPadOS",
    "deviceSystemVersion": "17.2",
    "deviceUserInterfaceIdiom": "UIUserInterfaceIdiomPad",
    "locale": "de_DE",
    "localeUsesMetricSystem": true,
    "locationManagerAuthorizationStatus": "kCLAuthorizationStatusAuthorizedAlways",
    "version": "17.2.3"
  }
}
"""


def test_ios_status_reports_location_authorisation():
    status = decode(IOS_STATUS, 1701264368, TOPIC + "/status")
    assert dict(status.items)["locationManagerAuthorizationStatus"] == "kCLAuthorizationStatusAuthorizedAlways"


# android: MessageStatus.kt member names, values from ParserTest.kt "Parser can serialize a
# status message" (the test checks members, not bytes: this is our serialisation of them).
ANDROID_STATUS = '{"_type":"status","_id":"a1b2c3d4","android":{"wifi":1,"ps":1,"bo":1,"hib":1,"loc":-3}}'


def test_android_status():
    assert decode(ANDROID_STATUS, 1701264368, TOPIC + "/status") == OwnTracksStatus(
        ZHANG, 1_701_264_370_000, "android", (("bo", 1), ("hib", 1), ("loc", -3), ("ps", 1), ("wifi", 1))
    )


# --- types we count and drop -------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected_type", "known"),
    [
        # schema card-without-all.json (owntracks/user/device/info)
        pytest.param('{\n  "_type" : "card"\n}\n', "card", True, id="card"),
        # android fixtures/waypoint_message.json
        pytest.param(
            '{\n  "_type": "waypoint",\n  "desc": "mypoint",\n  "lat": 52.0027789,\n'
            '  "lon": -1.0829312,\n  "rad": 150,\n  "tst": 1558351273\n}\n',
            "waypoint", True, id="waypoint",
        ),
        # schema steps.json
        pytest.param(
            '{"_type":"steps","from":1700002800,"steps":10532,"to":1700058960,"tst":1700058962}\n',
            "steps", True, id="steps",
        ),
        # android fixtures/encrypted_message.json
        pytest.param('{\n  "_type": "encrypted",\n  "data": "TestCipherText"\n}\n', "encrypted", True, id="encrypted"),
        # android fixtures/cmd_report_location.json: our own command, seen again on owntracks/#
        pytest.param('{\n  "_type": "cmd",\n  "action": "reportLocation"\n}\n', "cmd", True, id="own-cmd"),
        pytest.param('{"_type":"hologram","tst":1700058962}', "hologram", False, id="undocumented"),
        # android MessageClear: the app wipes its retained message with an empty payload
        pytest.param("", "clear", True, id="clear"),
    ],
)
def test_unused_types_are_ignored_with_their_type(payload, expected_type, known):
    assert decode(payload, 1700058962) == IgnoredMessage(ZHANG, expected_type, known)


# --- what is refused, and why ------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        # schema location-lat-missing.json
        pytest.param(
            '{\n    "_type" : "location",\n    "acc" : 35,\n    "alt" : 0,\n    "batt" : 75,\n'
            '    "bs" : 1,\n    "conn" : "w",\n    "lon" : 8.688245,\n    "m" : 1,\n'
            '    "tag" : "Coffee",\n    "tid" : "C1",\n    "tst" : 1699882482\n}\n',
            "missing_field", id="schema-lat-missing",
        ),
        # schema lwt-notst.json
        pytest.param('{\n    "_type" : "lwt"\n}\n', "missing_field", id="schema-lwt-without-tst"),
        # android fixtures/location_empty.json
        pytest.param('{\n  "_type": "location"\n}\n', "missing_field", id="android-location-empty"),
        # android fixtures/unknown_message.json
        pytest.param('{\n  "some": "invalid message"\n}\n', "missing_type", id="android-no-type"),
        # android ParserTest.kt "invalid JSON as message body"
        pytest.param("not JSON", "bad_json", id="android-not-json"),
        # android fixtures/location_multiple_messages.json: arrays are for HTTP responses
        pytest.param(
            '[{"_type":"location","lat":52.3153748,"lon":5.0408462,"tst":1699882482},'
            '{"_type":"location","lat":12.3153748,"lon":15.0408462,"tst":1699882486}]',
            "not_a_map", id="array",
        ),
        # android fixtures/valid_location_message.json: OwnTracks accepts 0,0; we read it
        # as a phone without a fix
        pytest.param(
            '{\n  "_type": "location",\n  "tst": 1699882482,\n  "tid": "xx",\n  "lat": 0.000,\n'
            '  "lon": 0.000,\n  "acc": 15,\n  "alt": 300,\n  "vac": 0,\n  "cog": 0,\n  "vel": 0,\n'
            '  "batt": 98\n}\n',
            "zero_position", id="android-null-island",
        ),
        pytest.param('{"_type":"location","lat":91.0,"lon":103.7,"tst":1699882482}', "lat_range", id="lat-range"),
        pytest.param('{"_type":"location","lat":36.1,"lon":-181,"tst":1699882482}', "lon_range", id="lon-range"),
        pytest.param('{"_type":"location","lat":NaN,"lon":103.7,"tst":1699882482}', "not_finite", id="nan"),
        pytest.param('{"_type":"location","lat":36.1,"lon":1e999,"tst":1699882482}', "not_finite", id="infinity"),
        pytest.param('{"_type":"location","lat":36.1,"lon":103.7,"tst":1699882482,"acc":-1}', "bad_value", id="acc"),
        pytest.param('{"_type":"location","lat":36.1,"lon":103.7,"tst":1699882482,"cog":400}', "bad_value", id="cog"),
        pytest.param('{"_type":"location","lat":36.1,"lon":103.7,"tst":1699882482,"batt":101}', "bad_value", id="batt"),
        pytest.param('{"_type":"location","lat":36.1,"lon":103.7,"tst":true}', "bad_type", id="tst-bool"),
        pytest.param('{"_type":"location","lat":36.1,"lon":103.7,"tst":0}', "bad_value", id="tst-zero"),
        pytest.param('{"_type":"location","lat":36.1,"lon":103.7,"tst":1699882482,"tid":7}', "bad_type", id="tid"),
        pytest.param(
            '{"_type":"location","lat":36.1,"lon":103.7,"tst":1699882482,"inregions":"office"}',
            "bad_type", id="inregions",
        ),
        pytest.param('{"_type":"transition","tst":1699882482,"event":"dwell"}', "bad_value", id="event"),
        pytest.param('{"_type":"status","android":[1,2]}', "bad_type", id="status-body"),
        pytest.param('{"_type":7}', "bad_type", id="type-not-string"),
        pytest.param(b"\xff\xfe\x00garbage", "bad_json", id="bad-utf8"),
        pytest.param('{"_type":"location","lat":' + "1" * 5000 + "}", "bad_json", id="over-long-integer"),
        pytest.param(
            '{"_type":"location","tst":1699882482,"lon":1,"lat":' + "1" * 400 + "}", "bad_value", id="huge-integer"
        ),
        pytest.param("[" * 100_000, "too_large", id="deep-nesting"),
    ],
)
def test_refused_payloads_name_their_reason(payload, expected):
    assert reason(payload, 1699882482) == expected


# schema transition-illegal-lat.json
TRANSITION_LAT_AS_STRING = (
    '{"_type":"transition","acc":6,"created_at":1701264373,"desc":"blukii","event":"enter",'
    '"lat":"61.195709","lon":9.688233,"rid":"c00b92","t":"b","tid":"SG","tst":1701264368,'
    '"wtst":1610104404}\n'
)


def test_transition_with_latitude_as_a_string_is_refused():
    assert reason(TRANSITION_LAT_AS_STRING, 1701264368, TOPIC + "/event") == "bad_type"


def test_deep_nesting_within_the_size_limit_is_bad_json():
    assert reason("[" * 60_000, 1699882482) == "bad_json"


def test_fix_from_the_future_is_refused():
    assert reason(ANNING, 1732327200 - 3600) == "future_time"


def test_fix_older_than_a_week_is_refused():
    assert reason(ANNING, 1732327200 + 8 * 86_400) == "stale_time"


def test_unmapped_owntracks_device_is_refused():
    assert reason(ANNING, 1732327200, topic="owntracks/li/phone") == "unmapped_device"


def test_unmapped_device_is_refused_even_for_an_empty_payload():
    assert reason(b"", 1732327200, topic="owntracks/zhang/tablet") == "unmapped_device"


@pytest.mark.parametrize(
    "topic",
    ["owntracks/zhang", "owntracks//phone", "gw/v1/620105/collector/x/pos", "owntracks/zhang/phone/a/b", ""],
)
def test_foreign_topics_are_refused(topic):
    assert reason(ANNING, 1732327200, topic=topic) == "bad_topic"


def test_parse_topic_splits_user_device_and_suffix():
    assert parse_topic("owntracks/zhang/phone/event") == ("zhang", "phone", "event")


def test_http_mode_payload_decodes_with_user_and_device_from_headers():
    result = decode_payload("zhang", "phone", ANNING.encode(), DEVICES, 1_732_327_202_000)
    assert result == decode(ANNING, 1732327200)


# --- downlink ----------------------------------------------------------------------------


def test_report_location_command_goes_to_the_phones_cmd_topic():
    assert encode_report_location("zhang", "phone") == Downlink(
        "owntracks/zhang/phone/cmd", b'{"_type":"cmd","action":"reportLocation"}', qos=1, retain=False
    )


def test_report_location_command_is_what_the_android_app_parses():
    # android fixtures/cmd_report_location.json, compared as JSON
    expected = json.loads('{\n  "_type": "cmd",\n  "action": "reportLocation"\n}\n')
    assert json.loads(encode_report_location("zhang", "phone").payload) == expected


def test_command_topic():
    assert command_topic("zhang", "phone") == "owntracks/zhang/phone/cmd"


@pytest.mark.parametrize(("user", "device"), [("zh/ang", "phone"), ("zhang", "+"), ("", "phone"), ("zhang", "#")])
def test_command_for_an_impossible_topic_level_is_refused(user, device):
    with pytest.raises(ValueError):
        encode_report_location(user, device)


# --- nothing but DecodeError, whatever arrives --------------------------------------------

RX_MS = 1_701_258_668_000
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
REAL_PAYLOADS = [
    ANDROID_EXTENDED, IOS_5S, IOS_IN_REGION, ANDROID_BEACON, ANDROID_CREATED_AT, MINIMAL, ANNING,
    ANDROID_LEAVE, IOS_ENTER, LWT, IOS_STATUS, ANDROID_STATUS,
]
MEMBERS = sorted({k for p in REAL_PAYLOADS for k in json.loads(p)})


def decodes_or_refuses(topic: str, payload: bytes) -> None:
    try:
        decode_message(topic, payload, DEVICES, RX_MS)
    except DecodeError:
        pass


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_decode_error(payload):
    decodes_or_refuses(TOPIC, payload)


@given(json_values)
def test_random_json_raises_only_decode_error(value):
    decodes_or_refuses(TOPIC, json.dumps(value).encode())


@given(st.text(max_size=40), st.binary(max_size=64))
def test_random_topics_raise_only_decode_error(topic, payload):
    decodes_or_refuses(topic, payload)


@given(
    st.sampled_from(REAL_PAYLOADS),
    st.lists(st.tuples(st.sampled_from(MEMBERS), st.none() | json_values), min_size=1, max_size=4),
)
def test_mutated_app_payloads_raise_only_decode_error(payload, mutations):
    doc = json.loads(payload)
    for member, value in mutations:
        if value is None:
            doc.pop(member, None)
        else:
            doc[member] = value
    decodes_or_refuses(TOPIC, json.dumps(doc).encode())


@given(st.sampled_from(REAL_PAYLOADS), st.data())
def test_truncated_app_payloads_raise_only_decode_error(payload, data):
    raw = payload.encode()
    cut = data.draw(st.integers(0, len(raw)))
    decodes_or_refuses(TOPIC, raw[:cut])
