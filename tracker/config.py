"""Settings: ``config.toml`` loaded once into frozen typed sections, env overrides on top.

Every key is documented in ``config.toml``. An environment variable
``TRACKER_<SECTION>__<KEY>`` (upper case, double underscore) overrides one key, e.g.
``TRACKER_MQTT__PORT=1884``. Unknown sections or keys and values of the wrong type are a
start-up error naming the key.

A section that is what a component takes is that component's parameter class, with the
service's defaults: [mqtt] is the broker client's ``BrokerParams``, [jt808] the gateway's
``Jt808Settings``. The others are read here and turned into their components'
parameters where those differ (units, derived thresholds, rules).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import tomllib
import types
import typing
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.cases.intake import AlarmRule, rules_by_key
from alerts.cases.worktime import WorkCalendar
from alerts.messages import configured_catalogue
from protocols.jt808.framing import MAX_FRAME_BYTES
from protocols.jt808.session import AuthCodePolicy, SessionPolicy
from protocols.model import DISTRICT_CODE

ENV_PREFIX = "TRACKER_"


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the key."""


# The broker client and the JT/T 808 gateway take these parameter classes as they are:
# the [mqtt] and [jt808] sections are built straight into them (below), so they live here,
# below every sub-package that reads them.


@dataclass(frozen=True, slots=True)
class BrokerParams:
    host: str
    port: int
    username: str
    password: str
    client_id: str
    keepalive_s: int = 30
    subscriptions: tuple[str, ...] = ()
    qos: int = 0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 2.0
    # False: a persistent session under client_id (subscriptions and queued QoS 1
    # messages outlive the connection); True: everything is forgotten at disconnect
    clean_session: bool = False


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
    idle_timeout_s: float = 300.0  # without a whole frame
    auth_timeout_s: float = 60.0  # to authenticate, counted while not authenticated
    send_timeout_s: float = 30.0
    max_connections: int = 5000
    max_connections_per_address: int = 500  # per IPv4 address or IPv6 /64
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
        for name in ("idle_timeout_s", "auth_timeout_s", "send_timeout_s", "max_connections",
                     "max_connections_per_address", "max_frame_bytes", "receive_bytes"):
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


@dataclass(frozen=True, slots=True)
class MqttSettings(BrokerParams):
    """[mqtt]: the ingest connection's parameters, with the service's defaults."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str = "gridwatch"
    password: str = ""
    client_id: str = "gridwatch-ingest"
    subscriptions: tuple[str, ...] = ("gw/v1/+/+/+/+",)
    qos: int = 1


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    dsn: str = ""
    pool_min: int = 1
    pool_max: int = 4
    command_timeout_s: float = 60.0
    retry_first_s: float = 0.05
    retry_max_s: float = 5.0


@dataclass(frozen=True, slots=True)
class CitySettings:
    # The zone of the city's clocks: report days are its days, the API reads a time
    # without an offset in it, the map shows every time in it.
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class GridSettings:
    h3_resolution: int = 12
    district: str = "620105"


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    inbound_queue: int = 256
    inbound_max_bytes: int = 32 * 1024 * 1024
    persist_queue: int = 1024
    persist_batch_rows: int = 20000
    persist_flush_ms: int = 200
    broadcast_tick_ms: int = 25
    client_queue_devices: int = 100000
    dead_letter_sample_per_min: int = 60
    max_devices: int = 100000


@dataclass(frozen=True, slots=True)
class HandsetSettings:
    max_payload_bytes: int = 65536
    max_batch: int = 500
    max_future_s: float = 300.0
    max_age_s: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class OwnTracksSettings:
    enabled: bool = True
    topic: str = "owntracks/#"
    devices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FilterSettings:
    enabled: tuple[str, ...] = ("duplicate", "accuracy", "speed", "drift")
    max_accuracy_m: float = 150.0
    max_speed_collector_kmh: float = 43.0
    max_speed_vehicle_kmh: float = 180.0
    max_speed_sensor_kmh: float = 7.0
    drift_m: float = 15.0
    drift_classes: tuple[str, ...] = ("sensor",)
    duplicate_window: int = 256


@dataclass(frozen=True, slots=True)
class SensorSettings:
    silent_after_s: float = 1800.0
    watchdog_s: float = 1.0
    tilt_threshold_deg: float = 10.0
    tilt_debounce_ms: int = 2000
    bin_full_pct: float = 80.0
    waterlog_alarm_cm: float = 15.0
    low_battery_pct: float = 20.0
    flap_toggles: int = 6
    flap_window_s: float = 600.0
    flap_quiet_s: float = 900.0


@dataclass(frozen=True, slots=True)
class Jt808Config(Jt808Settings):
    """[jt808]: the gateway's settings, with the service's port, and whether it runs.
    ``speed_limit_kmh``: the limit the terminals are set to raise overspeed at (their
    parameter 0x0055), stored with each overspeed alarm beside the speed reported."""

    port: int = 6808
    enabled: bool = True
    speed_limit_kmh: float = 60.0


@dataclass(frozen=True, slots=True)
class LiveSettings:
    """[live]: how the map judges a device online, by class: heard from (any message:
    position, status, alarm, reading) within this many seconds. A sensor that sits still
    and reports its status every 10 minutes is online; a handset reports every few seconds."""

    online_collector_s: float = 300.0
    online_vehicle_s: float = 300.0
    online_sensor_s: float = 1800.0

    def online_s(self) -> dict[str, float]:
        return {"collector": self.online_collector_s, "vehicle": self.online_vehicle_s, "sensor": self.online_sensor_s}


@dataclass(frozen=True, slots=True)
class PatrolSettings:
    enabled: bool = True
    evaluate_s: float = 30.0
    checkpoint_s: float = 300.0
    replay_hours: float = 26.0
    retention_hours: float = 48.0
    min_cell_share: float = 0.6
    passes_required: int = 1
    pass_gap_min: float = 30.0
    max_unvisited_min: float = 0.0
    max_acc_m: float = 50.0
    offline_min: float = 15.0
    off_grid_min: float = 15.0
    stationary_min: float = 30.0
    stationary_radius_m: float = 30.0
    battery_low_pct: float = 20.0
    warning_lead_min: float = 30.0
    not_started_min: float = 15.0
    # "kind=severity" pairs over alerts/messages.toml's, e.g. "offline=critical"
    alert_severity: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    tile_url: str = ""
    map_datum: str = "wgs84"
    basemap: str = "none"
    tianditu_key: str = ""
    custom_url: str = ""
    custom_datum: str = "wgs84"
    center: tuple[float, ...] = (36.1046, 103.7191)
    zoom: int = 15
    track_max_points: int = 20000
    max_body_bytes: int = 4 << 20
    allowed_hosts: tuple[str, ...] = ()
    public_name: str = ""
    ws_snapshot_devices: int = 500
    ws_max_unsent_bytes: int = 8 << 20
    send_stall_s: float = 30.0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    session_hours: float = 12.0
    cookie_secure: bool = False
    slow_after: int = 3
    slow_s: float = 2.0
    lock_after: int = 10
    lock_s: float = 900.0
    cache_s: float = 5.0
    cache_entries: int = 10000
    metrics_token: str = ""


@dataclass(frozen=True, slots=True)
class DemoSettings:
    state_dir: str = ".state"
    mqtt_port: int = 0
    pg_port: int = 0
    web_port: int = 8080
    collectors: int = 48  # one per community of the demo city
    vehicles: int = 6
    sensors: int = 12
    interval_s: float = 2.0


@dataclass(frozen=True, slots=True)
class RetentionSettings:
    pings_days: int = 400
    filtered_fixes_days: int = 30
    dead_letters_days: int = 14
    sensor_readings_days: int = 30
    sessions_days: int = 30
    check_s: float = 3600.0
    delete_batch: int = 5000


@dataclass(frozen=True, slots=True)
class HealthSettings:
    max_persist_lag_s: float = 30.0
    database_probe_s: float = 5.0


class Unregistered(enum.StrEnum):
    REFUSE = "refuse"  # count and drop payloads of devices the registry does not know
    ACCEPT = "accept"  # let them through (known devices are still held to their registration)


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    unregistered: Unregistered = Unregistered.REFUSE
    refresh_s: float = 2.0
    # the broker account that manages the others over $CONTROL/dynamic-security/v1:
    # not the ingest account ([mqtt] username), which may not touch accounts
    control_username: str = "gridwatch-control"
    control_password: str = ""
    control_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class CasesSettings:
    """Cases: the working-time calendar their limits run on, warnings and escalation."""

    enabled: bool = True
    zone: str = "Asia/Shanghai"
    office_hours: tuple[str, ...] = ("08:30-12:00", "14:00-18:00")
    days_on: tuple[str, ...] = ()  # local working days (YYYY-MM-DD) over the statutory schedule
    days_off: tuple[str, ...] = ()  # local days off
    warn_share: float = 0.8
    escalate_after_min: float = 30.0
    watch_max_s: float = 60.0  # the deadline watcher looks at least this often
    taxonomy: str = ""  # a taxonomy file loaded at start when the database holds none ("": none)
    # Which alarms open cases: "source:kind" (the category of the sensor's component code)
    # or "source:kind=CATEGORY", a trailing "!" makes them urgent whatever the category says.
    alarm_rules: tuple[str, ...] = ("sensor:tilt", "sensor:full=C0306", "sensor:waterlog=E0404",
                                    "vehicle:overspeed=E0406")
    intake_poll_s: float = 1.0  # the alarm outbox is looked at this often (and at once when an alarm is stored)
    intake_batch: int = 100  # alarm events taken per transaction
    arrival_radius_m: float = 50.0  # a verifier this close to the case (or in its unit grid) has arrived

    def rules(self) -> list[AlarmRule]:
        """The alarm rules; raises ``ValueError`` naming a malformed one."""
        rules = []
        for text in self.alarm_rules:
            spec = text.strip()
            urgent = spec.endswith("!") or None
            spec = spec.rstrip("!")
            head, eq, category = spec.partition("=")
            source, sep, kind = head.partition(":")
            if not sep or source not in ("sensor", "vehicle") or not kind.strip() or (eq and not category.strip()):
                raise ValueError(f"alarm_rules: {text!r} is not sensor|vehicle:KIND[=CATEGORY][!]")
            rules.append(AlarmRule(source, kind.strip(), category.strip() or None, urgent))
        rules_by_key(rules)
        return rules

    def calendar(self) -> WorkCalendar:
        """The working-time calendar; raises ``ValueError`` saying what is wrong."""
        try:
            zone = ZoneInfo(self.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"zone: unknown time zone {self.zone!r}") from None
        spans = []
        for span in self.office_hours:
            start, sep, end = span.partition("-")
            try:
                if not sep:
                    raise ValueError
                spans.append((time.fromisoformat(start.strip()), time.fromisoformat(end.strip())))
            except ValueError:
                raise ValueError(f"office_hours: {span!r} is not HH:MM-HH:MM") from None
        overrides: dict[date, bool] = {}
        for key, days, working in (("days_on", self.days_on, True), ("days_off", self.days_off, False)):
            for day in days:
                try:
                    parsed = date.fromisoformat(day)
                except ValueError:
                    raise ValueError(f"{key}: {day!r} is not a date (YYYY-MM-DD)") from None
                if parsed in overrides:
                    raise ValueError(f"{day} is both in days_on and days_off")
                overrides[parsed] = working
        return WorkCalendar(zone, tuple(spans), overrides)


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "INFO"


@dataclass(frozen=True, slots=True)
class Settings:
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    city: CitySettings = field(default_factory=CitySettings)
    grid: GridSettings = field(default_factory=GridSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    handset: HandsetSettings = field(default_factory=HandsetSettings)
    owntracks: OwnTracksSettings = field(default_factory=OwnTracksSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    sensors: SensorSettings = field(default_factory=SensorSettings)
    jt808: Jt808Config = field(default_factory=Jt808Config)
    patrol: PatrolSettings = field(default_factory=PatrolSettings)
    web: WebSettings = field(default_factory=WebSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    cases: CasesSettings = field(default_factory=CasesSettings)
    log: LogSettings = field(default_factory=LogSettings)
    live: LiveSettings = field(default_factory=LiveSettings)

    def replace(self, section: str, **values) -> Settings:
        """A copy with some keys of one section changed (used by `demo` and tests)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **values)})


def _coerce(where: str, hint: object, value: object) -> object:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    elif isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        try:
            return hint(typing.cast(str, value))  # a value of no member raises ValueError below
        except ValueError:
            raise ConfigError(f"{where}: must be {' or '.join(member.value for member in hint)}") from None
    elif hint == bytes | None:
        # a secret given as text; empty: none given
        if isinstance(value, str):
            return value.encode() or None
    elif origin is tuple:
        (item_hint, _ellipsis) = typing.get_args(hint)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list):
            return tuple(_coerce(f"{where}[{i}]", item_hint, v) for i, v in enumerate(value))
    raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _section(name: str, cls: type, raw: dict) -> dict[str, object]:
    """Every key of a section: its default, or the value given, coerced to the key's type."""
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    names = {f.name for f in fields}
    for key in raw:
        if key not in names:
            raise ConfigError(f"unknown key [{name}] {key!r} (known: {', '.join(sorted(names))})")
    values = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory() for f in fields}
    values.update({key: _coerce(f"[{name}] {key}", hints[key], value) for key, value in raw.items()})
    return values


def load(path: str | os.PathLike | None = None, environ: typing.Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (none: defaults only), apply env overrides, validate."""
    environ = os.environ if environ is None else environ
    raw: dict[str, dict] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    for key in raw:
        if key not in sections:
            raise ConfigError(f"unknown section [{key}] (known: {', '.join(sorted(sections))})")
        if not isinstance(raw[key], dict):
            raise ConfigError(f"[{key}] must be a table")
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var[len(ENV_PREFIX):]:
            continue
        section, _, key = var[len(ENV_PREFIX):].lower().partition("__")
        if section not in sections:
            if section in ("config",):
                continue
            raise ConfigError(f"{var}: unknown section [{section}]")
        raw.setdefault(section, {})[key] = value
    classes = typing.get_type_hints(Settings)
    values = {name: _section(name, classes[name], raw.get(name, {})) for name in sections}
    # checked before the sections are built: a section's own checks do not name the key
    _validate(types.SimpleNamespace(**{name: types.SimpleNamespace(**v) for name, v in values.items()}))
    built = {}
    for name, v in values.items():
        try:
            built[name] = classes[name](**v)
        except ValueError as exc:
            raise ConfigError(f"[{name}] {exc}") from None
    return Settings(**built)


def _validate(s: types.SimpleNamespace) -> None:
    """Check the values of every section (namespaces of the keys, by section)."""
    def need(ok: bool, key: str, why: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: {why}")

    need(0 <= s.mqtt.port <= 65535, "[mqtt] port", "must be 0..65535")
    need(s.mqtt.qos in (0, 1), "[mqtt] qos", "must be 0 or 1")
    need(s.mqtt.clean_session or s.mqtt.client_id != "", "[mqtt] client_id", "must not be empty (the broker keeps the session under it)")
    need(s.mqtt.subscriptions != (), "[mqtt] subscriptions", "must name at least one topic filter")
    need(0 < s.mqtt.reconnect_min_s <= s.mqtt.reconnect_max_s, "[mqtt] reconnect_min_s", "must be > 0 and <= reconnect_max_s")
    need(1 <= s.database.pool_min <= s.database.pool_max, "[database] pool_min", "must be >= 1 and <= pool_max")
    need(s.database.command_timeout_s > 0, "[database] command_timeout_s", "must be > 0")
    need(0 < s.database.retry_first_s <= s.database.retry_max_s, "[database] retry_first_s", "must be > 0 and <= retry_max_s")
    need(s.health.max_persist_lag_s > 0 and s.health.database_probe_s > 0, "[health] max_persist_lag_s",
         "and database_probe_s must be > 0")
    need(_known_zone(s.city.timezone), "[city] timezone", f"must be an IANA time zone (e.g. Asia/Shanghai), got {s.city.timezone!r}")
    need(0 <= s.grid.h3_resolution <= 15, "[grid] h3_resolution", "must be 0..15")
    need(len(s.grid.district) == 6 and s.grid.district.isdigit(), "[grid] district", "must be a 6-digit admin code")
    for key in ("inbound_queue", "inbound_max_bytes", "persist_queue", "persist_batch_rows", "persist_flush_ms", "broadcast_tick_ms",
                "client_queue_devices", "max_devices"):
        need(getattr(s.pipeline, key) > 0, f"[pipeline] {key}", "must be > 0")
    need(s.handset.max_payload_bytes > 0, "[handset] max_payload_bytes", "must be > 0")
    need(s.handset.max_batch > 0, "[handset] max_batch", "must be > 0")
    need(len(s.web.center) == 2 and -90 <= s.web.center[0] <= 90 and -180 <= s.web.center[1] <= 180, "[web] center", "must be [lat, lon]")
    need(0 <= s.web.port <= 65535, "[web] port", "must be 0..65535")
    need(s.web.max_body_bytes > 0, "[web] max_body_bytes", "must be > 0")
    need(s.web.ws_snapshot_devices > 0, "[web] ws_snapshot_devices", "must be > 0")
    need(s.web.send_stall_s > 0, "[web] send_stall_s", "must be > 0")
    need(s.web.ws_max_unsent_bytes > 0, "[web] ws_max_unsent_bytes", "must be > 0")
    need(all(h.strip() == h and h for h in s.web.allowed_hosts), "[web] allowed_hosts", "must be host names, \"*\" or \"*.domain\"")
    need(s.web.map_datum in ("wgs84", "gcj02", "bd09"), "[web] map_datum", "must be wgs84, gcj02 or bd09")
    need(s.web.basemap in ("none", "tianditu", "amap", "custom"), "[web] basemap", "must be none, tianditu, amap or custom")
    need(s.web.basemap != "tianditu" or (s.web.tianditu_key.strip().isalnum()), "[web] tianditu_key",
         "must be the Tianditu key (letters and digits) when basemap = \"tianditu\"")
    need(s.web.basemap != "custom" or all(p in s.web.custom_url for p in ("{z}", "{x}", "{y}")), "[web] custom_url",
         "must be a tile URL template with {z}, {x} and {y} when basemap = \"custom\"")
    need(s.web.custom_datum in ("wgs84", "cgcs2000", "gcj02"), "[web] custom_datum", "must be wgs84, cgcs2000 or gcj02")
    need(s.log.level.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"), "[log] level", "must be DEBUG, INFO, WARNING or ERROR")
    need(s.auth.session_hours > 0, "[auth] session_hours", "must be > 0")
    need(1 <= s.auth.slow_after <= s.auth.lock_after, "[auth] slow_after", "must be >= 1 and <= lock_after")
    need(s.auth.slow_s >= 0 and s.auth.lock_s > 0, "[auth] lock_s", "must be > 0 (and slow_s >= 0)")
    need(s.auth.cache_s >= 0 and s.auth.cache_entries > 0, "[auth] cache_s", "must be >= 0 (and cache_entries > 0)")
    need(s.auth.metrics_token == "" or len(s.auth.metrics_token) >= 16, "[auth] metrics_token",
         "must be empty or at least 16 characters")
    need(s.demo.interval_s > 0, "[demo] interval_s", "must be > 0")
    unknown = set(s.filters.enabled) - {"duplicate", "accuracy", "speed", "drift"}
    need(not unknown, "[filters] enabled", f"unknown filter(s) {sorted(unknown)}; known: duplicate, accuracy, speed, drift")
    need(set(s.filters.drift_classes) <= {"collector", "vehicle", "sensor"}, "[filters] drift_classes", "must be collector, vehicle or sensor")
    for entry in s.owntracks.devices:
        source, sep, device = entry.partition("=")
        need(bool(sep) and source.count("/") == 1 and bool(device.strip()), "[owntracks] devices", f"{entry!r} is not user/device=device_id")
    need(0 <= s.jt808.port <= 65535, "[jt808] port", "must be 0..65535")
    need(len(s.jt808.district) == 6 and s.jt808.district.isdigit(), "[jt808] district", "must be a 6-digit admin code")
    for key in ("idle_timeout_s", "send_timeout_s", "auth_timeout_s", "max_connections", "max_connections_per_address",
                "max_frame_bytes", "receive_bytes"):
        need(getattr(s.jt808, key) > 0, f"[jt808] {key}", "must be > 0")
    need(s.patrol.evaluate_s > 0 and s.patrol.checkpoint_s > 0, "[patrol] evaluate_s", "and checkpoint_s must be > 0")
    need(0.0 <= s.patrol.min_cell_share <= 1.0, "[patrol] min_cell_share", "must be between 0 and 1")
    try:
        configured_catalogue(tuple(s.patrol.alert_severity))
    except ValueError as exc:
        raise ConfigError(f"[patrol] alert_severity: {exc}") from None
    need(s.patrol.passes_required >= 0, "[patrol] passes_required", "must be >= 0")
    for key in ("online_collector_s", "online_vehicle_s", "online_sensor_s"):
        need(getattr(s.live, key) > 0, f"[live] {key}", "must be > 0")
    need(s.jt808.speed_limit_kmh > 0, "[jt808] speed_limit_kmh", "must be > 0")
    for key in ("pings_days", "filtered_fixes_days", "dead_letters_days", "sensor_readings_days", "sessions_days"):
        need(getattr(s.retention, key) >= 0, f"[retention] {key}", "must be >= 0 (0: keep forever)")
    need(s.retention.check_s > 0 and s.retention.delete_batch > 0, "[retention] check_s", "and delete_batch must be > 0")
    need(s.registry.refresh_s > 0 and s.registry.control_timeout_s > 0, "[registry] refresh_s",
         "and control_timeout_s must be > 0")
    need(s.registry.control_username != s.mqtt.username, "[registry] control_username",
         "must not be the ingest account ([mqtt] username): only the control account may change accounts")
    need(0 < s.cases.warn_share <= 1, "[cases] warn_share", "must be in (0, 1]")
    need(s.cases.escalate_after_min > 0 and s.cases.watch_max_s > 0, "[cases] escalate_after_min",
         "and watch_max_s must be > 0")
    need(s.cases.intake_poll_s > 0 and s.cases.intake_batch > 0 and s.cases.arrival_radius_m > 0,
         "[cases] intake_poll_s", "intake_batch and arrival_radius_m must be > 0")
    try:
        cases = CasesSettings(**vars(s.cases))
        cases.calendar()
        cases.rules()
    except ValueError as exc:
        raise ConfigError(f"[cases] {exc}") from None
    need(s.sensors.silent_after_s > 0 and s.sensors.watchdog_s > 0, "[sensors] silent_after_s", "and watchdog_s must be > 0")


def _known_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
