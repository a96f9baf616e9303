"""JT/T 808 messages, read from frames built field by field per the spec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from protocols.errors import DecodeError
from protocols.jt808.framing import FrameReader
from protocols.jt808.messages import (
    Authentication,
    BatchKind,
    Header,
    Registration,
    TerminalResponse,
    decode_authentication,
    decode_batch,
    decode_location,
    decode_registration,
    decode_terminal_response,
    device_id,
    encode_platform_response,
    encode_register_response,
    split_message,
)
from protocols.model import DEVICE_ID

# Terminal 013912345678 (2019: the same number padded to BCD[10]). Checksums are the XOR
# of header and body; none of these needs an escape unless said so.
HEARTBEAT_2013 = "7e000200000139123456780001337e"
HEARTBEAT_2019 = "7e0002400001000000000139123456780001727e"
# 0x0100, 2011 layout (33 bytes): province 62, city 105, maker "GW001" [5], model "GW-T8"
# [8], terminal "T000001" [7], plate colour 2, plate "甘A12345" in GBK
REGISTER_2011 = (
    "7e010000210139123456780002003e0069475730303147572d54380000005430303030303102b8ca413132333435607e"
)
# the same in the 2013 layout (45 bytes): model field BYTE[20]
REGISTER_2013 = (
    "7e0100002d0139123456780002003e0069475730303147572d5438000000000000000000000000000000543030303030"
    "3102b8ca4131323334356c7e"
)
# the same in the 2019 layout (84 bytes): maker [11], model [30], terminal [30]
REGISTER_2019 = (
    "7e0100405401000000000139123456780002003e0069475730303100000000000047572d54380000000000000000"
    "000000000000000000000000000000000054303030303031000000000000000000000000000000000000000000"
    "000002b8ca413132333435547e"
)
# 0x0102 with code "3C2DD58C38CD2569": the whole body before 2019
AUTH_2013 = "7e01020010013912345678000333433244443538433338434432353639287e"
# 2019: code length 16, code, IMEI "861234567890123", software "V1.2.3" padded to 20
AUTH_2019 = (
    "7e0102403401000000000139123456780003103343324444353843333843443235363938363132333435363738"
    "393031323356312e322e330000000000000000000000000000047e"
)
# 0x0200: alarm 0, status ACC|fixed, 36.061089 N 103.834303 E, 1520 m, 45.6 km/h, 90°,
# 2025-11-23 10:15:30 GMT+8; extras mileage 399.4 km, signal 28, 12 satellites, 0xE1 raw
LOCATION_2013 = (
    "7e0200002c0139123456780004000000000000000302263fa1063062bf05f001c8005a251123101530"
    "010400000f9a30011c31010ce1021234487e"
)
# the same base fields in a 2019 header, checksum 0x7D escaped
LOCATION_2019 = (
    "7e0200401c01000000000139123456780004000000000000000302263fa1063062bf05f001c8005a251123101530"
    "7d017e"
)
# status ACC|fixed|south|west: 34.603722 S 58.381592 W, 25 m
LOCATION_SOUTH_WEST = (
    "7e0200001c0139123456780005000000000000000f021002ca037ad518001900000000251123101530717e"
)
# 0x0704 backfill (kind 1) of two points recorded out of coverage, the second older
BACKFILL = (
    "7e0704003f0139123456780012000201001c000000010000000302263fa1063062bf05f000000000251122080000"
    "001c000000000000000302263fa1063062bf05f0000000002511220759004a7e"
)
# 0x0704 normal batch split into 2 sub-packets: serials 0x10 and 0x11, packets 1/2 and 2/2
BATCH_PART_1 = (
    "7e07042020013912345678001000020001000200001c000000000000000302263fa1063062bf05f0006400102511231000ea7e"
)
BATCH_PART_2 = (
    "7e0704201f01391234567800110002000200001c000000000000000302264000063062bf05f0006400102511231000101b7e"
)
# 0x0001 terminal response to platform serial 0, message 0x8001, result 0
TERMINAL_RESPONSE = "7e0001000501391234567800140000800100a17e"

T_2025_11_23_101530_GMT8 = 1763864130000


def frame(wire_hex: str) -> bytes:
    (out,) = FrameReader().feed(bytes.fromhex(wire_hex))
    assert type(out) is bytes, out
    return out


def message(wire_hex: str) -> tuple[Header, bytes]:
    return split_message(frame(wire_hex))


def test_2013_header_has_no_version_and_a_12_digit_phone():
    assert message(HEARTBEAT_2013)[0] == Header(0x0002, 0, 0, "013912345678", 1, None, 0, 0)


def test_2019_header_carries_its_version_and_a_20_digit_phone():
    assert message(HEARTBEAT_2019)[0] == Header(0x0002, 0, 0, "00000000013912345678", 1, 1, 0, 0)


def test_sub_packet_header_carries_count_and_index():
    header, body = message(BATCH_PART_2)
    assert (header.serial, header.packet_count, header.packet_index, header.size, len(body)) == (0x11, 2, 2, 16, 31)


def test_2011_registration_reads_the_8_byte_model_field():
    assert decode_registration(*message(REGISTER_2011)) == Registration(
        "2011", 62, 105, "GW001", "GW-T8", "T000001", 2, "甘A12345"
    )


def test_2013_registration_reads_the_20_byte_model_field():
    assert decode_registration(*message(REGISTER_2013)) == Registration(
        "2013", 62, 105, "GW001", "GW-T8", "T000001", 2, "甘A12345"
    )


def test_2019_registration_reads_the_wide_fields():
    assert decode_registration(*message(REGISTER_2019)) == Registration(
        "2019", 62, 105, "GW001", "GW-T8", "T000001", 2, "甘A12345"
    )


def test_2013_authentication_is_the_whole_body():
    assert decode_authentication(*message(AUTH_2013)) == Authentication(b"3C2DD58C38CD2569")


def test_2019_authentication_carries_imei_and_software_version():
    assert decode_authentication(*message(AUTH_2019)) == Authentication(b"3C2DD58C38CD2569", "861234567890123", "V1.2.3")


def test_2013_location_with_extras():
    loc = decode_location(message(LOCATION_2013)[1])
    assert loc == (0, 3, 36.061089, 103.834303, 1520, 45.6, 90, T_2025_11_23_101530_GMT8, 399.4, 28, 12, ((0xE1, b"\x12\x34"),))


def test_2019_location_reads_the_same_body():
    loc = decode_location(message(LOCATION_2019)[1])
    assert loc == (0, 3, 36.061089, 103.834303, 1520, 45.6, 90, T_2025_11_23_101530_GMT8, None, None, None, ())


def test_south_and_west_status_bits_set_the_sign():
    loc = decode_location(message(LOCATION_SOUTH_WEST)[1])
    assert (loc.lat, loc.lon, loc.fixed) == (-34.603722, -58.381592, True)


def test_backfill_batch_keeps_each_point_time_in_its_order():
    batch = decode_batch(message(BACKFILL)[1])
    assert (batch.kind, [loc.t_ms for loc in batch.locations], [loc.alarm for loc in batch.locations]) == (
        BatchKind.BACKFILL,
        [1763769600000, 1763769540000],
        [1, 0],
    )


def test_sub_packet_bodies_joined_make_one_batch():
    body = message(BATCH_PART_1)[1] + message(BATCH_PART_2)[1]
    batch = decode_batch(body)
    assert (batch.kind, [loc.lat for loc in batch.locations], batch.rejected) == (
        BatchKind.NORMAL,
        [36.061089, 36.061184],
        (),
    )


def test_a_batch_item_cut_short_costs_only_itself():
    body = bytes.fromhex("000200" "0004" "00000000") + bytes.fromhex("001c") + message(LOCATION_2019)[1]
    batch = decode_batch(body)
    assert ([loc.t_ms for loc in batch.locations], [e.reason for e in batch.rejected]) == (
        [T_2025_11_23_101530_GMT8],
        ["truncated"],
    )


def test_terminal_response():
    assert decode_terminal_response(message(TERMINAL_RESPONSE)[1]) == TerminalResponse(0, 0x8001, 0)


def test_platform_response_to_a_2013_terminal_uses_the_2013_header():
    header, _ = message(HEARTBEAT_2013)
    assert encode_platform_response(header, 0, 0).hex() == "7e8001000501391234567800000001000200b77e"


def test_platform_response_to_a_2019_terminal_mirrors_its_version_and_phone():
    header, _ = message(HEARTBEAT_2019)
    assert encode_platform_response(header, 0, 0).hex() == "7e80014005010000000001391234567800000001000200f67e"


def test_register_response_carries_the_auth_code():
    header, _ = message(REGISTER_2013)
    answer = encode_register_response(header, 0, 0, b"3C2DD58C38CD2569")
    assert answer.hex() == "7e81000013013912345678000000020033433244443538433338434432353639a87e"


def test_register_response_in_2019_header():
    header, _ = message(REGISTER_2019)
    answer = encode_register_response(header, 0, 0, b"3C2DD58C38CD2569")
    assert answer.hex() == "7e810040130100000000013912345678000000020033433244443538433338434432353639e97e"


def test_refused_registration_sends_no_auth_code():
    header, _ = message(REGISTER_2013)
    assert encode_register_response(header, 0, 4, b"3C2DD58C38CD2569").hex() == "7e810000030139123456780000000204b47e"


def test_device_id_is_the_same_for_both_header_editions():
    assert {device_id(message(HEARTBEAT_2013)[0].phone), device_id(message(HEARTBEAT_2019)[0].phone)} == {"jt013912345678"}


def test_device_id_fits_the_tracker_device_id():
    assert DEVICE_ID.match(device_id("12345678901234567890"))


def location_body(time_hex: str) -> bytes:
    return bytes.fromhex("00000000" "00000003" "02263fa1" "063062bf" "05f0" "01c8" "005a" + time_hex)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("00020000013912"), "truncated"),  # header cut short
        (bytes.fromhex("0002400001000000000139123456"), "truncated"),  # 2019 header cut short
        (bytes.fromhex("00020005013912345678000100"), "truncated"),  # body shorter than announced
        (bytes.fromhex("000200000139123456780001ff"), "length_mismatch"),  # body longer than announced
        (bytes.fromhex("000200000139123456a80001"), "bad_bcd"),  # phone digit 0xA
        (bytes.fromhex("0002200001391234567800010002"), "truncated"),  # sub-packet fields missing
        (bytes.fromhex("00022000013912345678000100020003"), "bad_subpacket"),  # packet 3 of 2
    ],
)
def test_bad_headers_raise_decode_error(data, reason):
    with pytest.raises(DecodeError) as exc:
        split_message(data)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("time_hex", "reason"),
    [
        ("251323101530", "bad_time"),  # month 13
        ("250229000000", "bad_time"),  # 2025 is not a leap year
        ("2511231015a0", "bad_bcd"),
    ],
)
def test_bad_location_times_raise_decode_error(time_hex, reason):
    with pytest.raises(DecodeError) as exc:
        decode_location(location_body(time_hex))
    assert exc.value.reason == reason


def test_leap_day_is_a_real_day():
    assert decode_location(location_body("240229080000")).t_ms == 1709164800000


def test_an_all_zero_time_means_no_clock_yet():
    assert decode_location(location_body("000000000000")).t_ms is None


def test_an_extra_cut_after_its_length_is_truncated():
    with pytest.raises(DecodeError) as exc:
        decode_location(location_body("251123101530") + bytes.fromhex("0104000f"))
    assert exc.value.reason == "truncated"


def test_a_2019_authentication_shorter_than_its_fields_is_truncated():
    header, body = message(AUTH_2019)
    with pytest.raises(DecodeError) as exc:
        decode_authentication(header, body[:-1])
    assert exc.value.reason == "truncated"


ALL_FRAMES = [
    HEARTBEAT_2013, HEARTBEAT_2019, REGISTER_2011, REGISTER_2013, REGISTER_2019, AUTH_2013, AUTH_2019,
    LOCATION_2013, LOCATION_2019, LOCATION_SOUTH_WEST, BACKFILL, BATCH_PART_1, BATCH_PART_2, TERMINAL_RESPONSE,
]


def decode_everything(data: bytes) -> None:
    """Every decoder on the same bytes: each may refuse, none may fail otherwise."""
    try:
        header, body = split_message(data)
    except DecodeError:
        header, body = Header(0, 0, 0, "0", 0), data
    for decode in (decode_location, decode_batch, decode_terminal_response):
        try:
            decode(body)
        except DecodeError:
            pass
    for decode in (decode_registration, decode_authentication):
        for version in (None, 1):
            try:
                decode(header._replace(version=version), body)
            except DecodeError:
                pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(data):
    decode_everything(data)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ALL_FRAMES), st.data())
def test_mutated_frames_raise_only_decode_error(wire_hex, data):
    mutated = bytearray(frame(wire_hex))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        choice = data.draw(st.integers(min_value=0, max_value=2))
        i = data.draw(st.integers(min_value=0, max_value=len(mutated) - 1))
        if choice == 0:
            mutated[i] = data.draw(st.integers(min_value=0, max_value=255))
        elif choice == 1:
            del mutated[i:]
        else:
            mutated[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        if not mutated:
            break
    decode_everything(bytes(mutated))
