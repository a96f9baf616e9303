"""What the web edge gets from the service: the ``WebContext`` built from the service's
parts, and the live feed over the fan-out hub."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from geofence.index import GridIndex
from tracker.config import Settings
from tracker.live.fanout import Client, ClientTooSlow, Hub
from tracker.live.patrol import Patrol
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from tracker.storage.retry import retryable
from tracker.storage.store import Store
from web.context import FeedTooSlow, Locate, MapSettings, Row, Unavailable, WebContext

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

    async def has_device(self, device: str) -> bool:
        return await self._read(self._store.has_device(device))

    async def track(self, device: str, start: datetime, end: datetime, limit: int) -> Sequence[Row]:
        return await self._read(self._store.track(device, start, end, limit))

    async def dead_letters(self, limit: int) -> Sequence[Row]:
        return await self._read(self._store.dead_letters(limit))

    async def components(self, code_prefix: str, limit: int) -> Sequence[Row]:
        return await self._read(self._store.components(code_prefix, limit))

    async def alarm_events(self, limit: int) -> Sequence[Row]:
        return await self._read(self._store.alarm_events(limit))

    async def patrol_alerts(self, open_only: bool, limit: int) -> Sequence[Row]:
        return await self._read(self._store.patrol_alerts(open_only, limit))


class HubSubscription:
    """One WebSocket client of the hub."""

    def __init__(self, hub: Hub, live: LiveState) -> None:
        self._hub = hub
        self._live = live
        self._client: Client
        self._client, self.snapshot = hub.connect()

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

    def subscribe(self) -> HubSubscription:
        return HubSubscription(self._hub, self._live)


def map_settings(settings: Settings) -> MapSettings:
    web = settings.web
    lat, lon = web.center
    return MapSettings(tile_url=web.tile_url, map_datum=web.map_datum, center=(lat, lon), zoom=web.zoom,
                       district=settings.grid.district, track_max_points=web.track_max_points)


def web_context(settings: Settings, *, clock_ms: Callable[[], int], store: Store, index: GridIndex, live: LiveState,
                hub: Hub, metrics: Metrics, grids: dict[str, Any], healthy: Callable[[], tuple[bool, str]],
                locate: Locate, patrol: Patrol | None) -> WebContext:
    return WebContext(map_settings(settings), clock_ms, StoreRecords(store), index, live, HubFeed(hub, live), metrics, grids,
                      healthy=healthy, locate=locate, patrol=patrol)
