"""``/ws``: the live feed of the command map, one WebSocket per client.

The stream is server → client, scoped to the caller's district (a city account's: the
whole city): a snapshot of every device of it, in frames of at most
``[web] ws_snapshot_devices`` devices, then delta frames, alerts and alarms of it as the
service's fan-out hands them over. The client may only send small JSON control messages
(``{"type": "ping"}``, ignored). A socket ends in one of three ways: the client leaves; the
client sends anything else (closed with 1003); or the client falls behind (closed with
1013, reconnect for a fresh snapshot): its undroppable events overflow, or more than
``[web] ws_max_unsent_bytes`` of frames wait for it to read what was sent before.

Frames are taken from the feed as soon as it has them and wait in a queue of their own
while the socket is busy, so a client that stops reading is seen (its queue passes the
budget) and closed, instead of holding a connection and a snapshot forever.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field

import trio
from starlette.websockets import WebSocket, WebSocketDisconnect

from web.context import FeedTooSlow, Subscription, context
from web.principal import principal

MAX_CONTROL_CHARS = 4096
UNSUPPORTED_DATA = 1003
TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class Close:
    """Why the server ends the socket."""

    code: int
    reason: str


@dataclass(slots=True)
class Outbox:
    """Frames taken from the feed that the socket has not taken yet, and their size."""

    budget: int
    frames: deque[str] = field(default_factory=deque)
    size: int = 0
    ready: trio.Event = field(default_factory=trio.Event)

    def put(self, frames: list[str]) -> bool:
        """Queue frames; False once the queue is over budget."""
        self.frames.extend(frames)
        self.size += sum(len(f) for f in frames)
        self.ready.set()
        return self.size <= self.budget

    async def take(self) -> str:
        while not self.frames:
            self.ready = trio.Event()
            await self.ready.wait()
        frame = self.frames.popleft()
        self.size -= len(frame)
        return frame


async def live_feed(websocket: WebSocket) -> None:
    ctx = context(websocket)
    who = principal(websocket)
    await websocket.accept()
    if websocket.query_params:
        # the feed takes no query parameters: a filter it would ignore is refused, by name
        name = sorted(websocket.query_params)[0]
        await websocket.close(code=1008, reason=f"unknown query parameter {name!r} (this endpoint takes: none)")
        return
    subscription = ctx.feed.subscribe(who.district)
    outcome: list[Close] = []
    outbox = Outbox(ctx.settings.ws_max_unsent_bytes)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_controls, websocket, nursery.cancel_scope, outcome)
            nursery.start_soon(_take_frames, subscription, outbox, nursery.cancel_scope, outcome)
            nursery.start_soon(_write_frames, websocket, subscription, outbox, ctx.settings.ws_snapshot_devices,
                               nursery.cancel_scope)
    finally:
        subscription.close()
    if outcome:
        close = outcome[-1]
        ctx.metrics.inc("gridwatch_ws_dropped_total", reason="too_slow" if close.code == TRY_AGAIN_LATER else "bad_input")
        try:
            await websocket.close(code=close.code, reason=close.reason)
        except (RuntimeError, WebSocketDisconnect):
            pass  # the peer went away first


live_feed.accepted_params = frozenset()  # type: ignore[attr-defined]


async def _take_frames(subscription: Subscription, outbox: Outbox, done: trio.CancelScope, outcome: list[Close]) -> None:
    try:
        while outbox.put(await subscription.next_frames()):
            pass
        outcome.append(Close(TRY_AGAIN_LATER, "client not reading; reconnect for a snapshot"))
    except FeedTooSlow:
        outcome.append(Close(TRY_AGAIN_LATER, "client too slow; reconnect for a snapshot"))
    done.cancel()


async def _write_frames(websocket: WebSocket, subscription: Subscription, outbox: Outbox, devices_per_frame: int,
                        done: trio.CancelScope) -> None:
    try:
        for frame in subscription.snapshot_frames(devices_per_frame):
            await websocket.send_text(frame)
        while True:
            await websocket.send_text(await outbox.take())
    except (WebSocketDisconnect, RuntimeError):
        pass  # closed under us
    done.cancel()


async def _read_controls(websocket: WebSocket, done: trio.CancelScope, outcome: list[Close]) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            break
        problem = _control_problem(message.get("text"))
        if problem:
            outcome.append(Close(UNSUPPORTED_DATA, problem))
            break
    done.cancel()


def _control_problem(text: str | None) -> str | None:
    """What is wrong with a control message from the client, None if nothing."""
    if text is None or len(text) > MAX_CONTROL_CHARS:
        return "expected a small JSON text message"
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return "malformed JSON"
    if not isinstance(doc, dict) or doc.get("type") != "ping":
        return "unknown control message"
    return None
