"""What the web edge gets from the service: the ``WebContext`` built from the service's
parts, and the live feed over the fan-out hub."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from geofence.index import GridIndex
from tracker.config import Settings
from tracker.live.fanout import Client, ClientTooSlow, Hub
from tracker.live.patrol import Patrol
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from tracker.storage.audit import AuditEntry
from tracker.storage.retry import retryable
from tracker.storage.store import Store
from web.context import FeedTooSlow, Locate, MapSettings, Row, Unavailable, WebContext
from web.guards import default_allowed_hosts

T = TypeVar("T")


class StoreRecords:
    """The store's read side for the web: a request fails fast during an outage (no
    retry: the client may ask again), as ``Unavailable``, which the web turns into 503."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _read(self, query: Awaitable[T]) -> T:
        try:
            return await query
        except Exception as exc:
            if not retryable(exc):
                raise
            raise Unavailable(f"database unavailable: {' '.join((str(exc) or type(exc).__name__).split())[:200]}") from exc

    async def has_device(self, device: str, district: str | None) -> bool:
        return await self._read(self._store.has_device(device, district))

    async def track(self, device: str, start: datetime, end: datetime, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.track(device, start, end, limit, district))

    async def dead_letters(self, limit: int) -> Sequence[Row]:
        return await self._read(self._store.dead_letters(limit))

    async def components(self, code_prefix: str, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.components(code_prefix, limit, district))

    async def alarm_events(self, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.alarm_events(limit, district))

    async def patrol_alerts(self, open_only: bool, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.patrol_alerts(open_only, limit, district))


class StoreAudit:
    """The audit trail's writer for the web: each call one row, written before the action
    is answered; during an outage the request fails with 503 rather than act unaudited."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(self, *, actor: str, action: str, target: str = "", source: str = "", role: str | None = None,
                       scope: str | None = None, outcome: str = "ok", before: Any = None, after: Any = None,
                       detail: str = "") -> None:
        entry = AuditEntry(actor=actor, action=action, target=target, source=source, role=role, scope=scope,
                           outcome=outcome, before=before, after=after, detail=detail)
        try:
            await self._store.append_audit(entry)
        except Exception as exc:
            if not retryable(exc):
                raise
            raise Unavailable("database unavailable: the action could not be audited") from exc


class HubSubscription:
    """One WebSocket client of the hub, of one district (None: the city). Its snapshot
    holds the ids of the district's devices live when it joined, not their views: each
    frame of it is built from the newest views as it is sent, so a client that reads
    slowly holds one frame, not a copy of the whole map."""

    def __init__(self, hub: Hub, live: LiveState, district: str | None = None) -> None:
        self._hub = hub
        self._live = live
        self._client: Client = hub.join(district)
        self._devices = live.ids(district)

    def snapshot_frames(self, devices_per_frame: int) -> Iterator[str]:
        ids, self._devices = self._devices, []
        for start in range(0, max(len(ids), 1), devices_per_frame):
            views = [v for v in map(self._live.view, ids[start:start + devices_per_frame]) if v is not None]
            frame: dict[str, Any] = {"type": "snapshot_part" if start else "snapshot", "devices": views}
            if start + devices_per_frame < len(ids):
                frame["more"] = True
            yield json.dumps(frame, separators=(",", ":"))

    async def next_frames(self) -> list[str]:
        try:
            return await self._client.next_frames(self._live)
        except ClientTooSlow:
            raise FeedTooSlow from None

    def close(self) -> None:
        self._hub.disconnect(self._client)


class HubFeed:
    def __init__(self, hub: Hub, live: LiveState) -> None:
        self._hub = hub
        self._live = live

    def subscribe(self, district: str | None) -> HubSubscription:
        return HubSubscription(self._hub, self._live, district)


def map_settings(settings: Settings) -> MapSettings:
    web = settings.web
    lat, lon = web.center
    return MapSettings(tile_url=web.tile_url, map_datum=web.map_datum, center=(lat, lon), zoom=web.zoom,
                       district=settings.grid.district, track_max_points=web.track_max_points,
                       max_body_bytes=web.max_body_bytes,
                       allowed_hosts=web.allowed_hosts or default_allowed_hosts(web.host, web.public_name),
                       ws_snapshot_devices=web.ws_snapshot_devices, ws_max_unsent_bytes=web.ws_max_unsent_bytes)


def web_context(settings: Settings, *, clock_ms: Callable[[], int], store: Store, index: GridIndex, live: LiveState,
                hub: Hub, metrics: Metrics, grids: dict[str, Any], healthy: Callable[[], tuple[bool, str]],
                locate: Locate, patrol: Patrol | None) -> WebContext:
    return WebContext(map_settings(settings), clock_ms, StoreRecords(store), index, live, HubFeed(hub, live), metrics, grids,
                      healthy=healthy, locate=locate, patrol=patrol, audit=StoreAudit(store))
