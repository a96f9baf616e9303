"""One terminal connection as a pure state machine: frames in, answers and records out.

The session tracks registration and authentication, binds the connection to the first
phone number it hears, reassembles sub-packets within bounds, turns locations into
:class:`Fix` records and alarm bits into :class:`VehicleAlarm` edges. It does no I/O and
reads no clock: every call carries the receive time ``rx_ms``.

What a real terminal gets wrong without spoiling a report is tolerated and told apart in
``Outcome.tolerated``: a phone field in hex rather than BCD, a location whose extras area
ends in a damaged item, a speed, altitude or direction no vehicle reports (the reading is
dropped, the position kept).

Longer than the house's ~500 lines on purpose: it is one state machine, and each
message's handler sits next to the state it reads and the answer it owes (the standard's
tables of what answers what).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from protocols.errors import DecodeError
from protocols.jt808.framing import FramingError
from protocols.jt808.messages import (
    STATUS_FIXED,
    BatchKind,
    Header,
    Location,
    MsgId,
    RegisterResult,
    Registration,
    Result,
    decode_authentication,
    decode_batch,
    decode_location,
    decode_registration,
    decode_terminal_response,
    device_id,
    encode_message,
    encode_platform_response,
    encode_register_response,
    phone_is_bcd,
    split_message,
)
from protocols.model import (
    DEVICE_ID,
    DISTRICT_CODE,
    MAX_ALTITUDE_M,
    MAX_SPEED_MPS,
    MIN_ALTITUDE_M,
    Datum,
    DeviceClass,
    Fix,
)

ALARM_NAMES = {
    0: "sos",
    1: "overspeed",
    2: "fatigue",
    4: "gnss_fault",
    7: "low_power",
    8: "power_off",
    19: "overtime_parking",
    20: "area",
    21: "route",
    26: "stolen",
    28: "illegal_displacement",
    29: "collision",
    30: "rollover",
}

_SAMPLE_BYTES = 256
_MAX_SPEED_KMH = MAX_SPEED_MPS * 3.6
_VEHICLE = DeviceClass.VEHICLE
_WGS84 = Datum.WGS84


_ALARM_BITS = {name: bit for bit, name in ALARM_NAMES.items()}


def alarm_name(bit: int) -> str:
    return ALARM_NAMES.get(bit, f"bit_{bit}")


def alarm_bit(name: str) -> int | None:
    """The bit :func:`alarm_name` gives ``name`` to; None for a name it never gives."""
    bit = _ALARM_BITS.get(name)
    if bit is None and name.startswith("bit_") and name[4:].isdigit():
        bit = int(name[4:])
        if bit >= 32 or bit in ALARM_NAMES or name != f"bit_{bit}":
            return None
    return bit


@dataclass(frozen=True, slots=True)
class VehicleAlarm:
    """An alarm bit of one terminal changing: raised on its 0→1 edge, cleared on 1→0."""

    device: str
    t_ms: int
    bit: int
    name: str
    lat: float
    lon: float
    raised: bool

    def __post_init__(self) -> None:
        if not DEVICE_ID.match(self.device):
            raise ValueError(f"bad device id {self.device!r}")
        if not 0 <= self.bit < 32:
            raise ValueError(f"alarm bit {self.bit} outside the DWORD")
        if not (-90.0 <= self.lat <= 90.0) or not (-180.0 <= self.lon <= 180.0):
            raise ValueError(f"position out of range: lat={self.lat!r} lon={self.lon!r}")


class AuthCodePolicy(enum.StrEnum):
    ISSUED = "issued"  # only the code this platform issued to that phone at registration
    ANY = "any"  # any non-empty code: terminals provisioned by another platform


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    district: str
    auth_secret: bytes
    require_auth: bool = True
    auth_codes: AuthCodePolicy = AuthCodePolicy.ISSUED
    max_bad_frames: int = 32  # undecodable frames in a row before the connection is closed
    max_reassemblies: int = 4  # sub-packeted messages in flight at once
    max_packets: int = 64  # packets in one sub-packeted message
    max_reassembly_bytes: int = 64 * 1024
    reassembly_timeout_ms: int = 120_000
    max_future_ms: int = 10 * 60_000
    max_age_ms: int = 30 * 86_400_000  # backfill after a long stretch out of coverage

    def __post_init__(self) -> None:
        if not DISTRICT_CODE.match(self.district):
            raise ValueError(f"bad district code {self.district!r}")
        if not self.auth_secret:
            raise ValueError("auth_secret must not be empty")

    def auth_code(self, phone: str) -> bytes:
        """The code issued to a terminal: derived, so any gateway holding the secret can
        check it without a shared table, and stable across restarts."""
        mac = hmac.new(self.auth_secret, device_id(phone).encode(), hashlib.sha256)
        return mac.hexdigest()[:16].upper().encode()

    def accepts(self, phone: str, code: bytes) -> bool:
        if self.auth_codes is AuthCodePolicy.ANY:
            return bool(code)
        return hmac.compare_digest(code, self.auth_code(phone))


@dataclass(frozen=True, slots=True)
class KnownTerminal:
    """A terminal the platform knows: the device it is, where, and what it must say it is
    when it registers (empty: not checked)."""

    device: str
    district: str
    terminal_id: str = ""
    plate: str = ""


class Terminals(Protocol):
    """Who may register and authenticate, and whose command link is whose. A connection's
    session asks it; the gateway answers from the device registry and its connections."""

    def lookup(self, phone: str) -> KnownTerminal | None:
        """The terminal with this SIM number, or None: unknown to the platform, or disabled."""
        ...

    def claim(self, device: str, session: Jt808Session) -> bool:
        """Bind the device's command link to ``session``: False (and nothing changes) while
        another connection that authenticated as that device holds it."""
        ...


class SessionState(enum.Enum):
    CONNECTED = "connected"
    REGISTERED = "registered"  # holds an auth code, has not presented it
    AUTHENTICATED = "authenticated"


# What each event leads to, whatever the state before: a terminal may re-register or
# re-authenticate at any time, and a failed authentication withdraws an earlier success.
_NEXT_STATE = {
    "registered": SessionState.REGISTERED,
    "authenticated": SessionState.AUTHENTICATED,
    "auth_failed": SessionState.CONNECTED,
    "logged_out": SessionState.CONNECTED,
}


@dataclass(slots=True)
class Outcome:
    """What a batch of frames produced: answers to send (whole frames), records,
    ``(reason, sample)`` for everything refused, and ``(reason, sample)`` for what was
    kept despite a defect (``tolerated``). ``frames`` counts the frames whose header could
    be read, whatever came of them: what tells a live terminal from a trickle of bytes.
    ``close`` asks the transport to hang up."""

    frames: int = 0
    answers: list[bytes] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    alarms: list[VehicleAlarm] = field(default_factory=list)
    rejected: list[tuple[str, bytes]] = field(default_factory=list)
    tolerated: list[tuple[str, bytes]] = field(default_factory=list)
    close: bool = False


class AlarmTracker:
    """Last alarm DWORD per terminal, shared by its successive connections so a reconnect
    does not raise again an alarm that never cleared. A report older than the last one
    seen (resent after a lost answer) does not move the edges.

    Across a restart its state is the edges it produced, which the service keeps anyway
    (the alarm outbox): :meth:`from_edges` rebuilds it from them, so there is no second
    copy that could disagree with what consumers were told.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, int]] = {}

    @classmethod
    def from_edges(cls, edges: Iterable[tuple[str, str, bool, int]], newest_ms: Mapping[str, int] | None = None) -> AlarmTracker:
        """The tracker the edges ``(device, name, raised, t_ms)`` leave behind, later ones
        winning (all of a terminal's edges in order, or only the newest of each alarm).

        A terminal's alarms are those whose newest edge raised them; reports older than
        its newest edge, or than ``newest_ms[device]`` (the newest report the platform
        has of it, when later), do not move its edges. Names :func:`alarm_name` does not
        give are ignored.

        Rebuilt so, it judges reports that come in time order exactly as the tracker
        that produced the edges would have. A report older than that tracker's newest
        but newer than both bounds here (out of order, and across the restart) may
        move an edge the old tracker would have held.
        """
        tracker = cls()
        last = tracker._last
        for device, name, raised, t_ms in edges:
            bit = alarm_bit(name)
            if bit is None:
                continue
            bits, t = last.get(device, (0, t_ms))
            bits = bits | 1 << bit if raised else bits & ~(1 << bit)
            last[device] = (bits, max(t, t_ms))
        for device, (bits, t) in last.items():
            newest = (newest_ms or {}).get(device)
            if newest is not None and newest > t:
                last[device] = (bits, newest)
        return tracker

    def bits(self, device: str) -> int:
        last = self._last.get(device)
        return last[0] if last is not None else 0

    def state(self, device: str) -> tuple[int, int] | None:
        """(alarm DWORD, time of the newest report judged) of a terminal, None if never seen."""
        return self._last.get(device)

    def update(self, device: str, bits: int, t_ms: int, lat: float, lon: float) -> list[VehicleAlarm]:
        old_bits, old_t = self._last.get(device, (0, t_ms))
        if t_ms < old_t:
            return []
        self._last[device] = (bits, t_ms)
        changed = bits ^ old_bits
        alarms = []
        while changed:
            low = changed & -changed
            bit = low.bit_length() - 1
            alarms.append(VehicleAlarm(device, t_ms, bit, alarm_name(bit), lat, lon, bool(bits & low)))
            changed ^= low
        return alarms


@dataclass(slots=True)
class _Reassembly:
    started_ms: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class Jt808Session:
    """One TCP connection of one terminal."""

    def __init__(self, policy: SessionPolicy, alarms: AlarmTracker | None = None, terminals: Terminals | None = None) -> None:
        """``terminals`` None: any terminal may register and authenticate, as the device
        ``jt{phone}`` of the policy's district, and no connection is told apart from
        another claiming the same phone (benchmarks, decoder tests)."""
        self.policy = policy
        self.alarms = alarms if alarms is not None else AlarmTracker()
        self.terminals = terminals
        self.state = SessionState.CONNECTED
        self.phone: str | None = None
        self.header_version: int | None = None
        self.device: str | None = None
        self.district = policy.district  # the registered terminal's, once it registers or authenticates
        self.edition: str | None = None
        self.imei: str | None = None
        self.software_version: str | None = None
        self._serial = 0
        self._bad_in_a_row = 0
        self._position = (0.0, 0.0)  # of the last fix, for alarms raised without one
        self._reassemblies: dict[tuple[int, int, int], _Reassembly] = {}
        self._dispatch: dict[int, Callable[[Header, bytes, bytes, int, Outcome], None]] = {
            MsgId.TERMINAL_RESPONSE: self._on_terminal_response,
            MsgId.HEARTBEAT: self._on_heartbeat,
            MsgId.LOGOUT: self._on_logout,
            MsgId.REGISTER: self._on_register,
            MsgId.AUTHENTICATE: self._on_authenticate,
            MsgId.LOCATION: self._on_location,
            MsgId.POSITION_REPLY: self._on_position_reply,
            MsgId.BATCH_LOCATION: self._on_batch,
        }

    @property
    def authenticated(self) -> bool:
        return self.state is SessionState.AUTHENTICATED

    def receive(self, items: Iterable[bytes | FramingError], rx_ms: int) -> Outcome:
        """Handle what one read of the stream yielded, in order."""
        out = Outcome()
        if self._reassemblies:
            self._expire(rx_ms, out)
        for item in items:
            if isinstance(item, bytes):
                self._frame(item, rx_ms, out)
            else:
                self._framing_error(item, out)
        return out

    def _on(self, event: str) -> None:
        self.state = _NEXT_STATE[event]

    def _next_serial(self) -> int:
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        return serial

    def _answer(self, to: Header, result: int, out: Outcome) -> None:
        out.answers.append(encode_platform_response(to, self._next_serial(), result))

    def _bad(self, reason: str, raw: bytes, out: Outcome) -> None:
        out.rejected.append((reason, bytes(raw[:_SAMPLE_BYTES])))
        self._bad_in_a_row += 1
        if self._bad_in_a_row > self.policy.max_bad_frames:
            out.close = True

    def _framing_error(self, err: FramingError, out: Outcome) -> None:
        self._bad(err.reason, err.raw, out)
        if err.reason == "bad_checksum":
            try:
                header, _ = split_message(err.content[:-1])
            except DecodeError:
                return
            if self.phone is None or header.phone == self.phone:
                self._answer(header, Result.BAD_MESSAGE, out)

    def _frame(self, frame: bytes, rx_ms: int, out: Outcome) -> None:
        try:
            header, body = split_message(frame)
        except DecodeError as exc:
            self._bad(exc.reason, frame, out)
            return
        out.frames += 1
        self._bad_in_a_row = 0
        if self.phone is None:
            self.phone = header.phone
            self.device = device_id(header.phone)
            self.header_version = header.version  # platform messages to it use its edition
            if header.version is not None:
                self.edition = "2019"
            if not phone_is_bcd(header.phone):
                out.tolerated.append(("phone_not_bcd", frame[:_SAMPLE_BYTES]))
        elif header.phone != self.phone:
            out.rejected.append(("phone_mismatch", frame[:_SAMPLE_BYTES]))
            self._answer(header, Result.FAIL, out)
            return
        if header.encryption:
            out.rejected.append(("encrypted", frame[:_SAMPLE_BYTES]))
            self._answer(header, Result.UNSUPPORTED, out)
            return
        handler = self._dispatch.get(header.msg_id)
        if handler is None:
            out.rejected.append(("unsupported", frame[:_SAMPLE_BYTES]))
            self._answer(header, Result.UNSUPPORTED, out)
            return
        if header.packet_count:
            whole = self._reassemble(header, body, frame, rx_ms, out)
            if whole is None:
                return
            body = whole
        try:
            handler(header, body, frame, rx_ms, out)
        except DecodeError as exc:
            out.rejected.append((exc.reason, frame[:_SAMPLE_BYTES]))
            if header.msg_id != MsgId.TERMINAL_RESPONSE:
                self._answer(header, Result.BAD_MESSAGE, out)

    def _reassemble(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> bytes | None:
        """Store one packet; the whole body once the last one is in, else None."""
        policy = self.policy
        if header.packet_count > policy.max_packets:
            out.rejected.append(("subpacket_overflow", frame[:_SAMPLE_BYTES]))
            self._answer(header, Result.FAIL, out)
            return None
        first_serial = (header.serial - header.packet_index + 1) & 0xFFFF
        key = (header.msg_id, header.packet_count, first_serial)
        assembly = self._reassemblies.get(key)
        if assembly is None:
            if len(self._reassemblies) >= policy.max_reassemblies:
                oldest = min(self._reassemblies, key=lambda k: self._reassemblies[k].started_ms)
                del self._reassemblies[oldest]
                out.rejected.append(("subpacket_evicted", b""))
            assembly = self._reassemblies[key] = _Reassembly(rx_ms)
        previous = assembly.parts.get(header.packet_index)
        size = assembly.size + len(body) - (len(previous) if previous is not None else 0)
        if size > policy.max_reassembly_bytes:
            del self._reassemblies[key]
            out.rejected.append(("subpacket_overflow", frame[:_SAMPLE_BYTES]))
            self._answer(header, Result.FAIL, out)
            return None
        assembly.parts[header.packet_index] = body
        assembly.size = size
        if len(assembly.parts) < header.packet_count:
            self._answer(header, Result.OK, out)
            return None
        del self._reassemblies[key]
        parts = assembly.parts
        return b"".join(parts[i] for i in range(1, header.packet_count + 1))

    def _expire(self, rx_ms: int, out: Outcome) -> None:
        deadline = rx_ms - self.policy.reassembly_timeout_ms
        for key in [k for k, a in self._reassemblies.items() if a.started_ms < deadline]:
            del self._reassemblies[key]
            out.rejected.append(("subpacket_timeout", b""))

    def _on_terminal_response(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        decode_terminal_response(body)

    def _on_heartbeat(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        self._answer(header, Result.OK, out)

    def _on_logout(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        self._on("logged_out")
        self._answer(header, Result.OK, out)

    def _on_register(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        registration = decode_registration(header, body)
        self.edition = registration.edition
        if self.terminals is not None:
            refusal = self._registration_refusal(header.phone, registration)
            if refusal is not None:
                reason, result = refusal
                out.rejected.append((reason, frame[:_SAMPLE_BYTES]))
                out.answers.append(encode_register_response(header, self._next_serial(), result))
                return
        self._on("registered")
        code = self.policy.auth_code(header.phone)
        out.answers.append(encode_register_response(header, self._next_serial(), RegisterResult.OK, code))

    def _registration_refusal(self, phone: str, registration: Registration) -> tuple[str, RegisterResult] | None:
        """Why the platform turns a registration down (0x8100 result 4 "no such terminal in
        the database", 2 "no such vehicle"), or None to accept it."""
        assert self.terminals is not None
        known = self.terminals.lookup(phone)
        if known is None:
            return "unregistered_terminal", RegisterResult.NO_SUCH_TERMINAL
        if known.terminal_id and registration.terminal_id.strip() != known.terminal_id:
            return "terminal_id_mismatch", RegisterResult.NO_SUCH_TERMINAL
        if known.plate and registration.plate_color and registration.plate.strip() != known.plate:
            return "plate_mismatch", RegisterResult.NO_SUCH_VEHICLE
        self.device, self.district = known.device, known.district
        return None

    def _on_authenticate(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        auth = decode_authentication(header, body)
        known = self.terminals.lookup(header.phone) if self.terminals is not None else None
        if self.terminals is not None and known is None:
            reason: str | None = "unregistered_terminal"
        elif not self.policy.accepts(header.phone, auth.code):
            reason = "bad_auth_code"
        elif known is not None and self.terminals is not None and not self.terminals.claim(known.device, self):
            # an authenticated connection holds this identity: a second one must not take
            # its command link (nor report as it) while the first lives
            reason = "identity_in_use"
        else:
            reason = None
            if known is not None:
                self.device, self.district = known.device, known.district
        if reason is not None:
            self._on("auth_failed")
            out.rejected.append((reason, frame[:_SAMPLE_BYTES]))
            self._answer(header, Result.FAIL, out)
            return
        self._on("authenticated")
        if auth.imei is not None:
            self.imei = auth.imei
            self.software_version = auth.software_version
        self._answer(header, Result.OK, out)

    def _refused(self, header: Header, frame: bytes, out: Outcome) -> bool:
        if self.policy.require_auth and self.state is not SessionState.AUTHENTICATED:
            out.rejected.append(("unauthenticated", frame[:_SAMPLE_BYTES]))
            self._answer(header, Result.FAIL, out)
            return True
        return False

    def _on_location(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        if self._refused(header, frame, out):
            return
        location = decode_location(body)
        fix = self._fix(location, header.serial, rx_ms, frame, out)
        self._track_alarms(location, fix, rx_ms, out)
        self._answer(header, Result.OK, out)

    def _on_position_reply(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        """0x0201, the answer to a platform's 0x8201 query: the serial it answers, then a
        location as in 0x0200. A reply needs no answer of its own."""
        if self._refused(header, frame, out):
            return
        if len(body) < 2:
            raise DecodeError("truncated", "position reply shorter than its serial")
        location = decode_location(body[2:])
        fix = self._fix(location, header.serial, rx_ms, frame, out)
        self._track_alarms(location, fix, rx_ms, out)

    def query_position(self) -> bytes:
        """0x8201 to this terminal, in its header edition: "report your position now"."""
        if self.phone is None or self.state is not SessionState.AUTHENTICATED:
            raise ValueError("the terminal has not authenticated")
        return encode_message(MsgId.POSITION_QUERY, b"", self.phone, self._next_serial(), self.header_version)

    def _on_batch(self, header: Header, body: bytes, frame: bytes, rx_ms: int, out: Outcome) -> None:
        if self._refused(header, frame, out):
            return
        batch = decode_batch(body)
        for exc in batch.rejected:
            out.rejected.append((exc.reason, frame[:_SAMPLE_BYTES]))
        realtime = batch.kind is BatchKind.NORMAL
        for location in batch.locations:
            fix = self._fix(location, None, rx_ms, frame, out)
            if realtime:
                self._track_alarms(location, fix, rx_ms, out)
        self._answer(header, Result.OK, out)

    def _track_alarms(self, location: Location, fix: Fix | None, rx_ms: int, out: Outcome) -> None:
        if fix is not None:
            self._position = (fix.lat, fix.lon)
        device = self.device
        assert device is not None  # named by the session's first frame, before any handler runs
        if not location.alarm and not self.alarms.bits(device):
            return
        t_ms = location.t_ms if location.t_ms is not None else rx_ms
        lat, lon = self._position
        out.alarms.extend(self.alarms.update(device, location.alarm, t_ms, lat, lon))

    def _fix(self, loc: Location, seq: int | None, rx_ms: int, frame: bytes, out: Outcome) -> Fix | None:
        if loc.extras_damaged:
            out.tolerated.append(("extras_damaged", frame[:_SAMPLE_BYTES]))
        reason = None
        lat, lon, t_ms = loc.lat, loc.lon, loc.t_ms
        if not loc.status & STATUS_FIXED:
            reason = "not_fixed"
        elif lat == 0.0 and lon == 0.0:
            reason = "zero_position"
        elif t_ms is None:
            reason = "no_time"
        elif not -90.0 <= lat <= 90.0:
            reason = "lat_range"
        elif not -180.0 <= lon <= 180.0:
            reason = "lon_range"
        elif t_ms > rx_ms + self.policy.max_future_ms:
            reason = "future_time"
        elif t_ms < rx_ms - self.policy.max_age_ms:
            reason = "stale_time"
        if reason is not None:
            out.rejected.append((reason, frame[:_SAMPLE_BYTES]))
            return None
        # A WORD of speed and direction and a signed WORD of altitude hold values no
        # vehicle reports: such a reading is dropped and counted, the position kept.
        speed, direction, alt = loc.speed_kmh, loc.direction, loc.alt
        spd = hdg = altitude = None
        if speed <= _MAX_SPEED_KMH:
            spd = speed / 3.6
        else:
            out.tolerated.append(("speed_range", frame[:_SAMPLE_BYTES]))
        if direction < 360:
            hdg = float(direction)
        else:
            out.tolerated.append(("direction_range", frame[:_SAMPLE_BYTES]))
        if MIN_ALTITUDE_M <= alt <= MAX_ALTITUDE_M:
            altitude = float(alt)
        else:
            out.tolerated.append(("altitude_range", frame[:_SAMPLE_BYTES]))
        # positional on purpose: keyword construction of a NamedTuple costs twice as much
        fix = Fix(
            self.device, _VEHICLE, self.district, t_ms, lat, lon, rx_ms,
            None, spd, hdg, altitude, None, _WGS84, seq,
        )
        out.fixes.append(fix)
        return fix
