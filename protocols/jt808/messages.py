"""JT/T 808 messages: pure decoding of terminal messages, encoding of platform answers.

Input is one frame as :mod:`protocols.jt808.framing` hands it on (``header | body``,
unescaped, checksum checked). Every decoder raises only :class:`DecodeError` on bad input.

Editions: a 2011/2013 header carries a BCD[6] phone; a 2019 header sets attribute bit 14 and
adds a protocol version byte and a BCD[10] phone. 2011 and 2013 headers are identical; the
edition shows only in the registration body, whose model field grew from 8 to 20 bytes.
"""

from __future__ import annotations

import enum
import functools
import struct
from dataclasses import dataclass
from typing import NamedTuple

from protocols.errors import DecodeError
from protocols.jt808.framing import MAX_BODY_BYTES, encode_frame


class MsgId(enum.IntEnum):
    TERMINAL_RESPONSE = 0x0001
    HEARTBEAT = 0x0002
    LOGOUT = 0x0003
    REGISTER = 0x0100
    AUTHENTICATE = 0x0102
    LOCATION = 0x0200
    POSITION_REPLY = 0x0201
    BATCH_LOCATION = 0x0704
    PLATFORM_RESPONSE = 0x8001
    REGISTER_RESPONSE = 0x8100
    POSITION_QUERY = 0x8201


class Result(enum.IntEnum):
    """Result byte of 0x8001 (platform) and 0x0001 (terminal) general responses."""

    OK = 0
    FAIL = 1
    BAD_MESSAGE = 2
    UNSUPPORTED = 3
    ALARM_CONFIRMED = 4


class RegisterResult(enum.IntEnum):
    OK = 0
    VEHICLE_TAKEN = 1
    NO_SUCH_VEHICLE = 2
    TERMINAL_TAKEN = 3
    NO_SUCH_TERMINAL = 4


class BatchKind(enum.IntEnum):
    NORMAL = 0
    BACKFILL = 1  # recorded out of coverage: late and out of order


STATUS_ACC = 1 << 0
STATUS_FIXED = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3
STATUS_ENCRYPTED = 1 << 5

EXTRA_MILEAGE = 0x01
EXTRA_SIGNAL = 0x30
EXTRA_SATELLITES = 0x31

_ATTR_LENGTH = 0x03FF
_ATTR_SUBPACKET = 1 << 13
_ATTR_2019 = 1 << 14

_HEADER_2013 = struct.Struct(">HH6sH")
_HEADER_2019 = struct.Struct(">HHB10sH")
_SUBPACKET = struct.Struct(">HH")
_LOCATION = struct.Struct(">IIIIhHH6s")
_TERMINAL_RESPONSE = struct.Struct(">HHB")
_WORD = struct.Struct(">H")
_DWORD = struct.Struct(">I")

_GMT8_MS = 8 * 3_600_000
_NO_TIME = bytes(6)
_DAYS_CACHE: dict[bytes, int] = {}
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# BCD byte -> its two-digit value, -1 where a nibble is not a decimal digit
_BCD = tuple((b >> 4) * 10 + (b & 15) if (b >> 4) < 10 and (b & 15) < 10 else -1 for b in range(256))

# (maker, model, terminal id) field widths of the 0x0100 body per edition
_REGISTER_FIELDS = {"2011": (5, 8, 7), "2013": (5, 20, 7), "2019": (11, 30, 30)}
_REGISTER_FIXED_2013 = 4 + sum(_REGISTER_FIELDS["2013"]) + 1


class Header(NamedTuple):
    """A message header. ``version`` is None for a 2011/2013 header, else the 2019
    protocol version byte. ``packet_count`` is 0 when the message is not sub-packeted.

    A NamedTuple rather than a frozen dataclass: one is built per frame on the hot path.
    """

    msg_id: int
    body_length: int
    encryption: int
    phone: str
    serial: int
    version: int | None = None
    packet_count: int = 0
    packet_index: int = 0

    @property
    def size(self) -> int:
        return (17 if self.version is not None else 12) + (4 if self.packet_count else 0)


class Location(NamedTuple):
    """One 0x0200 body (or one 0x0704 item), units converted, sign applied.

    ``t_ms`` is UTC epoch milliseconds, None when the terminal sent an all-zero time (no
    clock yet). ``extras`` keeps the TLVs not decoded here as (id, raw value) pairs.
    A NamedTuple for the same reason as :class:`Header`.
    """

    alarm: int
    status: int
    lat: float
    lon: float
    alt: int  # m; read signed: the Turpan depression lies 154 m below sea level
    speed_kmh: float
    direction: int
    t_ms: int | None
    mileage_km: float | None = None
    signal: int | None = None
    satellites: int | None = None
    extras: tuple[tuple[int, bytes], ...] = ()

    @property
    def fixed(self) -> bool:
        return bool(self.status & STATUS_FIXED)


@dataclass(frozen=True, slots=True)
class TerminalResponse:
    reply_serial: int
    reply_id: int
    result: int


@dataclass(frozen=True, slots=True)
class Registration:
    edition: str  # "2011", "2013" or "2019"
    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str


@dataclass(frozen=True, slots=True)
class Authentication:
    code: bytes
    imei: str | None = None  # 2019 only
    software_version: str | None = None  # 2019 only


@dataclass(frozen=True, slots=True)
class Batch:
    """A 0x0704 body: the items that decoded, and one error per item that did not."""

    kind: BatchKind
    locations: tuple[Location, ...]
    rejected: tuple[DecodeError, ...] = ()


def device_id(phone: str) -> str:
    """The tracker device id of a terminal: "jt" + its phone digits.

    A 2019 terminal pads the same SIM number to 20 digits; it is cut back to the 12 of the
    older editions so a terminal keeps its id across a firmware upgrade.
    """
    if len(phone) == 20 and phone.startswith("00000000"):
        phone = phone[8:]
    return "jt" + phone


def _bcd(raw: bytes) -> str:
    digits = raw.hex()
    if not digits.isdigit():
        raise DecodeError("bad_bcd", f"not BCD: {digits}")
    return digits


def split_message(frame: bytes) -> tuple[Header, bytes]:
    """A frame (``header | body``) to its header and body."""
    n = len(frame)
    if n < 4:
        raise DecodeError("truncated", f"header needs at least 12 bytes, got {n}")
    attrs = (frame[2] << 8) | frame[3]
    if attrs & _ATTR_2019:
        if n < 17:
            raise DecodeError("truncated", f"2019 header needs 17 bytes, got {n}")
        msg_id, attrs, version, phone, serial = _HEADER_2019.unpack_from(frame)
        offset = 17
    else:
        if n < 12:
            raise DecodeError("truncated", f"header needs 12 bytes, got {n}")
        msg_id, attrs, phone, serial = _HEADER_2013.unpack_from(frame)
        version = None
        offset = 12
    count = index = 0
    if attrs & _ATTR_SUBPACKET:
        if n < offset + 4:
            raise DecodeError("truncated", "sub-packet fields missing")
        count, index = _SUBPACKET.unpack_from(frame, offset)
        offset += 4
        if not 1 <= index <= count:
            raise DecodeError("bad_subpacket", f"packet {index} of {count}")
    length = attrs & _ATTR_LENGTH
    if n - offset != length:
        reason = "truncated" if n - offset < length else "length_mismatch"
        raise DecodeError(reason, f"body attributes say {length} bytes, frame holds {n - offset}")
    header = Header(msg_id, length, (attrs >> 10) & 7, _bcd(phone), serial, version, count, index)
    return header, frame[offset:]


def _days(date: bytes) -> int:
    """Days from 1970-01-01 to the BCD date YYMMDD (20YY)."""
    bcd = _BCD
    yy, mo, dd = bcd[date[0]], bcd[date[1]], bcd[date[2]]
    if min(yy, mo, dd) < 0:
        raise DecodeError("bad_bcd", f"date is not BCD: {date.hex()}")
    year = 2000 + yy
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not (1 <= mo <= 12 and 1 <= dd <= _DAYS_IN_MONTH[mo]) or (mo == 2 and dd == 29 and not leap):
        raise DecodeError("bad_time", f"no such date: {date.hex()}")
    # days from civil (H. Hinnant), for years from 2000 on
    y = year - (mo <= 2)
    era, yoe = divmod(y, 400)
    doy = (153 * (mo + (-3 if mo > 2 else 9)) + 2) // 5 + dd - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _time_ms(raw: bytes) -> int | None:
    """BCD YYMMDDhhmmss in GMT+8 to UTC epoch ms; None for an all-zero time."""
    date = raw[:3]
    days = _DAYS_CACHE.get(date)
    if days is None:
        if raw == _NO_TIME:
            return None
        days = _DAYS_CACHE[date] = _days(date)  # only valid dates get here: at most 36,525
    bcd = _BCD
    hh, mi, ss = bcd[raw[3]], bcd[raw[4]], bcd[raw[5]]
    if not (0 <= hh < 24 and 0 <= mi < 60 and 0 <= ss < 60):
        reason = "bad_bcd" if min(hh, mi, ss) < 0 else "bad_time"
        raise DecodeError(reason, f"no such time: {raw.hex()}")
    return (((days * 24 + hh) * 60 + mi) * 60 + ss) * 1000 - _GMT8_MS


def decode_location(body: bytes) -> Location:
    """A 0x0200 body (also one 0x0704 item)."""
    n = len(body)
    if n < 28:
        raise DecodeError("truncated", f"location needs 28 bytes, got {n}")
    alarm, status, lat_e6, lon_e6, alt, speed, direction, t = _LOCATION.unpack_from(body)
    lat = -lat_e6 / 1e6 if status & STATUS_SOUTH else lat_e6 / 1e6
    lon = -lon_e6 / 1e6 if status & STATUS_WEST else lon_e6 / 1e6
    t_ms = _time_ms(t)
    if n == 28:
        return Location(alarm, status, lat, lon, alt, speed / 10, direction, t_ms)
    mileage = signal = satellites = None
    extras = []
    pos = 28
    while pos < n:
        if pos + 2 > n:
            raise DecodeError("truncated", "extra item cut after its id")
        tag, size = body[pos], body[pos + 1]
        pos += 2
        if pos + size > n:
            raise DecodeError("truncated", f"extra 0x{tag:02x} wants {size} bytes, {n - pos} left")
        value = body[pos:pos + size]
        pos += size
        # a known id with an unexpected length is kept raw rather than guessed at
        if tag == EXTRA_MILEAGE and size == 4:
            mileage = _DWORD.unpack(value)[0] / 10
        elif tag == EXTRA_SIGNAL and size == 1:
            signal = value[0]
        elif tag == EXTRA_SATELLITES and size == 1:
            satellites = value[0]
        else:
            extras.append((tag, value))
    return Location(alarm, status, lat, lon, alt, speed / 10, direction, t_ms, mileage, signal, satellites, tuple(extras))


def decode_batch(body: bytes) -> Batch:
    """A 0x0704 body: item count WORD, kind BYTE, then (length WORD, location) items."""
    n = len(body)
    if n < 3:
        raise DecodeError("truncated", f"batch needs 3 bytes, got {n}")
    count = _WORD.unpack_from(body)[0]
    try:
        kind = BatchKind(body[2])
    except ValueError:
        raise DecodeError("bad_batch_kind", f"batch kind {body[2]}") from None
    locations = []
    rejected = []
    pos = 3
    for i in range(count):
        if pos + 2 > n:
            rejected.append(DecodeError("truncated", f"batch holds {i} of {count} items"))
            break
        size = _WORD.unpack_from(body, pos)[0]
        pos += 2
        if pos + size > n:
            rejected.append(DecodeError("truncated", f"item {i} wants {size} bytes, {n - pos} left"))
            break
        try:
            locations.append(decode_location(body[pos:pos + size]))
        except DecodeError as exc:
            rejected.append(exc)
        pos += size
    else:
        if pos != n:
            rejected.append(DecodeError("length_mismatch", f"{n - pos} bytes after {count} items"))
    return Batch(kind, tuple(locations), tuple(rejected))


def decode_terminal_response(body: bytes) -> TerminalResponse:
    if len(body) < 5:
        raise DecodeError("truncated", f"terminal response needs 5 bytes, got {len(body)}")
    return TerminalResponse(*_TERMINAL_RESPONSE.unpack_from(body))


def _text(raw: bytes) -> str:
    return raw.strip(b"\x00 ").decode("gbk", errors="replace")


def decode_registration(header: Header, body: bytes) -> Registration:
    """A 0x0100 body. Without a 2019 header, a body long enough for the 2013 layout is
    read as 2013 (the plate, a GBK string, always takes a few bytes), a shorter one as 2011.
    """
    if header.version is not None:  # noqa: SIM108 - as one expression it would be a nested conditional
        edition = "2019"
    else:
        edition = "2013" if len(body) >= _REGISTER_FIXED_2013 else "2011"
    maker_n, model_n, terminal_n = _REGISTER_FIELDS[edition]
    fixed = 4 + maker_n + model_n + terminal_n + 1
    if len(body) < fixed:
        raise DecodeError("truncated", f"{edition} registration needs {fixed} bytes, got {len(body)}")
    province, city = struct.unpack_from(">HH", body)
    pos = 4
    maker = _text(body[pos:pos + maker_n])
    pos += maker_n
    model = _text(body[pos:pos + model_n])
    pos += model_n
    terminal_id = _text(body[pos:pos + terminal_n])
    pos += terminal_n
    return Registration(edition, province, city, maker, model, terminal_id, body[pos], _text(body[pos + 1:]))


def decode_authentication(header: Header, body: bytes) -> Authentication:
    """A 0x0102 body: the whole body is the code before 2019; 2019 prefixes the code with
    its length and follows it with IMEI BYTE[15] and software version BYTE[20]."""
    if header.version is None:
        return Authentication(bytes(body))
    if not body:
        raise DecodeError("truncated", "empty 2019 authentication")
    size = body[0]
    if len(body) < 1 + size + 15 + 20:
        raise DecodeError("truncated", f"2019 authentication needs {1 + size + 35} bytes, got {len(body)}")
    code = bytes(body[1:1 + size])
    imei = _text(body[1 + size:16 + size])
    software = _text(body[16 + size:36 + size])
    return Authentication(code, imei, software)


@functools.lru_cache(maxsize=16384)
def _phone_bcd(phone: str, digits: int) -> bytes:
    if len(phone) > digits or not phone.isdigit():
        raise ValueError(f"phone {phone!r} does not fit BCD[{digits // 2}]")
    return bytes.fromhex(phone.zfill(digits))


def encode_message(msg_id: int, body: bytes, phone: str, serial: int, version: int | None = None) -> bytes:
    """A whole frame ready to send, header in the edition given by ``version``."""
    if len(body) > MAX_BODY_BYTES:
        raise ValueError(f"body of {len(body)} bytes needs sub-packets")
    if version is None:
        header = _HEADER_2013.pack(msg_id, len(body), _phone_bcd(phone, 12), serial & 0xFFFF)
    else:
        attrs = _ATTR_2019 | len(body)
        header = _HEADER_2019.pack(msg_id, attrs, version, _phone_bcd(phone, 20), serial & 0xFFFF)
    return encode_frame(header + body)


def encode_platform_response(to: Header, serial: int, result: int) -> bytes:
    """0x8001 answering the message ``to``, in the terminal's own header edition."""
    body = _TERMINAL_RESPONSE.pack(to.serial, to.msg_id, result)
    return encode_message(MsgId.PLATFORM_RESPONSE, body, to.phone, serial, to.version)


def encode_register_response(to: Header, serial: int, result: int, auth_code: bytes = b"") -> bytes:
    """0x8100 answering a registration; the auth code goes only with a success."""
    body = _WORD.pack(to.serial) + bytes((result,))
    if result == RegisterResult.OK:
        body += auth_code
    return encode_message(MsgId.REGISTER_RESPONSE, body, to.phone, serial, to.version)
