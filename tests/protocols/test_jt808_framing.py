"""JT/T 808 framing: flags, escapes, checksums, and a stream cut anywhere."""

from __future__ import annotations

import random

from hypothesis import given, settings, strategies as st

from protocols.jt808.framing import (
    MAX_FRAME_BYTES,
    FrameReader,
    FramingError,
    checksum,
    decode_frame,
    encode_frame,
    escape,
    unescape,
)

# 2013 heartbeat 0x0002 from terminal 013912345678, serial 1, empty body, checksum 0x33
HEARTBEAT_2013 = bytes.fromhex("7e000200000139123456780001337e")
# 2019 heartbeat: attributes 0x4000, version 1, phone BCD[10], serial 1, checksum 0x72
HEARTBEAT_2019 = bytes.fromhex("7e0002400001000000000139123456780001727e")
# serial 0x7D31: 0x7D escaped as 7D 01, and the checksum comes out 0x7E, escaped as 7D 02
HEARTBEAT_ESCAPED = bytes.fromhex("7e000200000139123456787d01317d027e")
# 2013 location 0x0200, 44-byte body with TLV extras, checksum 0x48
LOCATION_2013 = bytes.fromhex(
    "7e0200002c0139123456780004000000000000000302263fa1063062bf05f001c8005a251123101530"
    "010400000f9a30011c31010ce1021234487e"
)
# 2019 location 0x0200 whose checksum is 0x7D, sent as 7D 01
LOCATION_2019 = bytes.fromhex(
    "7e0200401c01000000000139123456780004000000000000000302263fa1063062bf05f001c8005a251123101530"
    "7d017e"
)
ALL_FRAMES = [HEARTBEAT_2013, HEARTBEAT_2019, HEARTBEAT_ESCAPED, LOCATION_2013, LOCATION_2019]


def content(wire: bytes) -> bytes:
    """header | body of a wire frame, by the spec: unescape, drop the checksum."""
    raw = wire[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    return raw[:-1]


def test_a_2013_heartbeat_frame_is_handed_on_without_flags_and_checksum():
    assert FrameReader().feed(HEARTBEAT_2013) == [bytes.fromhex("00020000013912345678" "0001")]


def test_a_2019_heartbeat_frame_is_handed_on_whole():
    assert FrameReader().feed(HEARTBEAT_2019) == [bytes.fromhex("0002400001000000000139123456780001")]


def test_escaped_serial_and_escaped_checksum_are_restored():
    assert FrameReader().feed(HEARTBEAT_ESCAPED) == [bytes.fromhex("00020000013912345678" "7d31")]


def test_a_checksum_of_0x7d_arrives_escaped_and_checks():
    assert FrameReader().feed(LOCATION_2019) == [content(LOCATION_2019)]


def test_encoding_escapes_like_a_terminal_does():
    assert encode_frame(bytes.fromhex("000200000139123456787d31")) == HEARTBEAT_ESCAPED


def test_escape_order_keeps_a_literal_7d_02():
    assert unescape(escape(b"\x7d\x02\x7e\x7d\x01")) == b"\x7d\x02\x7e\x7d\x01"


def test_checksum_folds_long_frames_like_short_ones():
    data = random.Random(7).randbytes(1500)
    expected = 0
    for b in data:
        expected ^= b
    assert checksum(data) == expected


def test_a_frame_fed_one_byte_at_a_time_comes_out_once_at_its_closing_flag():
    reader = FrameReader()
    out = [item for i in range(len(LOCATION_2013)) for item in reader.feed(LOCATION_2013[i:i + 1])]
    assert out == [content(LOCATION_2013)]


def test_a_frame_split_inside_an_escape_sequence_is_restored():
    reader = FrameReader()
    cut = HEARTBEAT_ESCAPED.index(b"\x7d\x01") + 1
    assert reader.feed(HEARTBEAT_ESCAPED[:cut]) + reader.feed(HEARTBEAT_ESCAPED[cut:]) == [content(HEARTBEAT_ESCAPED)]


def test_glued_frames_in_one_read_come_out_in_order():
    glued = HEARTBEAT_2013 + LOCATION_2013 + HEARTBEAT_2019
    assert FrameReader().feed(glued) == [content(HEARTBEAT_2013), content(LOCATION_2013), content(HEARTBEAT_2019)]


def test_frames_sharing_one_flag_between_them_are_both_read():
    shared = HEARTBEAT_2013 + LOCATION_2013[1:]
    assert FrameReader().feed(shared) == [content(HEARTBEAT_2013), content(LOCATION_2013)]


def test_junk_before_the_first_flag_is_reported_once_then_the_frame_is_read():
    out = FrameReader().feed(b"GET / HTTP/1.1\r\n\r\n" + HEARTBEAT_2013)
    assert [(type(x).__name__, getattr(x, "reason", None)) for x in out] == [
        ("FramingError", "junk"),
        ("bytes", None),
    ]


def test_junk_between_frames_costs_only_itself():
    out = FrameReader().feed(HEARTBEAT_2013 + b"\r\n" + LOCATION_2013)
    assert [x if type(x) is bytes else x.reason for x in out] == [
        content(HEARTBEAT_2013),
        "bad_checksum",
        content(LOCATION_2013),
    ]


def test_a_bad_checksum_is_reported_with_the_content_for_an_answer():
    damaged = LOCATION_2013[:-2] + b"\x49\x7e"
    (err,) = FrameReader().feed(damaged)
    assert (err.reason, err.content[:-1]) == ("bad_checksum", content(LOCATION_2013))


def test_a_stray_escape_byte_is_a_bad_escape():
    (err,) = FrameReader().feed(bytes.fromhex("7e00027d030000337e"))
    assert err.reason == "bad_escape"


def test_a_lone_byte_between_flags_is_too_short():
    (err,) = FrameReader().feed(b"\x7e\x01\x7e")
    assert err.reason == "too_short"


def test_an_overlong_frame_is_dropped_and_the_next_one_still_read():
    out = FrameReader().feed(b"\x7e" + b"\x00" * (MAX_FRAME_BYTES + 10) + HEARTBEAT_2013)
    assert [x if type(x) is bytes else x.reason for x in out] == ["too_long", "junk", content(HEARTBEAT_2013)]


def test_ten_megabytes_without_a_flag_hold_no_more_than_one_frame_of_memory():
    reader = FrameReader()
    rng = random.Random(808)
    chunk = rng.randbytes(65536).replace(b"\x7e", b"\x00")
    errors = 0
    held = 0
    reader.feed(b"\x7e")
    for _ in range(160):
        out = reader.feed(chunk)
        errors += len(out)
        held = max(held, reader.pending_bytes)
    assert held <= MAX_FRAME_BYTES
    assert errors >= 160 * 65536 // MAX_FRAME_BYTES - 1
    assert reader.feed(HEARTBEAT_2013)[-1] == content(HEARTBEAT_2013)


def test_decode_frame_rejects_a_candidate_whose_checksum_disagrees():
    try:
        decode_frame(bytes.fromhex("0002000001391234567800010a"))
    except FramingError as exc:
        assert exc.reason == "bad_checksum"
    else:
        raise AssertionError("a bad checksum went through")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096), st.lists(st.integers(min_value=1, max_value=512), max_size=16))
def test_random_bytes_in_random_chunks_give_only_frames_or_framing_errors(data, cuts):
    reader = FrameReader(max_frame_bytes=256)
    pos = 0
    out = []
    for size in cuts:
        out += reader.feed(data[pos:pos + size])
        pos += size
    out += reader.feed(data[pos:])
    assert all(type(x) is bytes or isinstance(x, FramingError) for x in out)
    assert reader.pending_bytes <= 256


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=8), st.data())
def test_any_cut_of_a_stream_of_frames_gives_the_same_frames(contents, data):
    stream = b"".join(encode_frame(c) for c in contents)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=12)))
    reader = FrameReader()
    out = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += reader.feed(stream[start:cut])
        start = cut
    assert out == contents


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALL_FRAMES), st.data())
def test_mutated_frames_give_only_frames_or_framing_errors(frame, data):
    mutated = bytearray(frame)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(mutated) - 1))
        mutated[i] = data.draw(st.integers(min_value=0, max_value=255))
    out = FrameReader().feed(bytes(mutated))
    assert all(type(x) is bytes or isinstance(x, FramingError) for x in out)
