"""Sensor payload v1 (docs/sensor-protocol.md): one assertion per payload."""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given, strategies as st

from protocols.errors import DecodeError
from protocols.model import DeviceClass, DeviceRef
from protocols.sensor import MessageKind, SensorLimits, SensorReading, SensorType, decode_sensor

COVER = DeviceRef("mh-620105-0007", DeviceClass.SENSOR, "620105")
T = 1_732_327_200_000  # 2024-11-23 10:00 Beijing time
RX = T + 1_500


def decode(payload: bytes | str | dict | list, ref: DeviceRef | None = COVER, rx_ms: int = RX):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return decode_sensor(payload, ref, rx_ms)


def reason(payload, ref: DeviceRef | None = COVER, rx_ms: int = RX) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(payload, ref, rx_ms)
    return caught.value.reason


def cover(**members) -> dict:
    return {"dev": COVER.device, "comp": "6201050101000007", "t": T, "kind": "status", "type": "manhole"} | members


# --- the examples in docs/sensor-protocol.md -------------------------------------------

DOC_ALARM = (
    '{"v":1,"dev":"mh-620105-0007","comp":"6201050101000007","t":1732327200000,\n'
    ' "kind":"alarm","type":"manhole","alarm":"tilt","tilt":35.5,"bat":87}'
)
DOC_STATUS_MSGPACK = bytes.fromhex(
    "87a3646576ae6d682d3632303130352d30303037a4636f6d70b036323031303530313031303030303037"
    "a174cf0000019356bf5500a46b696e64a6737461747573a474797065a76d616e686f6c65"
    "a474696c74cb3fe0000000000000a362617457"
)
DOC_BRIDGE_BATCH = (
    '[{"dev":"bin-0412","comp":"6201050315000412","t":1732327200000,"kind":"status","type":"bin",'
    '"fill":86,"bat":64},\n'
    ' {"dev":"wl-0031","comp":"6201050199000031","t":1732327205000,"kind":"alarm","type":"waterlog",'
    '"alarm":"waterlog","level":22.5}]'
)


def test_lifted_cover_alarm_in_json():
    assert decode(DOC_ALARM).readings == [
        SensorReading(
            "mh-620105-0007", "6201050101000007", T, RX, MessageKind.ALARM, SensorType.MANHOLE,
            alarm="tilt", tilt=35.5, bat=87.0,
        )
    ]


def test_periodic_cover_report_in_msgpack():
    assert decode(DOC_STATUS_MSGPACK).readings == [
        SensorReading(
            "mh-620105-0007", "6201050101000007", T, RX, MessageKind.STATUS, SensorType.MANHOLE, tilt=0.5, bat=87.0
        )
    ]


def test_bridge_batch_of_a_bin_and_a_waterlogging_gauge():
    assert decode(DOC_BRIDGE_BATCH, ref=None, rx_ms=T + 10_000).readings == [
        SensorReading(
            "bin-0412", "6201050315000412", T, T + 10_000, MessageKind.STATUS, SensorType.BIN, fill=86.0, bat=64.0
        ),
        SensorReading(
            "wl-0031", "6201050199000031", T + 5_000, T + 10_000, MessageKind.ALARM, SensorType.WATERLOG,
            alarm="waterlog", level=22.5,
        ),
    ]


# --- each kind of record ------------------------------------------------------------------


def test_cover_recovery_after_being_put_back():
    assert decode(cover(kind="recovery", alarm="tilt", tilt=0.8)).readings[0].kind is MessageKind.RECOVERY


def test_cover_low_battery_warning():
    assert decode(cover(kind="low_battery", bat=9)).readings[0].bat == 9.0


def test_cover_gas_water_and_smoke_readings():
    reading = decode(cover(kind="alarm", alarm="gas", gas=1250, water=40.5, smoke=False, flags=0x11)).readings[0]
    assert (reading.gas, reading.water, reading.smoke, reading.flags) == (1250.0, 40.5, False, 0x11)


def test_generic_component_alarm_with_its_own_code():
    payload = {
        "dev": "sl-0042", "comp": "6201050103000042", "t": T, "kind": "alarm", "type": "generic", "alarm": "lamp_fault"
    }
    assert decode(payload, ref=None).readings[0].alarm == "lamp_fault"


def test_sequence_number_is_kept():
    assert decode(cover(seq=4711)).readings[0].seq == 4711


def test_whole_milliseconds_sent_as_a_float_are_accepted():
    assert decode(cover(t=float(T))).readings[0].t_ms == T


def test_unknown_members_are_ignored():
    assert decode(cover(rssi=-97, fw="2.1.0")).readings[0] == decode(cover()).readings[0]


def test_leading_whitespace_still_means_json():
    assert len(decode(b"\n " + json.dumps(cover()).encode()).readings) == 1


def test_one_bad_record_in_a_batch_costs_only_itself():
    batch = decode([cover(), cover(comp="620105010100007"), cover(t=T + 1)])
    assert ([r.t_ms for r in batch.readings], [e.reason for e in batch.rejected]) == ([T, T + 1], ["bad_component"])


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param([], "empty", id="empty-batch"),
        pytest.param(b"{" + b" " * 20_000 + b"}", "too_large", id="too-large"),
        pytest.param([cover()] * 101, "too_large", id="batch-too-large"),
        pytest.param(b'{"dev":', "bad_json", id="bad-json"),
        pytest.param(b"\xc1", "bad_msgpack", id="bad-msgpack"),
        pytest.param(msgpack.packb(cover()) + b"\x00", "bad_msgpack", id="msgpack-extra-data"),
        pytest.param(b"\x81\x91\x01\x02", "bad_msgpack", id="msgpack-unhashable-key"),
        pytest.param(b"[" * 10_000, "bad_json", id="deep-nesting"),
        pytest.param(b'{"dev":' + b"1" * 5000 + b"}", "bad_json", id="over-long-integer"),
        pytest.param(" 42", "not_a_map", id="json-number"),
        pytest.param(msgpack.packb("tilt"), "not_a_map", id="msgpack-string"),
        pytest.param(cover(v=2), "bad_version", id="version"),
        pytest.param({k: v for k, v in cover().items() if k != "comp"}, "missing_field", id="no-comp"),
        pytest.param({k: v for k, v in cover().items() if k != "t"}, "missing_field", id="no-time"),
        pytest.param(cover(kind="alarm"), "missing_field", id="alarm-without-code"),
        pytest.param(cover(tilt="35.5"), "bad_type", id="tilt-as-string"),
        pytest.param(cover(smoke=1), "bad_type", id="smoke-as-int"),
        pytest.param(cover(t=True), "bad_type", id="time-as-bool"),
        pytest.param(cover(flags=1.5), "bad_type", id="flags-as-float"),
        pytest.param(cover(kind="heartbeat"), "bad_value", id="unknown-kind"),
        pytest.param(cover(type="streetlight"), "bad_value", id="unknown-type"),
        pytest.param(cover(kind="alarm", alarm="Tilt!"), "bad_value", id="bad-alarm-code"),
        pytest.param(cover(tilt=181), "bad_value", id="tilt-range"),
        pytest.param(cover(bat=-1), "bad_value", id="battery-range"),
        pytest.param(cover(flags=2**32), "bad_value", id="flags-range"),
        pytest.param(cover(tilt=10**400), "bad_value", id="huge-integer"),
        pytest.param(b'{"dev":"mh-620105-0007","comp":"6201050101000007","t":1732327200000,'
                     b'"kind":"status","type":"manhole","tilt":NaN}', "not_finite", id="nan"),
        pytest.param(cover(fill=50), "bad_field", id="fill-on-a-cover"),
        pytest.param(cover(alarm="tilt"), "bad_field", id="alarm-on-status"),
        pytest.param(cover(comp="32050801010000011"), "bad_component", id="17-digit-component"),
        pytest.param(cover(comp="620105010100000A"), "bad_component", id="non-digit-component"),
        pytest.param(cover(dev="mh-620105-0008"), "device_mismatch", id="other-device"),
        pytest.param(cover(t=RX + 5 * 60_000 + 1), "future_time", id="future"),
        pytest.param(cover(t=RX - 7 * 86_400_000 - 1), "stale_time", id="stale"),
    ],
)
def test_refused_payloads_name_their_reason(payload, expected):
    assert reason(payload) == expected


def test_bridged_record_with_an_impossible_device_id_is_refused():
    assert reason(cover(dev="mh/0007"), ref=None) == "bad_device"


def test_constructing_an_invalid_reading_raises_value_error():
    with pytest.raises(ValueError):
        SensorReading(COVER.device, "6201050101000007", T, RX, MessageKind.STATUS, SensorType.BIN, tilt=3.0)


# --- nothing but DecodeError, whatever arrives --------------------------------------------

# msgpack carries integers from -2**63 to 2**64 - 1; JSON any.
packable_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
values = st.recursive(
    st.none() | st.booleans() | packable_ints | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
MEMBERS = [
    "v", "dev", "comp", "t", "kind", "type", "alarm", "seq",
    "tilt", "water", "gas", "smoke", "fill", "level", "bat", "flags",
]
VALID = [
    cover(kind="alarm", alarm="tilt", tilt=35.5, bat=87),
    cover(water=12.0, gas=3.0, smoke=False, flags=7, seq=1),
    cover(type="bin", fill=86, bat=64),
    cover(type="waterlog", kind="recovery", alarm="waterlog", level=2.0),
    cover(type="generic", kind="low_battery", bat=9),
]


def decodes_or_refuses(payload: bytes, ref: DeviceRef | None = COVER) -> None:
    try:
        decode_sensor(payload, ref, RX, SensorLimits())
    except DecodeError:
        pass


@given(st.binary(max_size=512))
def test_random_bytes_raise_only_decode_error(payload):
    decodes_or_refuses(payload)


@given(values)
def test_random_json_raises_only_decode_error(value):
    decodes_or_refuses(json.dumps(value).encode())


@given(values | st.binary(max_size=16))
def test_random_msgpack_raises_only_decode_error(value):
    decodes_or_refuses(msgpack.packb(value))


@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.sampled_from(MEMBERS), st.none() | values), min_size=1, max_size=4),
    st.booleans(),
    st.booleans(),
)
def test_mutated_records_raise_only_decode_error(record, mutations, as_msgpack, from_bridge):
    record = dict(record)
    for member, value in mutations:
        if value is None:
            record.pop(member, None)
        else:
            record[member] = value
    payload = msgpack.packb(record) if as_msgpack else json.dumps(record).encode()
    decodes_or_refuses(payload, None if from_bridge else COVER)


@given(st.sampled_from(VALID), st.data())
def test_truncated_msgpack_raises_only_decode_error(record, data):
    raw = msgpack.packb(record)
    decodes_or_refuses(raw[: data.draw(st.integers(0, len(raw)))])
