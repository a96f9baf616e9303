"""Fan-out to live-map clients: one frame per client per tick, never blocking ingest.

Each tick the hub takes the devices that moved and hands the same encoded delta to every
client that is keeping up. A client that has not sent its previous frame yet gets the new
delta merged into its pending updates instead (latest position per device wins), so a
slow client costs bounded memory and receives fewer, fuller frames. Events that must not
be coalesced (alerts, incidents) go to a bounded per-client queue; a client that lets it
overflow is disconnected and recovers from a fresh snapshot on reconnect.
"""

from __future__ import annotations

import json
import logging
from collections import deque

import trio

from tracker.live.state import LiveState
from tracker.metrics import Metrics

log = logging.getLogger(__name__)


class ClientTooSlow(Exception):
    """The client's event queue overflowed."""


class Client:
    def __init__(self, max_pending_devices: int, max_events: int = 1000) -> None:
        self.pending: dict[str, dict] = {}
        self.shared: str | None = None  # the hub's encoded delta, while pending is exactly it
        self.events: deque[str] = deque()
        self.max_events = max_events
        self.max_pending_devices = max_pending_devices
        self.needs_snapshot = False
        self.overflowed = False
        self.wake = trio.Event()

    def offer_delta(self, delta: dict[str, dict], encoded: str) -> None:
        if not self.pending:
            self.pending, self.shared = delta, encoded
        else:
            if self.shared is not None:
                self.pending, self.shared = dict(self.pending), None
            self.pending.update(delta)
            if len(self.pending) > self.max_pending_devices:
                self.pending, self.needs_snapshot = {}, True
        self.wake.set()

    def offer_event(self, encoded: str) -> None:
        if len(self.events) >= self.max_events:
            self.overflowed = True
        else:
            self.events.append(encoded)
        self.wake.set()

    async def next_frames(self, live: LiveState) -> list[str]:
        """Wait for something to send; return the frames to send now, in order."""
        await self.wake.wait()
        self.wake = trio.Event()
        if self.overflowed:
            raise ClientTooSlow
        frames = list(self.events)
        self.events.clear()
        if self.needs_snapshot:
            self.needs_snapshot = False
            frames.append(json.dumps({"type": "snapshot", "devices": live.snapshot()}, separators=(",", ":")))
        elif self.pending:
            if self.shared is not None:
                frames.append(self.shared)
            else:
                frames.append(encode_devices("delta", list(self.pending.values())))
        self.pending, self.shared = {}, None
        return frames


def encode_devices(kind: str, devices: list[dict]) -> str:
    return json.dumps({"type": kind, "devices": devices}, separators=(",", ":"))


class Hub:
    def __init__(self, live: LiveState, metrics: Metrics, tick_ms: int, max_pending_devices: int) -> None:
        self.live = live
        self.metrics = metrics
        self.tick_s = tick_ms / 1000
        self.max_pending_devices = max_pending_devices
        self.clients: set[Client] = set()
        metrics.gauge("gridwatch_ws_clients", lambda: len(self.clients), "WebSocket clients connected")

    def connect(self) -> tuple[Client, str]:
        """Register a client; return it and its snapshot frame."""
        client = Client(self.max_pending_devices)
        self.clients.add(client)
        return client, encode_devices("snapshot", self.live.snapshot())

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    def publish_event(self, kind: str, payload: dict) -> None:
        encoded = json.dumps({"type": kind, **payload}, separators=(",", ":"), default=str)
        for client in self.clients:
            client.offer_event(encoded)

    def tick(self) -> int:
        """Hand the devices that moved since the last tick to every client."""
        if not self.clients:
            self.live.dirty = set()  # nobody to tell; a client that connects gets a snapshot
            return 0
        views = self.live.take_dirty()
        if not views:
            return 0
        if self.clients:
            delta = {v["id"]: v for v in views}
            encoded = encode_devices("delta", views)
            for client in self.clients:
                client.offer_delta(delta, encoded)
        self.metrics.inc("gridwatch_broadcast_updates_total", len(views))
        return len(views)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.tick_s)
            self.tick()
