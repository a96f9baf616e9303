"""TCP gateway for JT/T 808 vehicle terminals: one task per connection, one nursery.

Each connection reads what the socket gives, cuts it into frames
(:class:`~protocols.jt808.framing.FrameReader`), lets its
:class:`~protocols.jt808.session.Jt808Session` decide, hands fixes and alarms to the sink
and only then answers the terminal: a report is acknowledged once the pipeline has taken
it, so a terminal whose answer never came sends it again rather than losing it.

A connection ends on EOF, on a reset, after ``idle_timeout_s`` without a byte, when an
answer cannot be sent within ``send_timeout_s``, or after ``max_bad_frames`` undecodable
frames in a row. None of that touches other connections. Anything but those is a bug and
surfaces.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from protocols.jt808.framing import MAX_FRAME_BYTES, FrameReader
from protocols.jt808.session import AlarmTracker, AuthCodePolicy, Jt808Session, SessionPolicy, VehicleAlarm
from protocols.model import DISTRICT_CODE, Fix
from tracker.clock import wall_clock_ms

PROTOCOL = "jt808"


class Jt808Sink(Protocol):
    async def fixes(self, fixes: list[Fix]) -> None: ...

    async def alarms(self, alarms: list[VehicleAlarm]) -> None: ...

    def rejected(self, protocol: str, reason: str, raw: bytes, peer: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Jt808Settings:
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port, told through task_status
    district: str = "620105"  # district of every terminal on this gateway
    require_auth: bool = True  # refuse locations before a successful 0x0102
    auth_codes: AuthCodePolicy = AuthCodePolicy.ISSUED
    # Key of the issued auth codes. None: a random key per process, so codes issued
    # before a restart stop working and terminals have to register again.
    auth_secret: bytes | None = None
    idle_timeout_s: float = 300.0
    send_timeout_s: float = 30.0
    max_connections: int = 5000
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_bad_frames: int = 32
    receive_bytes: int = 16384

    def __post_init__(self) -> None:
        if not DISTRICT_CODE.match(self.district):
            raise ValueError(f"bad district code {self.district!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"bad port {self.port}")
        AuthCodePolicy(self.auth_codes)  # raises ValueError on an unknown policy
        if self.auth_secret is not None and not self.auth_secret:
            raise ValueError("auth_secret must not be empty; None draws a random one")
        for name in ("idle_timeout_s", "send_timeout_s", "max_connections", "max_frame_bytes", "receive_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def session_policy(self) -> SessionPolicy:
        """The policy of every session; call once per gateway (a missing secret is drawn here)."""
        return SessionPolicy(
            district=self.district,
            auth_secret=self.auth_secret if self.auth_secret is not None else os.urandom(32),
            require_auth=self.require_auth,
            auth_codes=AuthCodePolicy(self.auth_codes),
            max_bad_frames=self.max_bad_frames,
        )


def _peer_name(stream: trio.abc.Stream) -> str:
    if not isinstance(stream, trio.SocketStream):
        return "?"
    try:
        host, port = stream.socket.getpeername()[:2]
    except (AttributeError, OSError):
        return "?"
    return f"{host}:{port}"


class Jt808Gateway:
    """The connections of one gateway: their count, the shared alarm state, the sink."""

    def __init__(self, settings: Jt808Settings, sink: Jt808Sink, now_ms: Callable[[], int] = wall_clock_ms,
                 alarms: AlarmTracker | None = None) -> None:
        self.settings = settings
        self.policy = settings.session_policy()
        self.sink = sink
        self.now_ms = now_ms
        self.alarms = alarms if alarms is not None else AlarmTracker()  # a restart passes the edges resumed
        self.active = 0
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
        peer = _peer_name(stream)
        if self.active >= self.settings.max_connections:
            self.sink.rejected(PROTOCOL, "too_many_connections", b"", peer)
            await trio.aclose_forcefully(stream)
            return
        self.active += 1
        try:
            reason = await self._converse(stream, peer)
        except trio.BrokenResourceError:
            reason = None  # reset by the terminal: nothing to report
        finally:
            self.active -= 1
            await trio.aclose_forcefully(stream)
        if reason is not None:
            self.sink.rejected(PROTOCOL, reason, b"", peer)

    async def _converse(self, stream: trio.abc.Stream, peer: str) -> str | None:
        """Serve one terminal until it leaves (None) or is sent away (the reason)."""
        reader = FrameReader(self.settings.max_frame_bytes)
        session = Jt808Session(self.policy, self.alarms)
        lock = trio.Lock()  # the conversation's answers and platform queries share the stream
        try:
            return await self._conversation(stream, peer, reader, session, lock)
        finally:
            if session.device is not None and self.sessions.get(session.device, (None,))[0] is session:
                del self.sessions[session.device]

    async def _conversation(self, stream: trio.abc.Stream, peer: str, reader: FrameReader, session: Jt808Session,
                            lock: trio.Lock) -> str | None:
        settings = self.settings
        sink = self.sink
        while True:
            with trio.move_on_after(settings.idle_timeout_s) as idle:
                data = await stream.receive_some(settings.receive_bytes)
            if idle.cancelled_caught:
                return "idle_timeout"
            if not data:
                return "eof_in_frame" if reader.pending_bytes else None
            out = session.receive(reader.feed(data), self.now_ms())
            for reason, raw in out.rejected:
                sink.rejected(PROTOCOL, reason, raw, peer)
            if out.fixes:
                await sink.fixes(out.fixes)
            if out.alarms:
                await sink.alarms(out.alarms)
            device = session.device
            if session.authenticated and device is not None:
                known = self.sessions.get(device)
                if known is None or known[0] is not session:
                    self.sessions[device] = (session, stream, lock)  # a reconnect replaces the old link
            if out.answers:
                with trio.move_on_after(settings.send_timeout_s) as sending:
                    async with lock:
                        await stream.send_all(b"".join(out.answers))
                if sending.cancelled_caught:
                    return "send_timeout"
            if out.close:
                return "too_many_bad_frames"


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
