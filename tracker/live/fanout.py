"""Fan-out to live-map clients: one frame per client per tick, never blocking ingest.

Each tick the hub takes the devices that moved and hands the same encoded delta to every
client that is keeping up. A client that has not sent its previous frame yet gets the new
delta merged into its pending updates instead (latest position per device wins), so a
slow client costs bounded memory and receives fewer, fuller frames. Events that must not
be coalesced (alerts, incidents) go to a bounded per-client queue; a client that lets it
overflow is disconnected and recovers from a fresh snapshot on reconnect.

Clients are routed by district: a district's client (a district account's map) sees the
devices, alerts and alarms of its district only, a city client sees them all. The hub
keeps its clients grouped by district, and each tick splits the moved devices by district
once, encodes each district's share once (only for districts someone watches, or all of
them when a city client does) and builds the city's delta from those same encoded pieces:
a tick costs one encoding of what moved, however many districts and clients there are,
instead of a filtered and encoded copy per client. Events carry their district and go to
its clients and the city's.

Latency (receive → delta sent) is observed when a client takes a delta to send: the
pipeline hands the hub a few receive times sampled from each slice of fixes it placed
(``Hub.placed``), they ride along with the delta, and each stands for its share of the
fixes that delta shows. The count is per fix and client.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Sequence

import trio

from protocols.model import Fix
from tracker.clock import wall_clock_ms
from tracker.live.state import LiveState
from tracker.metrics import LATENCY_SAMPLES, Metrics, spread

log = logging.getLogger(__name__)


class ClientTooSlow(Exception):
    """The client's event queue overflowed."""


class Client:
    def __init__(self, max_pending_devices: int, max_events: int = 1000,
                 sent: Callable[[list[int], int], None] | None = None, district: str | None = None) -> None:
        self.district = district  # None: the whole city
        self.pending: dict[str, dict] = {}
        self.shared: str | None = None  # the hub's encoded delta, while pending is exactly it
        self.received: list[int] = []  # receive times sampled from the fixes pending shows
        self.received_of = 0  # how many fixes those samples stand for
        self.sent = sent  # told of them when the delta is taken to be sent
        self.events: deque[str] = deque()
        self.max_events = max_events
        self.max_pending_devices = max_pending_devices
        self.needs_snapshot = False
        self.overflowed = False
        self.wake = trio.Event()

    def offer_delta(self, delta: dict[str, dict], encoded: str, received: Sequence[int] = (), of: int = 0) -> None:
        if not self.pending:
            self.pending, self.shared = delta, encoded
        else:
            if self.shared is not None:
                self.pending, self.shared = dict(self.pending), None
            self.pending.update(delta)
            if len(self.pending) > self.max_pending_devices:
                self.pending, self.needs_snapshot = {}, True
        if not self.needs_snapshot:
            self.received.extend(received)
            self.received_of += of
            if len(self.received) > 4 * LATENCY_SAMPLES:  # a slow client merging many ticks
                self.received = list(spread(self.received))
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
            frames.append(json.dumps({"type": "snapshot", "devices": live.snapshot(self.district)}, separators=(",", ":")))
        elif self.pending:
            if self.shared is not None:
                frames.append(self.shared)
            else:
                frames.append(encode_devices("delta", list(self.pending.values())))
            if self.sent is not None and self.received:
                self.sent(self.received, self.received_of)
        self.pending, self.shared = {}, None
        self.received, self.received_of = [], 0
        return frames


def encode_devices(kind: str, devices: list[dict]) -> str:
    return json.dumps({"type": kind, "devices": devices}, separators=(",", ":"))


def _encode_list(devices: list[dict]) -> str:
    return json.dumps(devices, separators=(",", ":"))


def _delta_frame(encoded_list: str) -> str:
    """``encode_devices("delta", devices)`` from the devices' list already encoded."""
    return '{"type":"delta","devices":' + encoded_list + "}"


class Hub:
    def __init__(self, live: LiveState, metrics: Metrics, tick_ms: int, max_pending_devices: int,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.live = live
        self.metrics = metrics
        self.tick_s = tick_ms / 1000
        self.max_pending_devices = max_pending_devices
        self.clients: set[Client] = set()
        self.by_district: dict[str | None, set[Client]] = {}  # None: the city's clients
        self._clock_ms = clock_ms or wall_clock_ms
        self._received: list[int] = []
        self._received_in: list[str] = []  # the district of each sample in _received
        self._received_of = 0
        metrics.gauge("gridwatch_ws_clients", lambda: len(self.clients), "WebSocket clients connected")
        self._latency = metrics.histogram("gridwatch_ws_delta_latency_seconds",
                                          "Receive to sent to a live-map client in a delta, per fix and client (sampled)")

    def connect(self, district: str | None = None) -> tuple[Client, str]:
        """Register a client of ``district`` (None: the city); return it and its snapshot frame."""
        client = self.join(district)
        return client, encode_devices("snapshot", self.live.snapshot(district))

    def join(self, district: str | None = None) -> Client:
        """Register a client that builds its own snapshot (in pieces, as it sends them)."""
        client = Client(self.max_pending_devices, sent=self._sent, district=district)
        self.clients.add(client)
        self.by_district.setdefault(district, set()).add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        group = self.by_district.get(client.district)
        if group is not None:
            group.discard(client)
            if not group:
                del self.by_district[client.district]

    def placed(self, fixes: Sequence[Fix], shown: int) -> None:
        """Fixes just placed in live state, ``shown`` of them newer than their device's last."""
        if shown and self.clients:
            sampled = spread(fixes)
            self._received.extend([fix.rx_ms for fix in sampled])
            self._received_in.extend([fix.district for fix in sampled])
            self._received_of += shown

    def _sent(self, received: list[int], of: int) -> None:
        self._latency.observe_since(self._clock_ms(), received, of)

    def publish_event(self, kind: str, payload: dict, district: str | None) -> None:
        """Send an event to the clients of ``district`` and the city's (None: the city's only)."""
        encoded = json.dumps({"type": kind, **payload}, separators=(",", ":"), default=str)
        for group in (self.by_district.get(None), self.by_district.get(district) if district is not None else None):
            if group:
                for client in group:
                    client.offer_event(encoded)

    def tick(self) -> int:
        """Hand the devices that moved since the last tick to every client: each client
        the share of its district, the city's clients all of them."""
        received, received_in, of = self._received, self._received_in, self._received_of
        self._received, self._received_in, self._received_of = [], [], 0
        if not self.clients:
            self.live.dirty = set()  # nobody to tell; a client that connects gets a snapshot
            return 0
        views = self.live.take_dirty()
        if not views:
            return 0
        groups = self.by_district
        city = groups.get(None)
        if len(groups) == 1 and city:  # only city clients: one delta, as it comes
            delta = {v["id"]: v for v in views}
            encoded = encode_devices("delta", views)
            for client in city:
                client.offer_delta(delta, encoded, received, of)
        else:
            self._route(views, received, received_in, of)
        self.metrics.inc("gridwatch_broadcast_updates_total", len(views))
        return len(views)

    def _route(self, views: list[dict], received: list[int], received_in: list[str], of: int) -> None:
        """One delta per watched district and the city's, each encoded once."""
        groups = self.by_district
        city = groups.get(None)
        shares: dict[str, list[dict]] = {}
        for view in views:  # once per moved device
            share = shares.get(view["district"])
            if share is None:
                shares[view["district"]] = [view]
            else:
                share.append(view)
        pieces = []
        for district, share in shares.items():
            clients = groups.get(district)
            if not clients and not city:
                continue  # nobody watches it
            encoded_list = _encode_list(share)
            if city:
                pieces.append(encoded_list[1:-1])
            if clients:
                delta = {v["id"]: v for v in share}
                encoded = _delta_frame(encoded_list)
                samples = [rx for rx, d in zip(received, received_in, strict=True) if d == district]
                share_of = of * len(samples) // len(received) if received else 0
                for client in clients:
                    client.offer_delta(delta, encoded, samples, share_of)
        if city:
            delta = {v["id"]: v for v in views}
            encoded = _delta_frame("[" + ",".join(pieces) + "]")
            for client in city:
                client.offer_delta(delta, encoded, received, of)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(self.tick_s)
            self.tick()
