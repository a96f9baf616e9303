"""A session that asks the platform who may log in (``Terminals``): the registry's
refusals in the standard's answers, the registered identity in the fixes, and a second
claim of an identity refused. Frames: tests/jt808_wire.py (terminal T000001, plate 甘A12345)."""

from __future__ import annotations

import struct

from protocols.jt808.framing import FrameReader
from protocols.jt808.messages import encode_message
from protocols.jt808.session import Jt808Session, KnownTerminal, SessionPolicy
from tests.jt808_wire import REGISTER_2013, REGISTER_2019

SECRET = b"gridwatch-test-secret"
RX = 1763864135000  # 2025-11-23 02:15:35 UTC, five seconds after the report below was taken
PHONE = "013912345678"


class Directory:
    """The platform's answers: registered terminals by phone, and who holds which link."""

    def __init__(self, *known: tuple[str, KnownTerminal]) -> None:
        self.known = dict(known)
        self.held: dict[str, Jt808Session] = {}

    def lookup(self, phone: str) -> KnownTerminal | None:
        return self.known.get(phone[-12:])

    def claim(self, device: str, session: Jt808Session) -> bool:
        if self.held.get(device, session) is not session:
            return False
        self.held[device] = session
        return True


def session(directory: Directory) -> tuple[Jt808Session, FrameReader]:
    return Jt808Session(SessionPolicy(district="620105", auth_secret=SECRET), terminals=directory), FrameReader()


def send(pair: tuple[Jt808Session, FrameReader], wire_hex: str):
    s, reader = pair
    return s.receive(reader.feed(bytes.fromhex(wire_hex)), RX)


def register_result(out) -> int:
    (answer,) = out.answers
    header = 17 if answer[3] & 0x40 else 12  # a 2019 header: version byte, 10-byte phone
    return answer[1 + header + 2]  # flag, header, answered serial: then the result


def authenticate(code: bytes, phone: str = PHONE) -> str:
    return encode_message(0x0102, code, phone, 3).hex()


def location() -> str:
    body = struct.pack(">IIIIhHH", 0, 3, 36061089, 103834303, 1520, 456, 90) + bytes.fromhex("251123101530")
    return encode_message(0x0200, body, PHONE, 4).hex()


def test_an_unregistered_phone_gets_result_4_and_no_code():
    out = send(session(Directory()), REGISTER_2013)
    assert (register_result(out), [r for r, _ in out.rejected]) == (4, ["unregistered_terminal"])
    assert out.answers[0][1:3] == b"\x81\x00" and len(out.answers[0]) == 1 + 12 + 3 + 2  # no auth code after the result


def test_a_terminal_id_or_plate_other_than_the_registered_one_is_refused_as_the_standard_says():
    wrong_terminal = Directory((PHONE, KnownTerminal("v001", "620103", terminal_id="T999999")))
    out = send(session(wrong_terminal), REGISTER_2013)
    assert (register_result(out), out.rejected[0][0]) == (4, "terminal_id_mismatch")
    wrong_plate = Directory((PHONE, KnownTerminal("v001", "620103", terminal_id="T000001", plate="甘A99999")))
    out = send(session(wrong_plate), REGISTER_2013)
    assert (register_result(out), out.rejected[0][0]) == (2, "plate_mismatch")


def test_a_registered_terminal_reports_as_its_registered_device_and_district():
    directory = Directory((PHONE, KnownTerminal("v001", "620103", terminal_id="T000001", plate="甘A12345")))
    pair = session(directory)
    out = send(pair, REGISTER_2013)
    assert register_result(out) == 0
    code = SessionPolicy(district="620105", auth_secret=SECRET).auth_code(PHONE)
    assert out.answers[0][-2 - len(code):-2] == code
    assert send(pair, authenticate(code)).rejected == []
    (fix,) = send(pair, location()).fixes
    assert (fix.device, fix.district) == ("v001", "620103")


def test_a_2019_terminal_padding_the_same_phone_is_the_same_terminal():
    directory = Directory((PHONE, KnownTerminal("v001", "620105")))
    assert register_result(send(session(directory), REGISTER_2019)) == 0


def test_a_second_session_claiming_an_authenticated_terminal_is_refused_at_authentication():
    directory = Directory((PHONE, KnownTerminal("v001", "620105")))
    code = SessionPolicy(district="620105", auth_secret=SECRET).auth_code(PHONE)
    first, second = session(directory), session(directory)
    assert send(first, authenticate(code)).rejected == []
    out = send(second, authenticate(code))
    assert ([r for r, _ in out.rejected], out.answers[0][-3]) == (["identity_in_use"], 1)
    assert not second[0].authenticated and directory.held["v001"] is first[0]
    assert [r for r, _ in send(second, location()).rejected] == ["unauthenticated"]


def test_a_right_code_for_a_phone_no_longer_registered_is_refused():
    code = SessionPolicy(district="620105", auth_secret=SECRET).auth_code(PHONE)
    out = send(session(Directory()), authenticate(code))
    assert [r for r, _ in out.rejected] == ["unregistered_terminal"]
