"""A JT/T 808 terminal session, frame by frame: answers, fixes, alarms, refusals."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from protocols.jt808.framing import FrameReader, encode_frame
from protocols.jt808.messages import encode_message
from protocols.jt808.session import (
    AlarmTracker,
    AuthCodePolicy,
    Jt808Session,
    SessionPolicy,
    SessionState,
    VehicleAlarm,
    alarm_bit,
    alarm_name,
)
from protocols.model import Datum, DeviceClass, Fix
from tests.sanity import assert_storable

SECRET = b"gridwatch-test-secret"
DEVICE = "jt013912345678"
RX = 1763864135000  # 2025-11-23 02:15:35 UTC, five seconds after the report below was taken

# Frames from terminal 013912345678; see test_jt808_messages.py for their fields.
REGISTER_2013 = (
    "7e0100002d0139123456780002003e0069475730303147572d5438000000000000000000000000000000543030303030"
    "3102b8ca4131323334356c7e"
)
REGISTER_2019 = (
    "7e0100405401000000000139123456780002003e0069475730303100000000000047572d54380000000000000000"
    "000000000000000000000000000000000054303030303031000000000000000000000000000000000000000000"
    "000002b8ca413132333435547e"
)
AUTH_2013 = "7e01020010013912345678000333433244443538433338434432353639287e"  # code 3C2DD58C38CD2569
AUTH_2019 = (
    "7e0102403401000000000139123456780003103343324444353843333843443235363938363132333435363738"
    "393031323356312e322e330000000000000000000000000000047e"
)
AUTH_2013_WRONG_CODE = "7e01020010013912345678000330303030303030303030303030303030207e"  # code "0000000000000000"
LOCATION_2013 = (
    "7e0200002c0139123456780004000000000000000302263fa1063062bf05f001c8005a251123101530"
    "010400000f9a30011c31010ce1021234487e"
)
LOCATION_2019 = (
    "7e0200401c01000000000139123456780004000000000000000302263fa1063062bf05f001c8005a251123101530"
    "7d017e"
)
# status ACC only (not fixed), lat = lon = 0
LOCATION_NOT_FIXED = "7e0200001c0139123456780006000000000000000100000000000000000000000000002511231015300b7e"
HEARTBEAT_2013 = "7e000200000139123456780001337e"
BATCH_PART_1 = (
    "7e07042020013912345678001000020001000200001c000000000000000302263fa1063062bf05f0006400102511231000ea7e"
)
BATCH_PART_2 = (
    "7e0704201f01391234567800110002000200001c000000000000000302264000063062bf05f0006400102511231000101b7e"
)
BACKFILL = (
    "7e0704003f0139123456780012000201001c000000010000000302263fa1063062bf05f000000000251122080000"
    "001c000000000000000302263fa1063062bf05f0000000002511220759004a7e"
)
UNSUPPORTED_0900 = "7e090000020139123456780013f101d87e"
# LOCATION_2013 with its extras area damaged at the tail: the satellites item lost its value
LOCATION_CUT_EXTRAS = (
    "7e020000270139123456780004000000000000000302263fa1063062bf05f001c8005a251123101530"
    "010400000f9a30011c31018a7e"
)
# 0x0201 answering query serial 7, its extras cut after the satellites id
POSITION_REPLY_CUT_EXTRAS = (
    "7e0201002201391234567800080007000000000000000302263fa1063062bf05f001c8005a25112310153030011c31147e"
)
# 0x0704, normal, one item whose extras end in the cut satellites item
BATCH_CUT_EXTRAS = (
    "7e0704002601391234567800120001000021000000000000000302263fa1063062bf05f001c8005a251123101530"
    "30011c31012c7e"
)
# a fixed position with altitude 30000 m, speed 2000.0 km/h and direction 0xFFFF
LOCATION_IMPOSSIBLE_READINGS = (
    "7e0200001c0139123456780004000000000000000302263fa1063062bf75304e20ffff251123101530717e"
)
# a terminal whose phone field holds hex digits: 0a1b2c3d4e5f (REGISTER_2013's body)
REGISTER_HEX_PHONE = (
    "7e0100002d0a1b2c3d4e5f0002003e0069475730303147572d54380000000000000000000000000000005430303030"
    "303102b8ca4131323334354d7e"
)
LOCATION_HEX_PHONE = "7e0200001c0a1b2c3d4e5f0004000000000000000302263fa1063062bf05f001c8005a2511231015301d7e"
TERMINAL_RESPONSE = "7e0001000501391234567800140000800100a17e"
LOGOUT = "7e000300000139123456780015267e"

# the platform's answers, serials counted from 0 in each session
ANSWER_REGISTER_2013 = "7e81000013013912345678000000020033433244443538433338434432353639a87e"
ANSWER_REGISTER_2019 = "7e810040130100000000013912345678000000020033433244443538433338434432353639e97e"
ANSWER_AUTH_2013 = "7e8001000501391234567800010003010200b57e"
ANSWER_AUTH_2019 = "7e80014005010000000001391234567800010003010200f47e"
ANSWER_LOCATION_2013 = "7e8001000501391234567800020004020000b07e"
ANSWER_LOCATION_2019 = "7e80014005010000000001391234567800020004020000f17e"
ANSWER_HEARTBEAT_2013 = "7e8001000501391234567800030001000200b47e"
REFUSED_LOCATION = "7e8001000501391234567800000004020001b37e"  # result 1, serial 0
BAD_LOCATION = "7e8001000501391234567800000004020002b07e"  # result 2, serial 0
UNSUPPORTED = "7e8001000501391234567800000013090003ad7e"  # result 3 to 0x0900
ANSWER_BATCH_PART_1 = "7e8001000501391234567800000010070400a77e"
ANSWER_BATCH_PART_2 = "7e8001000501391234567800010011070400a77e"


def policy(**overrides) -> SessionPolicy:
    return SessionPolicy(district="620105", auth_secret=SECRET, **overrides)


class Terminal:
    """A session with its own frame reader, fed wire frames as hex."""

    def __init__(self, session_policy: SessionPolicy | None = None, alarms: AlarmTracker | None = None) -> None:
        self.session = Jt808Session(session_policy or policy(), alarms)
        self.reader = FrameReader()

    def send(self, *wire_hex: str, rx_ms: int = RX):
        return self.session.receive(self.reader.feed(bytes.fromhex("".join(wire_hex))), rx_ms)

    def answers(self, *wire_hex: str, rx_ms: int = RX) -> list[str]:
        return [a.hex() for a in self.send(*wire_hex, rx_ms=rx_ms).answers]


def logged_in(terminal: Terminal | None = None) -> Terminal:
    terminal = terminal or Terminal()
    terminal.send(REGISTER_2013, AUTH_2013)
    return terminal


def location(
    serial: int, alarm: int, status: int = 3, t_bcd: str = "251123101530", lat_e6: int = 36061089, lon_e6: int = 103834303
) -> str:
    body = struct.pack(">IIIIhHH", alarm, status, lat_e6, lon_e6, 1520, 456, 90) + bytes.fromhex(t_bcd)
    return encode_message(0x0200, body, "013912345678", serial).hex()


def test_registration_is_answered_with_the_issued_auth_code():
    assert Terminal().answers(REGISTER_2013) == [ANSWER_REGISTER_2013]


def test_2019_registration_is_answered_in_a_2019_header():
    assert Terminal().answers(REGISTER_2019) == [ANSWER_REGISTER_2019]


def test_authentication_with_the_issued_code_is_accepted():
    terminal = Terminal()
    terminal.send(REGISTER_2013)
    assert (terminal.answers(AUTH_2013), terminal.session.state) == ([ANSWER_AUTH_2013], SessionState.AUTHENTICATED)


def test_2019_authentication_records_imei_and_software_version():
    terminal = Terminal()
    terminal.send(REGISTER_2019)
    terminal.send(AUTH_2019)
    assert (terminal.session.imei, terminal.session.software_version) == ("861234567890123", "V1.2.3")


def test_a_wrong_auth_code_is_refused():
    terminal = Terminal()
    terminal.send(REGISTER_2013)
    out = terminal.send(AUTH_2013_WRONG_CODE)
    assert ([a.hex()[-6:-4] for a in out.answers], out.rejected[0][0], terminal.session.state) == (
        ["01"],
        "bad_auth_code",
        SessionState.CONNECTED,
    )


def test_any_code_policy_accepts_a_code_issued_elsewhere():
    terminal = Terminal(policy(auth_codes=AuthCodePolicy.ANY))
    terminal.send(AUTH_2013_WRONG_CODE)
    assert terminal.session.authenticated


def test_an_authenticated_location_becomes_one_fix():
    out = logged_in().send(LOCATION_2013)
    assert out.fixes == [
        Fix(DEVICE, DeviceClass.VEHICLE, "620105", 1763864130000, 36.061089, 103.834303, RX,
            None, 45.6 / 3.6, 90.0, 1520.0, None, Datum.WGS84, 4)
    ]


def test_an_authenticated_location_is_acknowledged():
    terminal = logged_in()
    assert terminal.answers(LOCATION_2013, HEARTBEAT_2013) == [ANSWER_LOCATION_2013, ANSWER_HEARTBEAT_2013]


def test_a_2019_terminal_gets_2019_answers_and_the_same_device_id():
    terminal = Terminal()
    terminal.send(REGISTER_2019, AUTH_2019)
    out = terminal.send(LOCATION_2019)
    assert ([a.hex() for a in out.answers], out.fixes[0].device) == ([ANSWER_LOCATION_2019], DEVICE)


def test_a_location_before_authentication_is_refused_and_not_a_fix():
    out = Terminal().send(LOCATION_2013)
    assert ([a.hex() for a in out.answers], out.fixes, [r for r, _ in out.rejected]) == (
        [REFUSED_LOCATION],
        [],
        ["unauthenticated"],
    )


def test_a_registered_but_not_authenticated_terminal_is_refused_too():
    terminal = Terminal()
    terminal.send(REGISTER_2013)
    assert terminal.send(LOCATION_2013).fixes == []


def test_without_required_auth_a_location_is_a_fix_at_once():
    assert len(Terminal(policy(require_auth=False)).send(LOCATION_2013).fixes) == 1


def test_a_position_not_fixed_is_acknowledged_but_rejected():
    out = logged_in().send(LOCATION_NOT_FIXED)
    assert (len(out.answers), out.fixes, [r for r, _ in out.rejected]) == (1, [], ["not_fixed"])


def test_a_fixed_position_at_zero_zero_is_rejected():
    out = logged_in().send(location(7, 0, lat_e6=0, lon_e6=0))
    assert [r for r, _ in out.rejected] == ["zero_position"]


def test_a_time_far_in_the_future_is_rejected():
    out = logged_in().send(location(7, 0, t_bcd="251123201530"))
    assert [r for r, _ in out.rejected] == ["future_time"]


def test_a_latitude_past_the_pole_is_rejected():
    out = logged_in().send(location(7, 0, lat_e6=91_000_000))
    assert [r for r, _ in out.rejected] == ["lat_range"]


def test_a_truncated_location_is_answered_as_a_bad_message():
    terminal = Terminal(policy(require_auth=False))  # its first answer carries serial 0
    bad = encode_message(0x0200, bytes(20), "013912345678", 4).hex()
    out = terminal.send(bad)
    assert ([a.hex() for a in out.answers], [r for r, _ in out.rejected]) == ([BAD_LOCATION], ["truncated"])


def test_a_bad_checksum_is_answered_as_a_bad_message():
    damaged = LOCATION_2013[:-4] + "497e"
    out = Terminal().send(damaged)
    assert ([a.hex() for a in out.answers], [r for r, _ in out.rejected]) == ([BAD_LOCATION], ["bad_checksum"])


def test_an_unknown_message_is_answered_as_unsupported():
    assert Terminal().answers(UNSUPPORTED_0900) == [UNSUPPORTED]


def test_a_terminal_response_needs_no_answer():
    assert Terminal().answers(TERMINAL_RESPONSE) == []


def test_logout_ends_the_authentication():
    terminal = logged_in()
    terminal.send(LOGOUT)
    assert (terminal.session.state, terminal.send(LOCATION_2013).fixes) == (SessionState.CONNECTED, [])


def test_another_phone_on_the_same_connection_is_refused():
    terminal = logged_in()
    other = encode_message(0x0002, b"", "013900000000", 9).hex()
    out = terminal.send(other)
    assert ([r for r, _ in out.rejected], [a.hex()[-6:-4] for a in out.answers]) == (["phone_mismatch"], ["01"])


def test_an_encrypted_message_is_unsupported():
    rsa_heartbeat = encode_frame(bytes.fromhex("0002" "0400" "013912345678" "0009"))  # attribute bit 10
    out = Terminal().send(rsa_heartbeat.hex())
    assert [r for r, _ in out.rejected] == ["encrypted"]


def test_too_many_bad_frames_in_a_row_close_the_connection():
    out = Terminal(policy(max_bad_frames=3)).send("7e01027e" * 4)
    assert out.close


def test_a_good_frame_resets_the_count_of_bad_ones():
    out = Terminal(policy(max_bad_frames=3)).send("7e01027e" * 3, HEARTBEAT_2013, "7e01027e" * 3)
    assert not out.close


def test_sub_packets_are_acknowledged_each_and_decoded_once_complete():
    terminal = Terminal(policy(require_auth=False))
    first = terminal.send(BATCH_PART_1)
    second = terminal.send(BATCH_PART_2)
    assert (
        [a.hex() for a in first.answers + second.answers],
        first.fixes,
        [(f.t_ms, f.lat) for f in second.fixes],
    ) == (
        [ANSWER_BATCH_PART_1, ANSWER_BATCH_PART_2],
        [],
        [(1763863200000, 36.061089), (1763863210000, 36.061184)],
    )


def test_sub_packets_arriving_in_reverse_order_are_reassembled():
    out = logged_in().send(BATCH_PART_2, BATCH_PART_1)
    assert [f.lat for f in out.fixes] == [36.061089, 36.061184]


def test_an_unfinished_sub_packet_message_expires():
    terminal = logged_in()
    terminal.send(BATCH_PART_1)
    later = terminal.send(HEARTBEAT_2013, rx_ms=RX + 121_000)
    assert [r for r, _ in later.rejected] == ["subpacket_timeout"]


def test_more_packets_than_allowed_are_refused():
    out = logged_in(Terminal(policy(max_packets=1))).send(BATCH_PART_1)
    assert ([r for r, _ in out.rejected], [a.hex()[-6:-4] for a in out.answers]) == (["subpacket_overflow"], ["01"])


def test_more_bytes_than_allowed_in_reassembly_are_refused():
    out = logged_in(Terminal(policy(max_reassembly_bytes=40))).send(BATCH_PART_1, BATCH_PART_2)
    assert [r for r, _ in out.rejected] == ["subpacket_overflow"]


def test_too_many_messages_in_reassembly_evict_the_oldest():
    terminal = logged_in(Terminal(policy(max_reassemblies=1)))
    terminal.send(BATCH_PART_1, rx_ms=RX)
    first_packet = bytearray(FrameReader().feed(bytes.fromhex(BATCH_PART_1))[0])
    first_packet[10:12] = b"\x00\x20"  # another message: its first serial is 0x20
    out = terminal.send(encode_frame(bytes(first_packet)).hex(), rx_ms=RX + 1)
    assert [r for r, _ in out.rejected] == ["subpacket_evicted"]


def test_backfill_points_keep_their_own_times_and_raise_no_alarm():
    out = logged_in().send(BACKFILL)
    assert ([f.t_ms for f in out.fixes], out.alarms) == ([1763769600000, 1763769540000], [])


def test_an_alarm_is_raised_on_its_rising_edge_only():
    terminal = logged_in()
    raised = terminal.send(location(10, 0b01)).alarms
    again = terminal.send(location(11, 0b01, t_bcd="251123101540")).alarms
    assert (raised, again) == (
        [VehicleAlarm(DEVICE, 1763864130000, 0, "sos", 36.061089, 103.834303, True)],
        [],
    )


def test_each_bit_has_its_own_edges():
    terminal = logged_in()
    terminal.send(location(10, 0b01))
    out = terminal.send(location(11, 0b10, t_bcd="251123101540"))
    assert [(a.name, a.raised) for a in out.alarms] == [("sos", False), ("overspeed", True)]


def test_an_unnamed_bit_is_named_by_its_number():
    out = logged_in().send(location(10, 1 << 3))
    assert [a.name for a in out.alarms] == ["bit_3"]


def test_an_alarm_without_a_fix_takes_the_last_known_position():
    terminal = logged_in()
    terminal.send(location(10, 0))
    out = terminal.send(location(11, 1 << 29, status=1, t_bcd="251123101540"))
    assert [(a.name, a.lat, a.lon) for a in out.alarms] == [("collision", 36.061089, 103.834303)]


def test_a_reconnect_does_not_raise_again_an_alarm_that_never_cleared():
    alarms = AlarmTracker()
    logged_in(Terminal(alarms=alarms)).send(location(10, 1 << 30))
    out = logged_in(Terminal(alarms=alarms)).send(location(1, 1 << 30, t_bcd="251123101600"))
    assert out.alarms == []


def test_a_report_resent_late_does_not_move_the_edges():
    terminal = logged_in()
    terminal.send(location(10, 0b1, t_bcd="251123101540"))
    out = terminal.send(location(9, 0b0, t_bcd="251123101530"))
    assert (len(out.fixes), out.alarms) == (1, [])


def edges(alarms: list[VehicleAlarm]) -> list[tuple[str, str, bool, int]]:
    """The alarm outbox's rows of these events: (device, kind, raised, t)."""
    return [(a.device, a.name, a.raised, a.t_ms) for a in alarms]


def test_after_a_restart_an_alarm_still_set_is_not_raised_again_and_clears_once():
    before = logged_in().send(location(10, 1 << 1, t_bcd="251123101530")).alarms
    restarted = logged_in(Terminal(alarms=AlarmTracker.from_edges(edges(before))))
    still_set = restarted.send(location(1, 1 << 1, t_bcd="251123101630")).alarms
    cleared = restarted.send(location(2, 0, t_bcd="251123101700")).alarms
    assert ([(a.name, a.raised) for a in before], still_set, [(a.name, a.t_ms, a.raised) for a in cleared]) == (
        [("overspeed", True)], [], [("overspeed", 1763864220000, False)])


def test_after_a_restart_the_later_edge_of_an_alarm_decides():
    tracker = AlarmTracker.from_edges([(DEVICE, "sos", True, 1763864100000), (DEVICE, "sos", False, 1763864110000)])
    assert tracker.state(DEVICE) == (0, 1763864110000)


def test_after_a_restart_the_newest_edges_in_the_outbox_order_give_the_alarms_and_the_newest_time():
    tracker = AlarmTracker.from_edges([  # the newest of each alarm, by name
        (DEVICE, "bit_3", True, 1763864120000), (DEVICE, "collision", True, 1763864125000), (DEVICE, "sos", False, 1763864110000),
    ])
    assert tracker.state(DEVICE) == ((1 << 29) | (1 << 3), 1763864125000)


def test_after_a_restart_a_report_older_than_the_newest_fix_does_not_move_the_edges():
    before = logged_in().send(location(10, 1, t_bcd="251123101530")).alarms
    newest_fix = 1763864160000  # 10:16:00, alarm still set
    restarted = logged_in(Terminal(alarms=AlarmTracker.from_edges(edges(before), {DEVICE: newest_fix})))
    resent = restarted.send(location(11, 0, t_bcd="251123101540"))  # 10:15:40, its answer lost in the crash
    assert (len(resent.fixes), resent.alarms) == (1, [])


def test_edges_of_names_no_bit_has_are_ignored_on_restart():
    tracker = AlarmTracker.from_edges([(DEVICE, "speeding", True, 1), (DEVICE, "bit_0", True, 1), (DEVICE, "bit_05", True, 1)])
    assert tracker.state(DEVICE) is None


def test_every_bit_is_found_again_by_its_name():
    assert [alarm_bit(alarm_name(bit)) for bit in range(32)] == list(range(32))


_BITS = st.sampled_from([0, 1, 2, 3, 1 << 29, (1 << 29) | 1, 1 << 31])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([DEVICE, "jt013912345679"]), _BITS, st.sampled_from([0, 0, 1_000, 30_000])),
                max_size=30))
def test_rebuilding_from_the_edges_anywhere_gives_the_same_edges_as_never_stopping(reports):
    """Reports in time order (a terminal's realtime reports): restarting after any one of
    them, with its edges and the newest report time, changes no edge to come."""
    timed, t = [], 1763864130000
    for device, bits, step in reports:
        t += step
        timed.append((device, bits, t))
    never_stopped = AlarmTracker()
    expected = [a for device, bits, t in timed for a in never_stopped.update(device, bits, t, 36.06, 103.83)]
    for cut in range(len(timed) + 1):
        tracker, said = AlarmTracker(), []
        for device, bits, t in timed[:cut]:
            said += tracker.update(device, bits, t, 36.06, 103.83)
        newest = {device: t for device, _, t in timed[:cut]}
        restarted = AlarmTracker.from_edges(edges(said), newest)
        rest = [a for device, bits, t in timed[cut:] for a in restarted.update(device, bits, t, 36.06, 103.83)]
        assert said + rest == expected


@pytest.mark.parametrize("bit", [-1, 32])
def test_an_alarm_bit_outside_the_dword_is_not_a_record(bit):
    with pytest.raises(ValueError):
        VehicleAlarm(DEVICE, 0, bit, "x", 0.0, 0.0, True)


FRAMES = [
    REGISTER_2013, REGISTER_2019, AUTH_2013, AUTH_2019, LOCATION_2013, LOCATION_2019, LOCATION_NOT_FIXED,
    HEARTBEAT_2013, BATCH_PART_1, BATCH_PART_2, BACKFILL, UNSUPPORTED_0900, TERMINAL_RESPONSE, LOGOUT,
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(FRAMES), st.binary(max_size=6), st.integers(0, 200)), max_size=12))
def test_a_session_fed_mutated_frames_never_fails(script):
    terminal = Terminal(policy(require_auth=False))
    for wire_hex, patch, where in script:
        data = bytearray(bytes.fromhex(wire_hex))
        where = min(where, len(data))
        data[where:where + len(patch)] = patch
        out = terminal.session.receive(terminal.reader.feed(bytes(data)), RX)
        assert all(type(a) is bytes and a[:1] == a[-1:] == b"\x7e" for a in out.answers)


def test_a_sub_packeted_unsupported_message_is_refused_without_being_stored():
    multimedia_part = encode_frame(bytes.fromhex("0801" "2004" "013912345678" "0030" "0005" "0001" "00000001"))
    terminal = logged_in()
    out = terminal.send(multimedia_part.hex())
    (answer,) = FrameReader().feed(out.answers[0])
    assert (answer[-5:].hex(), terminal.session._reassemblies) == ("0030080103", {})  # serial, id, unsupported


def test_a_position_query_goes_out_in_the_terminals_own_2019_header():
    terminal = Terminal()
    terminal.send(REGISTER_2019, AUTH_2019)
    query = terminal.session.query_position()
    # 0x8201, 2019 attributes (bit 14, empty body), version 1, phone BCD[10], platform serial
    assert query.hex()[:32] == "7e" "8201" "4000" "01" "00000000013912345678"


def test_a_position_query_before_authentication_is_refused():
    with pytest.raises(ValueError, match="not authenticated"):
        Terminal().session.query_position()


def test_a_position_reply_becomes_one_fix_and_needs_no_answer():
    terminal = logged_in()
    body = bytes.fromhex("0007") + struct.pack(">IIIIhHH", 0, 3, 36061089, 103834303, 1520, 456, 90) + bytes.fromhex("251123101530")
    out = terminal.session.receive(terminal.reader.feed(encode_message(0x0201, body, "013912345678", 8)), RX)
    assert ([(f.device, f.t_ms, f.lat, f.lon, f.seq) for f in out.fixes], out.answers) == (
        [(DEVICE, 1763864130000, 36.061089, 103.834303, 8)], [])


# --- what real terminals get wrong, tolerated and counted --------------------------------


def test_a_location_with_a_damaged_extras_tail_is_one_fix_counted_as_damaged():
    out = logged_in().send(LOCATION_CUT_EXTRAS)
    assert ([f.lat for f in out.fixes], [r for r, _ in out.tolerated], out.rejected) == (
        [36.061089], ["extras_damaged"], [])


def test_a_location_with_a_damaged_extras_tail_is_acknowledged():
    assert logged_in().answers(LOCATION_CUT_EXTRAS) == [ANSWER_LOCATION_2013]


def test_a_position_reply_with_a_damaged_extras_tail_is_one_fix_counted_as_damaged():
    out = logged_in().send(POSITION_REPLY_CUT_EXTRAS)
    assert ([(f.lat, f.seq) for f in out.fixes], [r for r, _ in out.tolerated]) == ([(36.061089, 8)], ["extras_damaged"])


def test_a_batch_item_with_a_damaged_extras_tail_is_one_fix_counted_as_damaged():
    out = logged_in().send(BATCH_CUT_EXTRAS)
    assert ([f.lat for f in out.fixes], [r for r, _ in out.tolerated], out.rejected) == (
        [36.061089], ["extras_damaged"], [])


def test_readings_no_vehicle_reports_are_dropped_and_counted_and_the_position_kept():
    out = logged_in().send(LOCATION_IMPOSSIBLE_READINGS)
    assert ([(f.lat, f.spd, f.hdg, f.alt) for f in out.fixes], [r for r, _ in out.tolerated]) == (
        [(36.061089, None, None, None)], ["speed_range", "direction_range", "altitude_range"])


def test_a_terminal_with_a_hex_phone_registers_authenticates_and_reports():
    terminal = Terminal()
    registered = terminal.send(REGISTER_HEX_PHONE)
    code = registered.answers[0][-2 - 16:-2]  # the issued auth code ends the 0x8100 body
    auth = encode_message(0x0102, code, "0a1b2c3d4e5f", 3).hex()
    terminal.send(auth)
    out = terminal.send(LOCATION_HEX_PHONE)
    assert ([f.device for f in out.fixes], [a.hex() for a in out.answers]) == (
        ["jt0a1b2c3d4e5f"], ["7e800100050a1b2c3d4e5f00020004020000917e"])


def test_a_hex_phone_is_counted_once_per_connection():
    terminal = Terminal(policy(require_auth=False))
    first = terminal.send(LOCATION_HEX_PHONE)
    second = terminal.send(LOCATION_HEX_PHONE)
    assert ([r for r, _ in first.tolerated], second.tolerated, len(first.fixes + second.fixes)) == (
        ["phone_not_bcd"], [], 2)


HANDLED = {0x0001, 0x0002, 0x0003, 0x0100, 0x0102, 0x0200, 0x0201, 0x0704}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFF).filter(lambda i: i not in HANDLED), st.integers(0, 0xFFFF), st.binary(max_size=40),
       st.sampled_from([None, 1]), st.booleans())
def test_every_message_not_handled_is_answered_not_supported(msg_id, serial, body, version, authenticated):
    terminal = Terminal()
    if authenticated:
        terminal.send(*((REGISTER_2013, AUTH_2013) if version is None else (REGISTER_2019, AUTH_2019)))
    out = terminal.send(encode_message(msg_id, body, "013912345678", serial, version).hex())
    (answer,) = [FrameReader().feed(a)[0] for a in out.answers]
    assert (answer[:2], answer[-5:]) == (b"\x80\x01", struct.pack(">HHB", serial, msg_id, 3))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(-(2**15), 2**15 - 1),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(min_size=6, max_size=6) | st.just(bytes.fromhex("251123101530")),
       st.binary(max_size=24))
def test_any_value_of_every_location_field_gives_a_storable_fix_or_a_refusal(status, lat_e6, lon_e6, alt, speed, direction,
                                                                           t_bcd, extras):
    body = struct.pack(">IIIIhHH", 0, status, lat_e6, lon_e6, alt, speed, direction) + t_bcd + extras
    out = logged_in().send(encode_message(0x0200, body, "013912345678", 9).hex())
    for fix in out.fixes:
        assert_storable(fix)
    assert len(out.fixes) + len([r for r, _ in out.rejected]) == 1
