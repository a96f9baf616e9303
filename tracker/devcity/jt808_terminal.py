"""A simulated JT/T 808 vehicle terminal: a TCP client of the service's gateway that
registers (0x0100), authenticates with the code it was issued (0x0102), reports every
interval (0x0200), beats (0x0002) while parked, and after losing the link reconnects with
backoff and uploads what it recorded as a backfill (0x0704)."""

from __future__ import annotations

import logging
import random
import struct
import time
from collections import deque

import trio

from protocols.coords import distance_m
from protocols.errors import DecodeError
from protocols.jt808.framing import FrameReader, FramingError
from protocols.jt808.messages import (
    EXTRA_MILEAGE,
    EXTRA_SATELLITES,
    EXTRA_SIGNAL,
    STATUS_ACC,
    STATUS_FIXED,
    BatchKind,
    Header,
    MsgId,
    Result,
    decode_terminal_response,
    encode_message,
    split_message,
)
from tracker.devcity.devices import Vehicle, bearing_deg

log = logging.getLogger(__name__)

GMT8_S = 8 * 3600
ALTITUDE_M = 1530  # the valley floor of Anning
ALARM_OVERSPEED = 1 << 1
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 60.0
ANSWER_TIMEOUT_S = 10.0
BACKLOG_MAX = 2000  # positions a terminal keeps while out of touch; the oldest go first
BACKFILL_ITEMS = 20  # per 0x0704: 3 + 20 × 44 bytes stays under the 1,023-byte body limit
PARKED_REPORT_EVERY = 5  # engine off: a position every 5th interval, heartbeats between


class LinkLost(Exception):
    """The gateway closed the connection, or answered what a terminal cannot go on from."""


_LINK_ERRORS = (OSError, trio.BrokenResourceError, trio.TooSlowError, LinkLost, DecodeError)


class _Link:
    """One TCP connection to the gateway: send a message, wait for the answer to it."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader()
        self.frames: deque[bytes] = deque()

    async def exchange(self, msg_id: int, serial: int, frame: bytes) -> tuple[int, bytes]:
        """Send ``frame``; the result byte of its answer, and the auth code of a 0x8100."""
        await self.stream.send_all(frame)
        with trio.fail_after(ANSWER_TIMEOUT_S):
            while True:
                header, body = await self._receive()
                if header.msg_id == MsgId.REGISTER_RESPONSE and msg_id == MsgId.REGISTER:
                    if len(body) >= 3 and struct.unpack_from(">H", body)[0] == serial:
                        return body[2], bytes(body[3:])
                elif header.msg_id == MsgId.PLATFORM_RESPONSE:
                    answer = decode_terminal_response(body)
                    if (answer.reply_serial, answer.reply_id) == (serial, msg_id):
                        return answer.result, b""
                # else: the late answer to a message given up on, or a platform command
                # this terminal does not implement

    async def _receive(self) -> tuple[Header, bytes]:
        while not self.frames:
            data = await self.stream.receive_some(4096)
            if not data:
                raise LinkLost("the gateway closed the connection")
            for item in self.reader.feed(data):
                if isinstance(item, FramingError):
                    raise item
                self.frames.append(item)
        return split_message(self.frames.popleft())


def terminal_id(phone: str) -> str:
    """The simulated terminal's id, as it registers (and as the demo registers it)."""
    return f"T{phone[-6:]}"


def _bcd_time(now: float) -> bytes:
    return bytes.fromhex(time.strftime("%y%m%d%H%M%S", time.gmtime(now + GMT8_S)))


class Jt808Terminal:
    """The terminal in one vehicle: connects, logs in, reports; reconnects when dropped."""

    def __init__(self, vehicle: Vehicle, rng: random.Random, *, speed_limit_kmh: float = 60.0) -> None:
        """``speed_limit_kmh``: the limit the terminal is set to (parameter 0x0055): a
        speeder raises overspeed only while driving over it."""
        self.vehicle = vehicle
        self.speed_limit_kmh = speed_limit_kmh
        self.rng = rng
        self.version = 1 if vehicle.edition == "2019" else None
        self.serial = 0
        self.auth_code: bytes | None = None
        self.mileage_m = rng.uniform(8_000, 120_000) * 1000
        self.heading = rng.randrange(360)
        self.backlog: deque[bytes] = deque(maxlen=BACKLOG_MAX)  # 0x0200 bodies not delivered
        self.alarm = 0
        self.cruise_mps = vehicle.walker.speed
        self.reports = 0
        self.overspeed_at = rng.randint(5, 15) if vehicle.speeder else None  # report number
        self.overspeed_until = 0
        self.last_step: float | None = None
        self.logins = 0

    @property
    def device(self) -> str:
        return self.vehicle.device

    def _message(self, msg_id: int, body: bytes) -> tuple[int, int, bytes]:
        serial = self.serial
        self.serial = (serial + 1) & 0xFFFF
        return msg_id, serial, encode_message(msg_id, body, self.vehicle.phone, serial, self.version)

    async def run(self, address: tuple[str, int], interval_s: float) -> None:
        await trio.sleep(self.rng.uniform(0, min(interval_s, 2.0)))
        backoff = BACKOFF_MIN_S
        while True:
            try:
                async with await trio.open_tcp_stream(*address) as stream:
                    link = _Link(stream)
                    await self._log_in(link)
                    self.logins += 1
                    backoff = BACKOFF_MIN_S
                    await self._upload_backlog(link)
                    await self._report(link, interval_s)
            except _LINK_ERRORS as exc:
                log.info("terminal %s at %s:%d: %s; trying again in about %.0f s",
                         self.device, *address, str(exc) or type(exc).__name__, backoff)
            await self._record_offline(backoff * self.rng.uniform(0.5, 1.0), interval_s)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _log_in(self, link: _Link) -> None:
        if self.auth_code is not None:
            result, _ = await link.exchange(*self._message(MsgId.AUTHENTICATE, self._authentication()))
            if result == Result.OK:
                return
            self.auth_code = None  # the platform forgot it (a restart with a new key): register again
        result, code = await link.exchange(*self._message(MsgId.REGISTER, self._registration()))
        if result != 0 or not code:
            raise LinkLost(f"registration refused (result {result})")
        self.auth_code = code
        result, _ = await link.exchange(*self._message(MsgId.AUTHENTICATE, self._authentication()))
        if result != Result.OK:
            raise LinkLost(f"authentication refused (result {result})")

    def _registration(self) -> bytes:
        v = self.vehicle
        maker_n, model_n, terminal_n = (11, 30, 30) if self.version is not None else (5, 20, 7)
        district = v.walker.district
        return (struct.pack(">HH", int(district[:2]), int(district[2:])) + b"GWSIM".ljust(maker_n, b"\0")
                + b"GW-T808".ljust(model_n, b"\0") + terminal_id(v.phone).encode().ljust(terminal_n, b"\0")
                + bytes((v.plate_color,)) + v.plate.encode("gbk"))

    def _authentication(self) -> bytes:
        code = self.auth_code
        assert code is not None  # the registration answer carried it
        if self.version is None:
            return code
        imei = f"86{self.vehicle.phone[-13:]:0>13}"
        return bytes((len(code),)) + code + imei.encode() + b"GWSIM 2.1".ljust(20, b"\0")

    def _next_location(self, now: float) -> tuple[bytes, bool]:
        """Drive on to ``now``; the 0x0200 body of where the vehicle is, and whether it is parked."""
        walker, rng = self.vehicle.walker, self.rng
        dt = 0.0 if self.last_step is None else max(0.0, now - self.last_step)
        self.last_step = now
        before = walker.pos
        walker.step(dt, now, rng)
        moved = distance_m(*before, *walker.pos)
        if moved > 0.5:
            self.heading = round(bearing_deg(before, walker.pos)) % 360
        self.mileage_m += moved
        self._speeding()
        parked = walker.parked(now)
        lat, lon = walker.measured(rng)
        speed = 0 if parked else round(walker.speed * 36 * rng.uniform(0.97, 1.03))  # 0.1 km/h
        status = STATUS_FIXED | (0 if parked else STATUS_ACC)
        body = struct.pack(">IIIIhHH", self.alarm, status, round(lat * 1e6), round(lon * 1e6),
                           ALTITUDE_M + rng.randint(-3, 3), speed, self.heading) + _bcd_time(now)
        body += struct.pack(">BBI", EXTRA_MILEAGE, 4, round(self.mileage_m / 100))
        body += struct.pack(">BBBBBB", EXTRA_SIGNAL, 1, rng.randint(16, 31), EXTRA_SATELLITES, 1, rng.randint(7, 18))
        return body, parked

    def _speeding(self) -> None:
        if self.overspeed_at is None:
            return
        self.reports += 1
        walker = self.vehicle.walker
        if not self.alarm & ALARM_OVERSPEED and self.reports >= self.overspeed_at:
            self.alarm |= ALARM_OVERSPEED
            self.overspeed_until = self.reports + self.rng.randint(8, 20)
            walker.speed = max(self.cruise_mps * 2, self.speed_limit_kmh / 3.6 * 1.2)  # over the limit, as the bit says
        elif self.alarm & ALARM_OVERSPEED and self.reports >= self.overspeed_until:
            self.alarm &= ~ALARM_OVERSPEED
            self.overspeed_at = self.reports + self.rng.randint(100, 400)
            walker.speed = self.cruise_mps

    async def _report(self, link: _Link, interval_s: float) -> None:
        tick = 0
        while True:
            body, parked = self._next_location(time.time())
            if parked and tick % PARKED_REPORT_EVERY:
                result, _ = await link.exchange(*self._message(MsgId.HEARTBEAT, b""))
            else:
                try:
                    result, _ = await link.exchange(*self._message(MsgId.LOCATION, body))
                except _LINK_ERRORS:
                    self.backlog.append(body)
                    raise
                if result != Result.OK:
                    self.backlog.append(body)
            if result != Result.OK:
                raise LinkLost(f"the gateway answered result {result}")
            tick += 1
            await trio.sleep(interval_s)

    async def _upload_backlog(self, link: _Link) -> None:
        while self.backlog:
            items = [self.backlog.popleft() for _ in range(min(BACKFILL_ITEMS, len(self.backlog)))]
            body = struct.pack(">HB", len(items), BatchKind.BACKFILL) + b"".join(struct.pack(">H", len(i)) + i for i in items)
            try:
                result, _ = await link.exchange(*self._message(MsgId.BATCH_LOCATION, body))
            except _LINK_ERRORS:
                self.backlog.extendleft(reversed(items))
                raise
            if result != Result.OK:
                self.backlog.extendleft(reversed(items))
                raise LinkLost(f"the gateway refused a backfill (result {result})")

    async def _record_offline(self, duration_s: float, interval_s: float) -> None:
        deadline = trio.current_time() + duration_s
        while (remaining := deadline - trio.current_time()) > 0:
            await trio.sleep(min(interval_s, remaining))
            self.backlog.append(self._next_location(time.time())[0])


# --- the fleet ------------------------------------------------------------------------
