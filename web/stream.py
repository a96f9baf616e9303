"""``/ws``: the live feed of the command map, one WebSocket per client.

The stream is server → client: a snapshot of every device, then delta frames, alerts and
alarms as the service's fan-out hands them over. The client may only send small JSON
control messages (``{"type": "ping"}``, ignored). A socket ends in one of three ways: the
client leaves; the client sends anything else (closed with 1003); or the client falls so
far behind that its undroppable events overflow (closed with 1013, reconnect for a fresh
snapshot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import trio
from starlette.websockets import WebSocket, WebSocketDisconnect

from web.context import FeedTooSlow, Subscription, context

MAX_CONTROL_CHARS = 4096
UNSUPPORTED_DATA = 1003
TRY_AGAIN_LATER = 1013


@dataclass(frozen=True, slots=True)
class Close:
    """Why the server ends the socket."""

    code: int
    reason: str


async def live_feed(websocket: WebSocket) -> None:
    ctx = context(websocket)
    await websocket.accept()
    subscription = ctx.feed.subscribe()
    outcome: list[Close] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read_controls, websocket, nursery.cancel_scope, outcome)
            nursery.start_soon(_write_frames, websocket, subscription, nursery.cancel_scope, outcome)
    finally:
        subscription.close()
    if outcome:
        close = outcome[-1]
        ctx.metrics.inc("gridwatch_ws_dropped_total", reason="too_slow" if close.code == TRY_AGAIN_LATER else "bad_input")
        try:
            await websocket.close(code=close.code, reason=close.reason)
        except (RuntimeError, WebSocketDisconnect):
            pass  # the peer went away first


async def _write_frames(websocket: WebSocket, subscription: Subscription, done: trio.CancelScope,
                        outcome: list[Close]) -> None:
    try:
        await websocket.send_text(subscription.snapshot)
        while True:
            for frame in await subscription.next_frames():
                await websocket.send_text(frame)
    except FeedTooSlow:
        outcome.append(Close(TRY_AGAIN_LATER, "client too slow; reconnect for a snapshot"))
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
