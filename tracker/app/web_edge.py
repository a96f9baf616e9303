"""What the web edge gets from the service: the ``WebContext`` built from the service's
parts, and the live feed over the fan-out hub."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import trio

from geofence.index import GridIndex
from tracker.config import Settings
from tracker.ingest.broker import BrokerError
from tracker.ingest.dynsec import DynsecError
from tracker.live.fanout import Client, ClientTooSlow, Hub
from tracker.live.patrol import Patrol
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from tracker.registry.model import RegisteredDevice
from tracker.registry.provisioning import Provisioning, ProvisioningOff
from tracker.storage.audit import AuditEntry
from tracker.storage.retry import retryable
from tracker.storage.store import RegistryConflict, Store
from web.context import Conflict, FeedTooSlow, Locate, MapSettings, Row, Unavailable, WebContext
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


class RegistryAdmin:
    """The device registry for the web: provisioning's errors as the web's (a bad
    registration ValueError, a clash Conflict, no database, broker or control account
    Unavailable)."""

    def __init__(self, provisioning: Provisioning) -> None:
        self._provisioning = provisioning

    async def _do(self, action: Awaitable[T]) -> T:
        try:
            return await action
        except RegistryConflict as exc:
            raise Conflict(str(exc)) from None
        except (ProvisioningOff, DynsecError, BrokerError, OSError, trio.TooSlowError) as exc:
            raise Unavailable(f"device provisioning unavailable: {exc}") from exc
        except Exception as exc:
            if not retryable(exc):
                raise
            raise Unavailable(f"database unavailable: {' '.join(str(exc).split())[:200]}") from exc

    async def devices(self) -> list[dict[str, Any]]:
        return [d.as_dict() for d in await self._do(self._provisioning.devices())]

    async def add(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        fields = dict(fields)
        device = RegisteredDevice.new(fields.pop("id"), fields.pop("class"), fields.pop("district"), **fields)
        password = await self._do(self._provisioning.add(device))
        return device.as_dict(), password

    async def set_enabled(self, device: str, enabled: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        before, after = await self._do(self._provisioning.set_enabled(device, enabled))
        return before.as_dict(), after.as_dict()

    async def rotate(self, device: str) -> tuple[dict[str, Any], str]:
        known, password = await self._do(self._provisioning.rotate(device))
        return known.as_dict(), password


class HubSubscription:
    """One WebSocket client of the hub. Its snapshot holds the ids of the devices live when
    it joined, not their views: each frame of it is built from the newest views as it is
    sent, so a client that reads slowly holds one frame, not a copy of the whole map."""

    def __init__(self, hub: Hub, live: LiveState) -> None:
        self._hub = hub
        self._live = live
        self._client: Client = hub.join()
        self._devices = list(live.devices)

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

    def subscribe(self) -> HubSubscription:
        return HubSubscription(self._hub, self._live)


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
                locate: Locate, patrol: Patrol | None, provisioning: Provisioning | None = None) -> WebContext:
    return WebContext(map_settings(settings), clock_ms, StoreRecords(store), index, live, HubFeed(hub, live), metrics, grids,
                      healthy=healthy, locate=locate, patrol=patrol, audit=StoreAudit(store),
                      devices_admin=RegistryAdmin(provisioning) if provisioning is not None else None)
