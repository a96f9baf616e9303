"""What the web edge needs from the service, declared here and handed in by the service.

The web layer knows no service module: the composition root builds a ``WebContext`` from
its store, live state, fan-out hub, metrics and patrol engine, and ``create_app`` puts it
on the Starlette application's state, where every endpoint reads it (``context(request)``).
Rows from the store are read by column name only, so any mapping-like record will do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, cast

from starlette.requests import HTTPConnection

from alerts.messages import Catalogue, default_catalogue
from geofence.index import GridIndex
from geofence.plan import PatrolPlan
from web.basemaps import BaseMap
from web.principal import Principal

DEFAULT_ZONE = "Asia/Shanghai"  # the city's zone unless [city] timezone says otherwise


class Unavailable(Exception):
    """What a request needs (the database) is out of service for now: 503, with why."""


class Row(Protocol):
    """One record from the store, read by column name."""

    def __getitem__(self, key: str, /) -> Any: ...


class Records(Protocol):
    """The store's read side, as the API uses it. Raises ``Unavailable`` during an outage.

    ``district``: the caller's (``Principal.district``); the store returns that district's
    records only, None meaning the whole city."""

    async def has_device(self, device: str, district: str | None) -> bool: ...

    async def track(self, device: str, start: datetime, end: datetime, limit: int, district: str | None) -> Sequence[Row]: ...

    async def history(self, device: str, start: datetime, end: datetime, limit: int, district: str | None) -> Sequence[Row]:
        """Like ``track``, each row with its accuracy ``acc`` (metres, or None)."""
        ...

    async def dead_letters(self, limit: int) -> Sequence[Row]: ...

    async def components(self, code_prefix: str, limit: int, district: str | None) -> Sequence[Row]: ...

    async def alarm_events(self, limit: int, district: str | None) -> Sequence[Row]: ...

    async def sensor_readings(self, device: str, start: datetime, end: datetime, limit: int,
                              district: str | None) -> Sequence[Row]:
        """A sensor's records (t, kind and a column per reading), oldest first."""
        ...

    async def patrol_alerts(self, open_only: bool, limit: int, district: str | None) -> Sequence[Row]: ...

    async def audit_entries(self, *, actor: str | None, action: str | None, target: str | None, before_id: int | None,
                            limit: int) -> Sequence[Row]:
        """The audit trail, newest first (``action`` a prefix; ``before_id`` pages back)."""
        ...


class LiveView(Protocol):
    """The newest position of every device, in the JSON shape of the map."""

    def view(self, device: str) -> dict[str, Any] | None: ...

    def snapshot(self, district: str | None = None) -> list[dict[str, Any]]:
        """Every device's view, or those of ``district`` only."""
        ...


class FeedTooSlow(Exception):
    """A subscriber let its queue of undroppable events overflow: it must reconnect."""


class Subscription(Protocol):
    """One client's share of the live feed."""

    def snapshot_frames(self, devices_per_frame: int) -> Iterator[str]:
        """The encoded snapshot to send first, in frames of at most ``devices_per_frame``
        devices, each encoded only when asked for: ``{"type":"snapshot",...}`` then
        ``{"type":"snapshot_part",...}``, every frame but the last with ``"more":true``."""
        ...

    async def next_frames(self) -> list[str]:
        """Wait for something to send; the frames to send now, in order. Raises
        ``FeedTooSlow`` when the client fell too far behind."""
        ...

    def close(self) -> None: ...


class Feed(Protocol):
    """The live fan-out of device moves, alerts and alarms."""

    def subscribe(self, district: str | None) -> Subscription:
        """A client that receives the devices, alerts and alarms of ``district`` only
        (its snapshot too); None: the whole city's."""
        ...


class Counters(Protocol):
    def inc(self, name: str, by: int = 1, **labels: str) -> None: ...

    def render(self) -> str:
        """All metrics in the Prometheus text format."""
        ...


class PatrolEngine(Protocol):
    """Patrol coverage: the plan in effect, live coverage and the day's report."""

    @property
    def plan(self) -> PatrolPlan | None: ...

    @property
    def plan_version(self) -> int: ...

    def live(self, district: str | None = None) -> dict[str, Any]:
        """Live coverage: of the grids and slots of ``district`` only when given."""
        ...

    async def report(self, day: date, district: str | None = None) -> dict[str, Any]:
        """The day's coverage report: of the collectors and areas of ``district`` only when given."""
        ...

    async def replace_plan(self, doc: dict[str, Any], note: str = "") -> int:
        """Validate, store and apply a plan; raises ``PlanError``."""
        ...


class AuditTrail(Protocol):
    """Appends one action to the audit trail (append-only; ``GET /api/audit`` reads it).
    ``before``/``after``: JSON-able state around the action. Raises ``Unavailable`` while
    the database is out of service: an action that cannot be audited is not done."""

    async def __call__(self, *, actor: str, action: str, target: str = "", source: str = "", role: str | None = None,
                       scope: str | None = None, outcome: str = "ok", before: Any = None, after: Any = None,
                       detail: str = "") -> None: ...


@dataclass(frozen=True, slots=True)
class Verified:
    """Who a session cookie or an API token stands for. ``csrf``: the session's
    anti-forgery token, which a state-changing request with the cookie must repeat in the
    ``X-CSRF-Token`` header ("" for a token: a bearer header is never sent by a browser on
    its own, so it needs none)."""

    principal: Principal
    csrf: str = ""
    expires_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Session:
    """A session just opened by a login: ``secret`` goes to the browser as the cookie."""

    secret: str
    verified: Verified


class LoginRefused(Exception):
    """A login that did not open a session: bad name or password (401, ``retry_after_s``
    0), or too many failures (429, seconds to wait)."""

    def __init__(self, reason: str, retry_after_s: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class Accounts(Protocol):
    """Accounts as the web edge uses them: log in and out, and who a cookie or a token is.
    Lookups may answer from a short cache (``[auth] cache_s``), so what another process
    changes (the CLI disabling an account or revoking a token) shows within that; a logout
    here shows at once. Raise ``Unavailable`` while the database is out of service."""

    async def login(self, name: str, password: str, source: str) -> Session:
        """Open a session or raise ``LoginRefused``."""
        ...

    async def session(self, secret: str) -> Verified | None: ...

    async def token(self, secret: str) -> Verified | None: ...

    async def logout(self, secret: str) -> bool: ...

    async def change_password(self, name: str, current: str, new: str) -> None:
        """Set a new password when ``current`` is right (else ``LoginRefused``) and the new
        one acceptable (else ``ValueError`` saying why); every session of the account ends."""
        ...


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The web's side of ``[auth]``."""

    session_s: float = 12 * 3600.0
    cookie_secure: bool = False
    metrics_token: str = ""  # "" : /metrics for admin accounts only


class Conflict(Exception):
    """The request clashes with what exists (a device id, phone or component code taken): 409."""


class DeviceAdmin(Protocol):
    """The device registry and the broker accounts behind it. Devices are JSON objects:
    id, class, district, name, person, plate, phone, terminal_id, component, enabled.
    Raises ``ValueError`` for a registration that cannot be made as given (400),
    ``LookupError`` for a device not registered (404), ``Conflict`` (409), and
    ``Unavailable`` when the database or the broker's control account is not there (503)."""

    async def devices(self) -> list[dict[str, Any]]: ...

    async def add(self, fields: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Register a device and make its broker account: (the device, its MQTT password)."""
        ...

    async def set_enabled(self, device: str, enabled: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        """(before, after)."""
        ...

    async def rotate(self, device: str) -> tuple[dict[str, Any], str]:
        """A new MQTT password (the old one's session is closed): (the device, the password)."""
        ...


# The device's id → how the "report now" request went out, or None for an unknown device.
# Raises trio.BrokenResourceError when the device's link is down.
Locate = Callable[[str], Awaitable[dict[str, Any] | None]]


class Open311(Protocol):
    """Citizens' service requests (Open311 GeoReport v2, ``/open311/v2/``) over cases.
    A request is a case of source ``hotline``; the reporter's name, e-mail and phone are
    stored with it and never leave through these reads. Raises ``ValueError`` for bad input
    (400), ``PermissionError`` (403), ``Conflict`` (409: a token another client used) and
    ``Unavailable`` (503)."""

    async def services(self) -> list[dict[str, Any]]:
        """The current taxonomy's categories: code, name, name_en, kind, group (the major
        class's name), department, urgent; [] when no taxonomy is loaded."""
        ...

    async def submit(self, who: Principal, source: str, request: dict[str, Any]) -> tuple[int, bool]:
        """Open a case for a request (service_code, lat, lon, description, media_url,
        reporter, token): (the case's id, whether it is new; a token already seen answers
        the case it made)."""
        ...

    async def requests(self, *, ids: list[int] | None, codes: list[str] | None, start: datetime | None,
                       end: datetime | None, closed: bool | None, limit: int) -> list[dict[str, Any]]:
        """Cases as requests, newest first, without the reporter: id, state, state_zh,
        category, category_name, department_name, description, created_at, updated_at, due,
        street, community, district, lat, lon, media_url, notes."""
class CaseRefused(Exception):
    """The lifecycle does not allow the action from the case's state: 409, saying what is."""


class Cases(Protocol):
    """Cases (案卷) as the web edge uses them; every call acts as, and is scoped to, ``who``.
    Cases are JSON objects (see ``GET /api/openapi.json``). Raises ``ValueError`` for bad
    input (400), ``LookupError`` for a case that is not there or not the caller's (404),
    ``PermissionError`` for a role or scope that may not (403), ``CaseRefused`` (409) and
    ``Unavailable`` (503). The case actions are written to the timeline and the audit
    trail by the service, in the transaction that changes the case."""

    async def find(self, who: Principal, filters: dict[str, Any], limit: int,
                   cursor: int | None) -> tuple[list[dict[str, Any]], int | None]:
        """A page of cases, newest first, and the cursor of the next (None: the last page).
        ``filters``: state, category, street, district, source (text), urgent, overdue, escalated (bool)."""
        ...

    async def get(self, who: Principal, case_id: int) -> dict[str, Any]:
        """The case, its running stage's deadline and the actions ``who`` may take."""
        ...

    async def timeline(self, who: Principal, case_id: int) -> list[dict[str, Any]]: ...

    async def figures(self, who: Principal) -> dict[str, int]:
        """Counts for the big screen, of ``who``'s district: open, overdue, due_soon,
        reported_today, closed_today."""
        ...

    async def create(self, who: Principal, source: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A new case: category, description, lat, lon (urgent optional)."""
        ...

    async def act(self, who: Principal, source: str, case_id: int, action: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Take ``action`` on the case; the case after it. ``source``: the client's address."""
        ...

    async def taxonomy(self) -> dict[str, Any]:
        """The current taxonomy: its version, label, digest, departments and categories."""
        ...

    async def load_taxonomy(self, who: Principal, source: str, text: str) -> dict[str, Any]:
        """Check and store a taxonomy file (TOML) as a new version; ``ValueError`` lists its problems."""
        ...

    async def departments(self) -> list[dict[str, Any]]:
        """The current taxonomy's departments with their members."""
        ...

    async def set_member(self, who: Principal, source: str, department: str, account: str, member: bool) -> bool:
        """Add or remove a department's member; whether anything changed."""
        ...


class Verifiers(Protocol):
    """On-site verification as the web edge uses it (errors as ``Cases``')."""

    async def candidates(self, who: Principal, case_id: int, k: int) -> dict[str, Any]:
        """The ``k`` collectors on duty nearest to the case, nearest first: device,
        distance_m, t (their fix), in_grid (the case lies in their responsibility area)."""
        ...


@dataclass(frozen=True, slots=True)
class MapSettings:
    """The map page's configuration (``GET /api/config``) and the API's limits."""

    tile_url: str
    map_datum: str
    center: tuple[float, float]
    zoom: int
    district: str
    track_max_points: int
    max_body_bytes: int = 4 << 20
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")  # see web.guards.HostNames
    ws_snapshot_devices: int = 500  # devices per snapshot frame
    ws_max_unsent_bytes: int = 8 << 20  # a WebSocket client that leaves more unsent is closed
    # a device is online while heard from within this many seconds, by class ([live])
    online_s: tuple[tuple[str, float], ...] = (("collector", 300.0), ("vehicle", 300.0), ("sensor", 1800.0))
    basemap: BaseMap | None = None  # None: the tiles of tile_url (if any) in map_datum
    city_zone: str = DEFAULT_ZONE  # [city] timezone: report days, times without an offset, the page's clocks


def _all_healthy() -> tuple[bool, str]:
    return True, "ok"


@dataclass(frozen=True, slots=True)
class WebContext:
    settings: MapSettings
    clock_ms: Callable[[], int]  # the service's one clock: every default "now" and "today"
    records: Records
    index: GridIndex
    live: LiveView
    feed: Feed
    metrics: Counters
    grids: dict[str, Any]  # the unit grids as a GeoJSON FeatureCollection
    healthy: Callable[[], tuple[bool, str]] = _all_healthy
    locate: Locate | None = None  # None: this service has no downlink
    patrol: PatrolEngine | None = None  # None: patrol coverage is switched off
    audit: AuditTrail | None = None  # None: nothing is recorded (tests of pages that change nothing)
    accounts: Accounts | None = None  # None: nobody can log in (only a principal put in the scope passes)
    auth: AuthSettings = AuthSettings()
    devices_admin: DeviceAdmin | None = None  # None: no device registry behind this service
    alert_messages: Catalogue = field(default_factory=default_catalogue)  # texts and severities of alerts
    open311: Open311 | None = None  # None: no cases behind this service (Open311 answers 404)
    cases: Cases | None = None  # None: cases are switched off (the case routes answer 404)
    verifiers: Verifiers | None = None  # None: no verification dispatch (candidates answer 404)

    def zone(self) -> str:
        """The city's time zone: of "today", of report days, of a time given without an offset."""
        return self.settings.city_zone


def context(connection: HTTPConnection) -> WebContext:
    """The context of the application serving this request or WebSocket."""
    return cast(WebContext, connection.app.state.context)
