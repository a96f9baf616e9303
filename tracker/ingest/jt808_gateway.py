"""TCP gateway for JT/T 808 vehicle terminals: one task per connection, one nursery.

Each connection reads what the socket gives, cuts it into frames
(:class:`~protocols.jt808.framing.FrameReader`), lets its
:class:`~protocols.jt808.session.Jt808Session` decide, hands alarms and fixes to the sink
and only then answers the terminal: a report is acknowledged once its rows are stored
(committed), so a terminal whose answer never came (the service crashed or stopped, the
database was away) sends it again rather than losing it. A connection reads its next
frames only after answering, so its reports keep their order; while one terminal waits
for its commit (at most the persist flush window, ``[pipeline] persist_flush_ms``, when
the database keeps up) the others carry on.

A connection ends on EOF, on a reset, at its first read after its terminal was disabled
in the registry, after ``idle_timeout_s`` without a whole frame
(stray bytes do not keep it open), when it has not authenticated within ``auth_timeout_s``
(if authentication is required), when an answer cannot be sent within ``send_timeout_s``,
or after ``max_bad_frames`` undecodable frames in a row. Connections are capped in total
and per client address, so one client holding many idle connections cannot lock the
terminals out. An exception raised while serving one connection is a bug: it is logged
with its traceback and counted, and ends that connection only, never the gateway.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol

import trio

from protocols.jt808.framing import FrameReader
from protocols.jt808.messages import device_id
from protocols.jt808.session import (
    AlarmTracker,
    Jt808Session,
    KnownTerminal,
    VehicleAlarm,
)
from protocols.model import Fix
from tracker.clock import wall_clock_ms
from tracker.config import Jt808Settings

PROTOCOL = "jt808"
log = logging.getLogger(__name__)


class Stored(Protocol):
    """Settled once what a ``fixes`` call handed over is committed."""

    async def wait(self) -> None: ...


class Jt808Sink(Protocol):
    async def fixes(self, fixes: list[Fix]) -> Stored | None:
        """Take the fixes (may block: push back). The ``Stored`` returned is what the
        answer to their report waits for; None: taken is as good as stored."""
        ...

    async def alarms(self, alarms: list[VehicleAlarm], fixes: Sequence[Fix] = ()) -> None:
        """Alarm edges, with the fixes of the reports that raised them (an overspeed's speed)."""
        ...

    def rejected(self, protocol: str, reason: str, raw: bytes, peer: str) -> None: ...

    def heard(self, device: str, rx_ms: int) -> None:
        """A frame of the authenticated terminal ``device`` was answered: it is online."""
        ...

    def tolerated(self, protocol: str, reason: str, raw: bytes, peer: str) -> None:
        """A report kept despite a defect (``Outcome.tolerated``): count it."""


def _peer(stream: trio.abc.Stream) -> tuple[str, str]:
    """``(host:port, address)`` of a connection; the address is what the per-address limit
    counts: the IPv4 address, or the /64 of an IPv6 one (a client gets a whole /64)."""
    if not isinstance(stream, trio.SocketStream):
        return "?", "?"  # an in-memory stream (tests): no address to count
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?", "?"
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return f"{host}:{port}", host
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return f"{host}:{port}", str(ip.ipv4_mapped)
        return f"[{host}]:{port}", str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return f"{host}:{port}", host


# A terminal's SIM number → the terminal the registry has (registered and enabled), or None.
TerminalLookup = Callable[[str], KnownTerminal | None]


class _Link:
    """What one connection's session asks about terminals: the registry (through the
    gateway), and which connection holds each authenticated terminal's command link."""

    __slots__ = ("_gateway", "_stream", "_lock")

    def __init__(self, gateway: Jt808Gateway, stream: trio.abc.Stream, lock: trio.Lock) -> None:
        self._gateway = gateway
        self._stream = stream
        self._lock = lock

    def lookup(self, phone: str) -> KnownTerminal | None:
        gateway = self._gateway
        if gateway.terminals is None:
            return KnownTerminal(device_id(phone), gateway.settings.district)
        return gateway.terminals(phone)

    def claim(self, device: str, session: Jt808Session) -> bool:
        # First come keeps the link until its connection ends (EOF, reset, idle timeout):
        # a second connection with the same phone and code is refused, not preferred,
        # since the code alone does not prove it is the same terminal reconnecting.
        held = self._gateway.sessions.get(device)
        if held is not None and held[0] is not session:
            return False
        self._gateway.sessions[device] = (session, self._stream, self._lock)
        return True


class Jt808Gateway:
    """The connections of one gateway: their count, the shared alarm state, the sink.

    ``terminals`` (the device registry's lookup) decides who may register and
    authenticate; None admits any terminal as ``jt{phone}`` of the gateway's district.
    """

    def __init__(self, settings: Jt808Settings, sink: Jt808Sink, now_ms: Callable[[], int] = wall_clock_ms,
                 alarms: AlarmTracker | None = None, terminals: TerminalLookup | None = None) -> None:
        self.settings = settings
        self.terminals = terminals
        self.policy = settings.session_policy()
        self.sink = sink
        self.now_ms = now_ms
        self.alarms = alarms if alarms is not None else AlarmTracker()  # a restart passes the edges resumed
        self.active = 0
        self.by_address: collections.Counter[str] = collections.Counter()
        # authenticated terminals by device id: what platform-initiated messages go to
        self.sessions: dict[str, tuple[Jt808Session, trio.abc.Stream, trio.Lock]] = {}

    async def query_position(self, device: str) -> bool:
        """Send 0x8201 to a connected, authenticated terminal; False when there is none.
        Its 0x0201 answer arrives as a fix like any report."""
        entry = self.sessions.get(device)
        if entry is None:
            return False
        session, stream, lock = entry
        with trio.move_on_after(self.settings.send_timeout_s):
            async with lock:
                await stream.send_all(session.query_position())
                return True
        return False

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection to its end; always closes the stream."""
        peer, address = _peer(stream)
        refusal = None
        if self.active >= self.settings.max_connections:
            refusal = "too_many_connections"
        elif self.by_address[address] >= self.settings.max_connections_per_address:
            refusal = "too_many_from_address"
        if refusal is not None:
            self.sink.rejected(PROTOCOL, refusal, b"", peer)
            await trio.aclose_forcefully(stream)
            return
        self.active += 1
        self.by_address[address] += 1
        try:
            reason = await self._converse(stream, peer)
        except trio.BrokenResourceError:
            reason = None  # reset by the terminal: nothing to report
        except Exception:
            # a bug, in a decoder or the sink: it costs this connection, not the others
            log.exception("JT/T 808 connection from %s failed", peer)
            reason = "internal_error"
        finally:
            self.active -= 1
            self.by_address[address] -= 1
            if not self.by_address[address]:
                del self.by_address[address]
            await trio.aclose_forcefully(stream)
        if reason is not None:
            self.sink.rejected(PROTOCOL, reason, b"", peer)

    async def _converse(self, stream: trio.abc.Stream, peer: str) -> str | None:
        """Serve one terminal until it leaves (None) or is sent away (the reason)."""
        reader = FrameReader(self.settings.max_frame_bytes)
        lock = trio.Lock()  # the conversation's answers and platform queries share the stream
        session = Jt808Session(self.policy, self.alarms, _Link(self, stream, lock))
        try:
            return await self._conversation(stream, peer, reader, session, lock)
        finally:
            if session.device is not None and self.sessions.get(session.device, (None,))[0] is session:
                del self.sessions[session.device]

    async def _conversation(self, stream: trio.abc.Stream, peer: str, reader: FrameReader, session: Jt808Session,
                            lock: trio.Lock) -> str | None:
        settings = self.settings
        sink = self.sink
        # Deadlines on trio's clock. Only a whole frame (one whose header reads) restarts
        # the idle one, once it is handled (time the pipeline takes is not the terminal's):
        # a byte now and then, or junk, must not hold a connection open. The
        # authentication deadline runs whenever the session is not authenticated (from
        # the start, or from a logout).
        last_frame = trio.current_time()
        unauthenticated_since: float | None = last_frame
        while True:
            idle_at = last_frame + settings.idle_timeout_s
            auth_at = math.inf
            if self.policy.require_auth and unauthenticated_since is not None:
                auth_at = unauthenticated_since + settings.auth_timeout_s
            data = None
            with trio.move_on_at(min(idle_at, auth_at)):
                data = await stream.receive_some(settings.receive_bytes)
            if data is None:
                return "auth_timeout" if auth_at <= idle_at else "idle_timeout"
            if not data:
                return "eof_in_frame" if reader.pending_bytes else None
            if session.authenticated and session.phone is not None and self.terminals is not None \
                    and self.terminals(session.phone) is None:
                return "terminal_disabled"  # disabled (or unregistered) since it logged in: hang up, unanswered
            now_ms = self.now_ms()
            out = session.receive(reader.feed(data), now_ms)
            if session.authenticated:
                unauthenticated_since = None
                if session.device is not None and out.answers:
                    sink.heard(session.device, now_ms)  # a parked truck's heartbeats keep it online
            elif unauthenticated_since is None:
                unauthenticated_since = trio.current_time()
            for reason, raw in out.rejected:
                sink.rejected(PROTOCOL, reason, raw, peer)
            for reason, raw in out.tolerated:
                sink.tolerated(PROTOCOL, reason, raw, peer)
            # alarms first: the edges a report raised are stored with (or before) its fixes
            if out.alarms:
                await sink.alarms(out.alarms, out.fixes)
            stored = await sink.fixes(out.fixes) if out.fixes else None
            if out.answers:
                if stored is not None:
                    await stored.wait()  # answered means stored: the terminal drops what is answered
                with trio.move_on_after(settings.send_timeout_s) as sending:
                    async with lock:
                        await stream.send_all(b"".join(out.answers))
                if sending.cancelled_caught:
                    return "send_timeout"
            if out.close:
                return "too_many_bad_frames"
            if out.frames:
                last_frame = trio.current_time()


async def serve_jt808(
    settings: Jt808Settings,
    sink: Jt808Sink,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    now_ms: Callable[[], int] = wall_clock_ms,
    gateway: Jt808Gateway | None = None,
) -> None:
    """Serve JT/T 808 terminals until cancelled; ``task_status.started(port)`` once bound.

    Pass ``gateway`` to keep a handle on it (to send platform messages to terminals).

    ``now_ms`` stamps ``Fix.rx_ms`` (wall clock, epoch ms); timeouts run on trio's clock.
    """
    gateway = gateway or Jt808Gateway(settings, sink, now_ms)
    listeners = await trio.open_tcp_listeners(settings.port, host=settings.host)
    port = listeners[0].socket.getsockname()[1]
    task_status.started(port)
    await trio.serve_listeners(gateway.handle, listeners)
