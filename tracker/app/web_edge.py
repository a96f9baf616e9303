"""What the web edge gets from the service: the ``WebContext`` built from the service's
parts, and the live feed over the fan-out hub."""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import trio

from alerts.cases.lifecycle import IllegalTransition
from alerts.cases.taxonomy import Taxonomy, TaxonomyError
from alerts.messages import configured_catalogue
from geofence.index import GridIndex
from protocols.epoch import datetime_to_ms, ms_to_datetime
from tracker.access.lockout import Lockout, LockoutRule
from tracker.access.passwords import (
    WeakPassword,
    hash_password,
    new_csrf_token,
    new_session_secret,
    password_matches,
    secret_hash,
)
from tracker.app.accounts import valid_name
from tracker.cases.dispatch import Verification
from tracker.cases.engine import MAX_TEXT, CaseEngine, CaseError, CaseNotFound, NewCase, NotAllowed
from tracker.cases.roles import Actor, membership_refusal
from tracker.config import AuthSettings, Settings
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
from web.basemaps import base_map
from web.context import (
    AuthSettings as WebAuthSettings,
    CaseRefused,
    Conflict,
    FeedTooSlow,
    Locate,
    LoginRefused,
    MapSettings,
    Open311,
    Row,
    Session,
    Unavailable,
    Verified,
    WebContext,
)
from web.guards import default_allowed_hosts
from web.principal import Principal, Role

T = TypeVar("T")


class StoreRecords:
    """The store's read side for the web: a request fails fast during an outage (no
    retry: the client may ask again), as ``Unavailable``, which the web turns into 503."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _read(self, query: Awaitable[T]) -> T:
        return await read_or_unavailable(query)

    async def has_device(self, device: str, district: str | None) -> bool:
        return await self._read(self._store.has_device(device, district))

    async def track(self, device: str, start: datetime, end: datetime, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.track(device, start, end, limit, district))

    async def history(self, device: str, start: datetime, end: datetime, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.history(device, start, end, limit, district))

    async def dead_letters(self, limit: int) -> Sequence[Row]:
        return await self._read(self._store.dead_letters(limit))

    async def components(self, code_prefix: str, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.components(code_prefix, limit, district))

    async def alarm_events(self, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.alarm_events(limit, district))

    async def sensor_readings(self, device: str, start: datetime, end: datetime, limit: int,
                              district: str | None) -> Sequence[Row]:
        return await self._read(self._store.sensor_readings(device, start, end, limit, district))

    async def patrol_alerts(self, open_only: bool, limit: int, district: str | None) -> Sequence[Row]:
        return await self._read(self._store.patrol_alerts(open_only, limit, district))

    async def audit_entries(self, *, actor: str | None, action: str | None, target: str | None, before_id: int | None,
                            limit: int) -> Sequence[Row]:
        return await self._read(self._store.audit_entries(actor=actor, action=action, target=target,
                                                          before_id=before_id, limit=limit))


def _unavailable(exc: Exception) -> Unavailable:
    """A database failure as the web's 503, its reason on one short line."""
    return Unavailable(f"database unavailable: {' '.join((str(exc) or type(exc).__name__).split())[:200]}")


async def read_or_unavailable(query: Awaitable[T]) -> T:
    """``query``'s answer; a database outage or stall as ``Unavailable`` (the web's 503),
    not retried: the client may ask again."""
    try:
        return await query
    except Exception as exc:
        if not retryable(exc):
            raise
        raise _unavailable(exc) from exc


def principal_of(row: Row, via: str) -> Principal:
    return Principal(row["name"], Role(row["role"]), row["district"], row["id"], via, row["device"])


class StoreAccounts:
    """Accounts for the web edge: logins (Argon2, off the event loop, behind the lockout
    rule) and the lookups of sessions and tokens, each verified one trusted for
    ``cache_s`` seconds of ``now`` (trio's clock) so that a request does not wait for the
    database. The cache holds at most ``cache_entries`` secrets (by hash), the least
    recently used dropped first; a logout here drops its entry at once."""

    def __init__(self, store: Store, settings: AuthSettings, clock_ms: Callable[[], int],
                 now: Callable[[], float] = trio.current_time) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._now = now
        self._session_ms = int(settings.session_hours * 3_600_000)
        self._cache_s = settings.cache_s
        self._cache_entries = settings.cache_entries
        self._cache: OrderedDict[bytes, tuple[float, Verified]] = OrderedDict()
        self.lockout = Lockout(LockoutRule(settings.slow_after, settings.slow_s, settings.lock_after, settings.lock_s), now)

    async def _read(self, query: Awaitable[T]) -> T:
        return await read_or_unavailable(query)

    async def login(self, name: str, password: str, source: str) -> Session:
        wait = self.lockout.wait_s(name)
        if wait > 0:
            locked = self.lockout.locked(name)
            raise LoginRefused(f"too many failed logins: {'locked' if locked else 'slowed down'}, try again in "
                               f"{math.ceil(wait)} s", wait)
        # a name no account can have is not looked up (nor is a NUL sent to PostgreSQL),
        # but costs the same Argon2 time as any other wrong name
        row = await self._read(self._store.account(name)) if valid_name(name) else None
        stored = row["password_hash"] if row is not None and row["enabled"] else None
        if not await trio.to_thread.run_sync(password_matches, stored, password):
            self.lockout.failed(name)
            raise LoginRefused("wrong name or password")
        assert row is not None  # a hash matched
        self.lockout.succeeded(name)
        secret, csrf = new_session_secret(), new_csrf_token()
        now_ms = self._clock_ms()
        expires_ms = now_ms + self._session_ms
        await self._read(self._store.start_session(row["id"], secret_hash(secret), csrf, source, ms_to_datetime(now_ms),
                                                   ms_to_datetime(expires_ms)))
        verified = Verified(principal_of(row, "session"), csrf, expires_ms)
        self._remember(secret_hash(secret), verified)
        return Session(secret, verified)

    async def session(self, secret: str) -> Verified | None:
        key = secret_hash(secret)
        found = self._cached(key)
        if found is None:
            row = await self._read(self._store.session(key, ms_to_datetime(self._clock_ms())))
            if row is None:
                return None
            found = Verified(principal_of(row, "session"), row["csrf"], datetime_to_ms(row["expires_at"]))
            self._remember(key, found)
        if found.expires_at_ms is not None and found.expires_at_ms <= self._clock_ms():
            self._cache.pop(key, None)
            return None
        return found

    async def token(self, secret: str) -> Verified | None:
        key = secret_hash(secret)
        found = self._cached(key)
        if found is None:
            row = await self._read(self._store.token(key))
            if row is None:
                return None
            found = Verified(principal_of(row, "token"))
            self._remember(key, found)
        return found

    async def logout(self, secret: str) -> bool:
        key = secret_hash(secret)
        self._cache.pop(key, None)
        return await self._read(self._store.end_session(key))

    async def change_password(self, name: str, current: str, new: str) -> None:
        row = await self._read(self._store.account(name))
        stored = row["password_hash"] if row is not None and row["enabled"] else None
        if not await trio.to_thread.run_sync(password_matches, stored, current):
            raise LoginRefused("'current' is not the account's password")
        assert row is not None
        try:
            hashed = await trio.to_thread.run_sync(hash_password, new)
        except WeakPassword as exc:
            raise ValueError(str(exc)) from None
        await self._read(self._store.set_password(name, hashed))
        for key, (_, verified) in list(self._cache.items()):  # the sessions just ended, here at once
            if verified.principal.account_id == row["id"] and verified.principal.via == "session":
                del self._cache[key]

    def _cached(self, key: bytes) -> Verified | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        until, verified = entry
        if until <= self._now():
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return verified

    def _remember(self, key: bytes, verified: Verified) -> None:
        if self._cache_s <= 0:
            return
        self._cache[key] = (self._now() + self._cache_s, verified)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)


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
    basemap = base_map(web.basemap, tianditu_key=web.tianditu_key, custom_url=web.custom_url,
                       custom_datum=web.custom_datum, legacy_url=web.tile_url, legacy_datum=web.map_datum)
    tile_url = basemap.layers[0].url if basemap.layers else ""
    return MapSettings(tile_url=tile_url, map_datum=basemap.display_datum, center=(lat, lon), zoom=web.zoom,
                       basemap=basemap,
                       district=settings.grid.district, track_max_points=web.track_max_points,
                       max_body_bytes=web.max_body_bytes,
                       allowed_hosts=web.allowed_hosts or default_allowed_hosts(web.host, web.public_name),
                       ws_snapshot_devices=web.ws_snapshot_devices, ws_max_unsent_bytes=web.ws_max_unsent_bytes,
                       online_s=tuple(settings.live.online_s().items()), city_zone=settings.city.timezone)


def auth_settings(settings: Settings) -> WebAuthSettings:
    auth = settings.auth
    return WebAuthSettings(session_s=auth.session_hours * 3600.0, cookie_secure=auth.cookie_secure,
                           metrics_token=auth.metrics_token)


def web_context(settings: Settings, *, clock_ms: Callable[[], int], store: Store, index: GridIndex, live: LiveState,
                hub: Hub, metrics: Metrics, grids: dict[str, Any], healthy: Callable[[], tuple[bool, str]],
                locate: Locate, patrol: Patrol | None, accounts: StoreAccounts | None = None,
                provisioning: Provisioning | None = None, cases: CaseEngine | None = None,
                verification: Verification | None = None, open311: Open311 | None = None) -> WebContext:
    """``accounts``: default, the store's with trio's clock for the lockout and the cache."""
    return WebContext(map_settings(settings), clock_ms, StoreRecords(store), index, live, HubFeed(hub, live), metrics, grids,
                      healthy=healthy, locate=locate, patrol=patrol, audit=StoreAudit(store),
                      accounts=accounts or StoreAccounts(store, settings.auth, clock_ms), auth=auth_settings(settings),
                      devices_admin=RegistryAdmin(provisioning) if provisioning is not None else None,
                      alert_messages=configured_catalogue(settings.patrol.alert_severity),
                      cases=ServiceCases(cases) if cases is not None else None,
                      verifiers=ServiceVerifiers(verification) if verification is not None else None, open311=open311)


class ServiceVerifiers:
    """On-site verification for the web: the principal as the engine's actor."""

    def __init__(self, verification: Verification) -> None:
        self._verification = verification

    async def candidates(self, who: Principal, case_id: int, k: int) -> dict[str, Any]:
        return await ServiceCases(self._verification.engine)._do(
            self._verification.candidates(case_id, ServiceCases.actor(who), k=k))


class ServiceCases:
    """The case engine for the web: a principal as the engine's actor, the engine's
    refusals as the web's (``CaseRefused`` for the lifecycle's 409), database failures
    as ``Unavailable``."""

    def __init__(self, engine: CaseEngine) -> None:
        self._engine = engine

    @staticmethod
    def actor(who: Principal, source: str = "") -> Actor:
        return Actor(who.account, who.role.value, who.district, who.device, source)

    async def _do(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except IllegalTransition as exc:
            raise CaseRefused(str(exc)) from None
        except (CaseError, CaseNotFound, NotAllowed, TaxonomyError):
            raise
        except Exception as exc:
            if not retryable(exc):
                raise
            raise _unavailable(exc) from exc

    async def find(self, who: Principal, filters: dict[str, Any], limit: int,
                   cursor: int | None) -> tuple[list[dict[str, Any]], int | None]:
        return await self._do(self._engine.list(self.actor(who), **filters, limit=limit, cursor=cursor))

    async def get(self, who: Principal, case_id: int) -> dict[str, Any]:
        return await self._do(self._engine.get(case_id, self.actor(who)))

    async def timeline(self, who: Principal, case_id: int) -> list[dict[str, Any]]:
        return await self._do(self._engine.timeline(case_id, self.actor(who)))

    async def figures(self, who: Principal) -> dict[str, int]:
        return await self._do(self._engine.figures(self.actor(who)))

    async def create(self, who: Principal, source: str, fields: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(fields) - {"category", "description", "lat", "lon", "urgent"})
        if unknown:
            raise CaseError(f"body has unknown field(s) {', '.join(unknown)} (a case: category, description, lat, lon, urgent)")
        category, description = fields.get("category"), fields.get("description", "")
        lat, lon, urgent = fields.get("lat"), fields.get("lon"), fields.get("urgent")
        if not isinstance(category, str) or not category:
            raise CaseError("category is needed (a code of the taxonomy, e.g. E0102)")
        if not isinstance(description, str):
            raise CaseError("description must be a text")
        if "\x00" in description:
            raise CaseError("description must not contain NUL characters")
        if len(description) > MAX_TEXT:
            raise CaseError(f"description: at most {MAX_TEXT} characters, got {len(description)}")
        for name, value in (("lat", lat), ("lon", lon)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise CaseError(f"{name} must be a number")
            if isinstance(value, int) and abs(value) > 180:  # and a JSON integer no float holds is no 500
                raise CaseError("lat must be in [-90, 90] and lon in [-180, 180]")
        if urgent is not None and not isinstance(urgent, bool):
            raise CaseError("urgent must be true or false")
        new = NewCase("dispatcher", category, description, None if lat is None else float(lat),
                      None if lon is None else float(lon), urgent, reporter=who.account)
        case, _ = await self._do(self._engine.create(new, self.actor(who, source)))
        return case

    async def act(self, who: Principal, source: str, case_id: int, action: str, fields: dict[str, Any]) -> dict[str, Any]:
        return await self._do(self._engine.transition(case_id, action, self.actor(who, source), fields))

    async def taxonomy(self) -> dict[str, Any]:
        version, taxonomy = await self._do(self._engine.taxonomy())
        return taxonomy_view(version, taxonomy)

    async def load_taxonomy(self, who: Principal, source: str, text: str) -> dict[str, Any]:
        version, taxonomy, created = await self._do(self._engine.load_taxonomy(text, self.actor(who, source)))
        return {**taxonomy_view(version, taxonomy), "created": created}

    async def departments(self) -> list[dict[str, Any]]:
        _, taxonomy = await self._do(self._engine.taxonomy())
        members: dict[str, list[str]] = {}
        for row in await self._do(self._engine.store.department_members()):
            members.setdefault(row["department"], []).append(row["account"])
        return [{"code": d.code, "name": d.name, "district": d.district, "members": members.get(d.code, [])}
                for d in taxonomy.departments.values()]

    async def set_member(self, who: Principal, source: str, department: str, account: str, member: bool) -> bool:
        _, taxonomy = await self._do(self._engine.taxonomy())
        if department not in taxonomy.departments:
            raise LookupError(f"no department {department!r} in the current taxonomy")
        if not valid_name(account):
            raise CaseError(f"account must be an account's name (1 to 64 of letters, digits, . _ @ -), got {account[:64]!r}")
        store = self._engine.store
        works_in = taxonomy.departments[department].district
        if member and works_in is not None:
            row = await self._do(store.account(account))
            why = membership_refusal(account, row["district"] if row else None, department, works_in)
            if why is not None:
                raise CaseError(why)
        if member:
            changed = await self._do(store.add_department_member(department, account))
        else:
            changed = await self._do(store.remove_department_member(department, account))
        if changed:
            await self._do(store.append_audit(AuditEntry(
                actor=who.account, action="department.member_add" if member else "department.member_remove",
                target=department, source=source, role=who.role.value, scope=who.scope_label,
                after={"account": account, "member": member})))
        return changed


def taxonomy_view(version: int, taxonomy: Taxonomy) -> dict[str, Any]:
    """A taxonomy as JSON: what the case page offers and the API documents."""
    return {"version": version, "label": taxonomy.version, "city": taxonomy.city, "example": taxonomy.example,
            "digest": taxonomy.digest,
            "departments": [{"code": d.code, "name": d.name, "district": d.district}
                            for d in taxonomy.departments.values()],
            "categories": [{"code": c.code, "kind": c.kind.value, "major_name": c.major_name, "name": c.name,
                            "name_en": c.name_en, "department": c.department, "urgent": c.urgent,
                            "clock": "natural" if c.natural_clock else "working",
                            "limits": {stage.value: str(limit) for stage, limit in c.limits.items()}}
                           for c in taxonomy.categories.values()]}
