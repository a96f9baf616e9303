"""All SQL, behind one object. The only module that knows asyncpg runs on asyncio.

Every public method is a trio coroutine. Each runs one whole acquire-query-release as a
single asyncio coroutine through trio-asyncio: a trio cancellation arriving inside
``pool.acquire()`` would otherwise leak the connection and make ``pool.close()`` hang.

Over the house's ~500 lines on purpose: the house keeps all SQL behind this one edge, so
a reader finds every statement the service runs, and the asyncio bridge and its retry
rules, in one place.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import TypeVar, cast

import asyncpg
import trio
import trio_asyncio

from protocols.epoch import datetime_to_ms, ms_to_datetime
from tracker.storage.audit import AuditEntry
from tracker.storage.retry import DatabaseState

log = logging.getLogger(__name__)
T = TypeVar("T")

DAY_MS = 86_400_000
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL counts timestamps from here
_PG_EPOCH_MS = 946_684_800_000

# Ping rows carry ``t`` and ``rx`` as epoch milliseconds (int), as the pipeline has them,
# and follow the order of a Fix's fields, so the pipeline builds a row by slicing its fix.
PING_COLUMNS = ("device", "t", "lat", "lon", "rx", "acc", "spd", "hdg", "alt", "bat", "crs", "seq", "cell", "grid", "late")
FILTERED_COLUMNS = ("device", "t", "rx", "lat", "lon", "acc", "spd", "seq", "reason")
ALARM_COLUMNS = ("source", "device", "component", "kind", "raised", "t", "value", "detail", "lat", "lon", "grid", "alarm_limit")
# a sensor record as sensor_readings stores it
READING_COLUMNS = ("device", "t", "rx", "component", "kind", "tilt", "water", "gas", "smoke", "fill", "level", "bat")


def _timestamptz_to_pg(value: int | datetime) -> tuple[int]:
    """Encode a timestamptz from epoch milliseconds (or an aware datetime) as PostgreSQL's
    microseconds since 2000. asyncpg's own datetime encoder costs about 2 µs per value on
    this hardware, two per ping: at 100,000 pings/s that alone would be 40% of a core."""
    if type(value) is int:
        return ((value - _PG_EPOCH_MS) * 1000,)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return ((value - _PG_EPOCH) // timedelta(microseconds=1),)
    raise TypeError(f"timestamptz wants epoch milliseconds (int) or an aware datetime, got {value!r}")


def _timestamptz_from_pg(value: tuple[int]) -> datetime:
    return _PG_EPOCH + timedelta(microseconds=value[0])


async def _writer_codecs(con: asyncpg.Connection) -> None:
    await con.set_type_codec("timestamptz", schema="pg_catalog", format="tuple",
                             encoder=_timestamptz_to_pg, decoder=_timestamptz_from_pg)
    # a ping batch holding rows already stored (a message delivered again) is COPied
    # here, then moved into pings skipping those: COPY itself cannot skip a conflict
    await con.execute(_CREATE_PINGS_STAGING)


def _json_or_null(value: object) -> str | None:
    """``value`` as the text of a jsonb (see ``_storable``)."""
    return None if value is None else json.dumps(_storable(value), ensure_ascii=False, default=str, sort_keys=True)


def _storable(value: object) -> object:
    """What a client sent, as PostgreSQL will take it: NaN and Infinity (which Python writes
    and json refuses) as their names, and NUL characters (which text and jsonb refuse) as
    U+FFFD."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {_text(str(key)): _storable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(item) for item in value]
    return value


def _text(value: str) -> str:
    return value.replace("\x00", "\ufffd")


# what a registration is made of (the table's other columns are the database's own)
REGISTRY_COLUMNS = ("id", "class", "district", "name", "person", "plate", "phone", "terminal_id", "component", "enabled")


class RegistryConflict(ValueError):
    """A device's id, phone or component code is registered already; ``column`` says which."""

    def __init__(self, column: str) -> None:
        super().__init__(f"a device with this {column} is registered already")
        self.column = column


class StoreError(RuntimeError):
    """The database refused an operation the service relies on."""


class AccountExists(ValueError):
    """An account of that name exists already."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every file in tracker/storage/migrations, in order."""
    found = []
    for entry in resources.files("tracker.storage.migrations").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _retried(method: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """Run a store method through the store's ``retry`` (when the service set one): the
    write path and what background tasks read wait out an outage instead of failing.
    One-shot commands and the web's own reads keep failing fast."""

    @functools.wraps(method)
    async def retried(self: Store, *args, **kwargs):
        if self.retry is None:
            return await method(self, *args, **kwargs)
        return await self.retry.retrying(method.__name__, method, self, *args, **kwargs)

    return retried


class Store:
    # set by the service: retries the methods marked @_retried through database outages
    retry: DatabaseState | None = None

    def __init__(self, pool: asyncpg.Pool, loop, writer: asyncpg.Pool) -> None:
        self._pool = pool
        # ping batches go through a connection of their own whose timestamptz codec takes
        # epoch milliseconds (see open_store); every other query keeps asyncpg's datetimes
        self._writer = writer
        # the bridge loop is bound explicitly: any trio task may use the store, not only
        # the one that opened it (trio-asyncio finds its loop through a context variable)
        self._loop = loop
        self._partitions: set[int] = set()

    async def _run(self, fn, *args):
        return await trio_asyncio.aio_as_trio(fn, loop=self._loop)(*args)

    async def _on_connection(self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, transaction: bool = False) -> T:
        """``work(con)`` on a connection of the pool (in one transaction if asked): acquire,
        run and release as one asyncio coroutine (see the module's docstring)."""

        async def op() -> T:
            async with self._pool.acquire() as proxy:
                con = cast(asyncpg.Connection, proxy)  # the pool's proxy forwards every Connection method
                if not transaction:
                    return await work(con)
                async with con.transaction():
                    return await work(con)

        return await self._run(op)

    # --- schema ---------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply pending migrations in order, each in its own transaction; return them."""

        async def work(con: asyncpg.Connection) -> list[str]:
            applied = []
            await con.execute("SELECT pg_advisory_lock(7220105)")
            try:
                await con.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = {r["version"] for r in await con.fetch("SELECT version FROM schema_version")}
                for version, name, sql in migrations():
                    if version in done:
                        continue
                    async with con.transaction():
                        await con.execute(sql)
                        await con.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)", version, name)
                    applied.append(name)
            finally:
                await con.execute("SELECT pg_advisory_unlock(7220105)")
            return applied

        return await self._on_connection(work)

    @_retried
    async def schema_version(self) -> int:
        return await self._on_connection(lambda con: con.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))

    async def fetch(self, query: str, *args) -> list[asyncpg.Record]:
        """Read-only ad-hoc query (reports, tests)."""
        return await self._on_connection(lambda con: con.fetch(query, *args))

    # --- positions ------------------------------------------------------------------

    @_retried
    async def write_pings(self, rows: Sequence[tuple], days: Iterable[int], devices: Sequence[tuple],
                          filtered: Sequence[tuple] = (), alarms: Sequence[tuple] = (), components: Sequence[tuple] = ()) -> int:
        """In one transaction: COPY ping rows (PING_COLUMNS order), upsert the devices'
        last positions, insert refused fixes and alarm events. Returns how many ping rows
        were new.

        Idempotent: a ping already stored (same device and fix time), a refused fix
        already stored (same device, fix time and reason) and an alarm event already
        stored (same source, device, kind, time and edge) are skipped, so a message the
        broker delivers again stores nothing twice.

        ``days`` are the UTC day numbers (t_ms // DAY_MS) the rows fall in, so missing
        partitions are created first; ``devices`` rows are (id, class, district, t, rx,
        lat, lon, acc, spd, hdg, bat, cell, grid), newest per device; ``filtered`` rows
        are FILTERED_COLUMNS; ``alarms`` rows are ALARM_COLUMNS; ``components`` are
        (code, device, lat, lon, grid) sensor bindings.
        """
        missing = sorted(set(days) - self._partitions)

        async def op() -> int:
            inserted = 0
            async with self._writer.acquire() as con:
                for day in missing:
                    start = ms_to_datetime(day * DAY_MS)
                    name = f"pings_{start:%Y%m%d}"
                    await con.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF pings "
                        f"FOR VALUES FROM ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
                    )
                async with con.transaction():
                    if rows:
                        # COPY straight in, under a savepoint; should any row be stored
                        # already (a redelivered message), undo that and go through the
                        # staging table, skipping what is there. COPY with a savepoint
                        # writes twice as fast as staging every batch (20,000-row batches).
                        try:
                            async with con.transaction():
                                await con.copy_records_to_table("pings", records=rows, columns=PING_COLUMNS)
                            inserted = len(rows)
                        except asyncpg.UniqueViolationError:
                            await con.copy_records_to_table(_PINGS_STAGING, records=rows, columns=PING_COLUMNS)
                            inserted = int((await con.execute(_MOVE_STAGED_PINGS)).split()[-1])
                    if devices:
                        await con.execute(_UPSERT_DEVICES, *(list(column) for column in zip(*devices, strict=True)))
                    if filtered:
                        await con.execute(_INSERT_FILTERED, *(list(column) for column in zip(*filtered, strict=True)))
                    if alarms:
                        await con.execute(_INSERT_ALARMS, *_alarm_columns(alarms))
                    if components:
                        # a sensor moved to another component gives up its old binding first
                        await con.execute("UPDATE components SET device = NULL WHERE device = ANY($1::text[]) AND NOT code = ANY($2::text[])",
                                          [c[1] for c in components], [c[0] for c in components])
                        await con.executemany(
                            "INSERT INTO components (code, device, lat, lon, grid) VALUES ($1, $2, $3, $4, $5) "
                            "ON CONFLICT (code) DO UPDATE SET device = excluded.device, lat = coalesce(excluded.lat, components.lat), "
                            "lon = coalesce(excluded.lon, components.lon), grid = coalesce(excluded.grid, components.grid), updated_at = now()",
                            components)
            return inserted

        inserted = await self._run(op)
        self._partitions.update(missing)
        return inserted

    async def track(self, device: str, start: datetime, end: datetime, limit: int,
                    district: str | None = None) -> list[asyncpg.Record]:
        """Fixes of ``device`` in [start, end]; none when ``district`` is given and the
        device is not of it."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT t, lat, lon FROM pings WHERE device = $1 AND t >= $2 AND t <= $3"
            f" AND {_DEVICE_IN_DISTRICT.format(device='$1', district='$5')} ORDER BY t LIMIT $4",
            device, start, end, limit, district))

    async def has_device(self, device: str, district: str | None = None) -> bool:
        """Whether the device was ever heard from (and, given ``district``, is of it)."""
        async def op() -> bool:
            async with self._pool.acquire() as con:
                return await con.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM devices WHERE id = $1 AND ($2::text IS NULL OR district = $2))",
                    device, district)

        return await self._run(op)

    @_retried
    async def devices(self) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch("SELECT * FROM devices ORDER BY id"))

    # --- grids ----------------------------------------------------------------------

    async def import_grids(self, streets: Sequence[tuple], communities: Sequence[tuple], grids: Sequence[tuple], cells: Sequence[tuple]) -> None:
        """Insert or update streets (code, district, name), communities (code, street,
        name), grids (code, district, street, community, name, geometry, source_geometry,
        source_crs, area_m2) and replace the H3 cover of those grids (cell, grid, res),
        all in one transaction."""

        async def work(con: asyncpg.Connection) -> None:
            await con.executemany(
                "INSERT INTO streets (code, district, name) VALUES ($1, $2, $3) "
                "ON CONFLICT (code) DO UPDATE SET district = excluded.district, name = excluded.name",
                streets,
            )
            await con.executemany(
                "INSERT INTO communities (code, street, name) VALUES ($1, $2, $3) "
                "ON CONFLICT (code) DO UPDATE SET street = excluded.street, name = excluded.name",
                communities,
            )
            await con.executemany(
                "INSERT INTO grids (code, district, street, community, name, geometry, source_geometry, source_crs, area_m2) "
                "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9) "
                "ON CONFLICT (code) DO UPDATE SET district = excluded.district, street = excluded.street, "
                "community = excluded.community, name = excluded.name, geometry = excluded.geometry, "
                "source_geometry = excluded.source_geometry, source_crs = excluded.source_crs, "
                "area_m2 = excluded.area_m2, imported_at = now()",
                [(*g[:5], json.dumps(g[5]), json.dumps(g[6]), *g[7:]) for g in grids],
            )
            await con.execute("DELETE FROM grid_cells WHERE grid = ANY($1::text[])", [g[0] for g in grids])
            # a re-import may move cells between grids: the incoming cover wins
            await con.execute("DELETE FROM grid_cells WHERE cell = ANY($1::bigint[])", [c[0] for c in cells])
            await con.copy_records_to_table("grid_cells", records=cells, columns=("cell", "grid", "resolution"))

        await self._on_connection(work, transaction=True)

    @_retried
    async def grid_cells(self) -> list[tuple[int, str]]:
        rows = await self._on_connection(lambda con: con.fetch("SELECT cell, grid FROM grid_cells"))
        return [(r["cell"], r["grid"]) for r in rows]

    @_retried
    async def grids(self) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch(
            "SELECT g.code, g.district, g.street, s.name AS street_name, g.community, c.name AS community_name, "
            "g.name, g.geometry::text AS geometry, g.source_geometry::text AS source_geometry, g.source_crs, g.area_m2 "
            "FROM grids g JOIN streets s ON s.code = g.street JOIN communities c ON c.code = g.community "
            "ORDER BY g.code"))

    # --- patrol -----------------------------------------------------------------------

    async def save_plan(self, plan: dict, note: str = "") -> int:
        text = json.dumps(plan, ensure_ascii=False)
        return await self._on_connection(lambda con: con.fetchval(
            "INSERT INTO patrol_plans (plan, note) VALUES ($1::jsonb, $2) RETURNING version", text, note))

    @_retried
    async def latest_plan(self) -> tuple[int, dict] | None:
        row = await self._on_connection(lambda con: con.fetchrow(
            "SELECT version, plan::text AS plan FROM patrol_plans ORDER BY version DESC LIMIT 1"))
        return None if row is None else (row["version"], json.loads(row["plan"]))

    @_retried
    async def record_patrol_alerts(self, rows: Sequence[tuple]) -> None:
        """Upsert alert episodes: (kind, collector, slot_id, area, grid, slot_start,
        slot_end, raised_at, updated_at, resolved_at, resolution, detail, text)."""
        records = [(*r[:11], json.dumps(r[11], ensure_ascii=False), r[12]) for r in rows]
        await self._on_connection(lambda con: con.executemany(
            "INSERT INTO patrol_alerts (kind, collector, slot_id, area, grid, slot_start, slot_end, raised_at, updated_at, "
            "resolved_at, resolution, detail, text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13) "
            "ON CONFLICT (kind, collector, slot_id, coalesce(grid, ''), raised_at) DO UPDATE SET "
            "updated_at = excluded.updated_at, resolved_at = excluded.resolved_at, resolution = excluded.resolution, "
            "detail = excluded.detail, text = excluded.text",
            records))

    @_retried
    async def patrol_alert_ids(self, keys: Sequence[tuple]) -> list[int]:
        """Ids of episodes by (kind, collector, slot_id, grid, raised_at)."""

        async def work(con: asyncpg.Connection) -> list[int]:
            return [await con.fetchval(
                "SELECT id FROM patrol_alerts WHERE kind = $1 AND collector = $2 AND slot_id = $3 "
                "AND coalesce(grid, '') = coalesce($4, '') AND raised_at = $5", *k) for k in keys]

        return await self._on_connection(work)

    async def patrol_alerts(self, open_only: bool, limit: int, district: str | None = None) -> list[asyncpg.Record]:
        """The newest alert episodes, of ``district`` only when given: an episode naming a
        unit grid is its grid's district's; one that names none (a collector who did not
        start, went offline...) is the district's of its area, whose grids the newest
        stored plan lists (a plan keeps each area inside one district)."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT id, kind, collector, slot_id, area, grid, slot_start, slot_end, raised_at, updated_at, resolved_at, "
            "resolution, detail::text AS detail, text FROM patrol_alerts WHERE "
            + ("resolved_at IS NULL AND " if open_only else "")
            + "($2::text IS NULL OR (CASE WHEN grid IS NOT NULL THEN grid LIKE $2 || '%' ELSE area IN ("
            "SELECT a.key FROM jsonb_each((SELECT plan -> 'areas' FROM patrol_plans ORDER BY version DESC LIMIT 1)) a "
            "WHERE a.value -> 'grids' ->> 0 LIKE $2 || '%') END)) ORDER BY raised_at DESC, id DESC LIMIT $1",
            limit, district))

    @_retried
    async def close_open_patrol_alerts(self, at: datetime, resolution: str) -> int:
        """Resolve every open episode (the engine that raised them is gone); return how many."""
        done = await self._on_connection(lambda con: con.execute(
            "UPDATE patrol_alerts SET resolved_at = $1, resolution = $2, updated_at = $1 WHERE resolved_at IS NULL", at, resolution))
        return int(done.split()[-1])

    @_retried
    async def save_checkpoint(self, state: dict) -> None:
        text = json.dumps(state)
        await self._on_connection(lambda con: con.execute(
            "INSERT INTO patrol_checkpoints (id, state) VALUES (1, $1::jsonb) "
            "ON CONFLICT (id) DO UPDATE SET state = excluded.state, saved_at = now()", text))

    @_retried
    async def load_checkpoint(self) -> dict | None:
        text = await self._on_connection(lambda con: con.fetchval("SELECT state::text FROM patrol_checkpoints WHERE id = 1"))
        return None if text is None else json.loads(text)

    async def pings_of(self, devices: Sequence[str], start: datetime, end: datetime) -> list[asyncpg.Record]:
        """Fixes of these devices in [start, end), in fix-time order (replay, reports)."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT device, t, rx, lat, lon, acc, bat, cell, grid FROM pings "
            "WHERE device = ANY($1::text[]) AND t >= $2 AND t < $3 ORDER BY t", list(devices), start, end))

    # --- dead letters ---------------------------------------------------------------

    @_retried
    async def add_dead_letters(self, rows: Sequence[tuple]) -> None:
        """rows: (at, protocol, source, device, reason, error, raw)."""
        await self._on_connection(lambda con: con.executemany(
            "INSERT INTO dead_letters (at, protocol, source, device, reason, error, raw) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            rows))

    async def components(self, code_prefix: str, limit: int, district: str | None = None) -> list[asyncpg.Record]:
        """Components whose code begins with ``code_prefix`` (and, given ``district``,
        with the district: a component code begins with its district's)."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT code, device, lat, lon, grid, updated_at FROM components WHERE code LIKE $1 || '%'"
            " AND ($3::text IS NULL OR code LIKE $3 || '%') ORDER BY code LIMIT $2",
            code_prefix, limit, district))

    async def alarm_events(self, limit: int = 100, district: str | None = None) -> list[asyncpg.Record]:
        """The newest alarm events, of ``district`` only when given (see ALARM_DISTRICT)."""
        return await self._on_connection(lambda con: con.fetch(
            f"SELECT * FROM alarm_events WHERE $2::text IS NULL OR {ALARM_DISTRICT} = $2 ORDER BY id DESC LIMIT $1",
            limit, district))

    async def dead_letters(self, limit: int = 100) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch("SELECT * FROM dead_letters ORDER BY id DESC LIMIT $1", limit))

    # --- audit trail ----------------------------------------------------------------

    @_retried
    async def append_audit(self, entry: AuditEntry) -> int:
        """Append one action to the audit trail (which refuses updates and deletes); its id."""
        return await self._on_connection(lambda con: con.fetchval(
            "INSERT INTO audit (actor, role, scope, source, action, target, outcome, before, after, detail)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10) RETURNING id",
            _text(entry.actor), entry.role, entry.scope, _text(entry.source), entry.action, _text(entry.target),
            entry.outcome, _json_or_null(entry.before), _json_or_null(entry.after), _text(entry.detail)))

    async def audit_entries(self, *, actor: str | None = None, action: str | None = None, target: str | None = None,
                            before_id: int | None = None, limit: int = 100) -> list[asyncpg.Record]:
        """The newest entries first, optionally of one actor, action (prefix) or target;
        ``before_id`` pages back."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT * FROM audit WHERE ($1::text IS NULL OR actor = $1) AND ($2::text IS NULL OR action LIKE $2 || '%')"
            " AND ($3::text IS NULL OR target = $3) AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
            actor, action, target, before_id, limit))

    # --- accounts -------------------------------------------------------------------
    # Accounts, browser sessions and API tokens (migration 0007). Secrets arrive hashed.

    async def add_account(self, name: str, role: str, district: str | None, password_hash: str,
                          device: str | None = None) -> int:
        """A new account; raises ``AccountExists`` when the name is taken."""
        try:
            return await self._on_connection(lambda con: con.fetchval(
                "INSERT INTO accounts (name, role, district, device, password_hash) VALUES ($1, $2, $3, $4, $5)"
                " RETURNING id", name, role, district, device, password_hash))
        except asyncpg.UniqueViolationError:
            raise AccountExists(f"an account named {name!r} exists") from None

    async def account(self, name: str) -> asyncpg.Record | None:
        return await self._on_connection(lambda con: con.fetchrow("SELECT * FROM accounts WHERE name = $1", name))

    async def accounts(self) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch(
            "SELECT a.*, (SELECT count(*) FROM api_tokens t WHERE t.account_id = a.id AND t.revoked_at IS NULL)"
            " AS tokens FROM accounts a ORDER BY a.name"))

    async def set_account_enabled(self, name: str, enabled: bool) -> asyncpg.Record | None:
        """Enable or disable; the account as it was before, None when there is none.
        Disabling also ends its sessions (its tokens stay, refused while it is disabled)."""

        async def work(con: asyncpg.Connection) -> asyncpg.Record | None:
            before = await con.fetchrow("SELECT * FROM accounts WHERE name = $1 FOR UPDATE", name)
            if before is not None:
                await con.execute("UPDATE accounts SET enabled = $2 WHERE id = $1", before["id"], enabled)
                if not enabled:
                    await con.execute("UPDATE sessions SET ended_at = now() WHERE account_id = $1 AND ended_at IS NULL",
                                      before["id"])
            return before

        return await self._on_connection(work, transaction=True)

    async def set_password(self, name: str, password_hash: str) -> int | None:
        """Change the password and end every session of the account; its id, None when
        there is none."""

        async def work(con: asyncpg.Connection) -> int | None:
            account_id = await con.fetchval("UPDATE accounts SET password_hash = $2, password_at = now() WHERE name = $1"
                                            " RETURNING id", name, password_hash)
            if account_id is not None:
                await con.execute("UPDATE sessions SET ended_at = now() WHERE account_id = $1 AND ended_at IS NULL",
                                  account_id)
            return account_id

        return await self._on_connection(work, transaction=True)

    async def start_session(self, account_id: int, secret_hash: bytes, csrf: str, source: str, created_at: datetime,
                            expires_at: datetime) -> int:
        return await self._on_connection(lambda con: con.fetchval(
            "INSERT INTO sessions (secret_hash, account_id, csrf, source, created_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            secret_hash, account_id, csrf, source, created_at, expires_at))

    async def session(self, secret_hash: bytes, now: datetime) -> asyncpg.Record | None:
        """The live session of this secret with its account (enabled), else None."""
        return await self._on_connection(lambda con: con.fetchrow(
            "SELECT s.id AS session_id, s.csrf, s.expires_at, a.id, a.name, a.role, a.district, a.device"
            " FROM sessions s JOIN accounts a ON a.id = s.account_id"
            " WHERE s.secret_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND a.enabled",
            secret_hash, now))

    async def end_session(self, secret_hash: bytes) -> bool:
        return bool(await self._on_connection(lambda con: con.fetchval(
            "UPDATE sessions SET ended_at = now() WHERE secret_hash = $1 AND ended_at IS NULL RETURNING id",
            secret_hash)))

    async def add_token(self, account_id: int, secret_hash: bytes, label: str) -> int:
        return await self._on_connection(lambda con: con.fetchval(
            "INSERT INTO api_tokens (secret_hash, account_id, label) VALUES ($1, $2, $3) RETURNING id",
            secret_hash, account_id, label))

    async def token(self, secret_hash: bytes) -> asyncpg.Record | None:
        """The unrevoked token of this secret with its account (enabled), else None."""
        return await self._on_connection(lambda con: con.fetchrow(
            "SELECT t.id AS token_id, a.id, a.name, a.role, a.district, a.device"
            " FROM api_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.secret_hash = $1 AND t.revoked_at IS NULL AND a.enabled", secret_hash))

    async def revoke_token(self, token_id: int) -> asyncpg.Record | None:
        """Revoke; the token (id, label, account name and id) as it was, None when there is
        none or it was revoked already."""
        return await self._on_connection(lambda con: con.fetchrow(
            "UPDATE api_tokens t SET revoked_at = now() FROM accounts a"
            " WHERE t.id = $1 AND t.revoked_at IS NULL AND a.id = t.account_id"
            " RETURNING t.id, t.label, t.account_id, a.name", token_id))

    async def tokens(self, account_id: int) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch(
            "SELECT id, label, created_at, revoked_at FROM api_tokens WHERE account_id = $1 ORDER BY id", account_id))

    # --- device registry ------------------------------------------------------------

    async def registered_devices(self) -> list[asyncpg.Record]:
        """Every registered device (REGISTRY_COLUMNS and its times), by id."""
        return await self._on_connection(lambda con: con.fetch("SELECT * FROM registered_devices ORDER BY id"))

    async def registered_device(self, device: str) -> asyncpg.Record | None:
        return await self._on_connection(lambda con: con.fetchrow("SELECT * FROM registered_devices WHERE id = $1", device))

    async def registry_version(self) -> tuple[int, datetime | None]:
        """(how many, newest change): what tells a cached copy of the registry it is stale."""
        row = await self._on_connection(lambda con: con.fetch("SELECT count(*) AS n, max(updated) AS at FROM registered_devices"))
        return row[0]["n"], row[0]["at"]

    async def register_device(self, row: Sequence) -> asyncpg.Record:
        """Insert one device (REGISTRY_COLUMNS); its row. Raises ``RegistryConflict``
        naming the column when the id, phone or component code is registered already."""
        columns = ", ".join(REGISTRY_COLUMNS)
        values = ", ".join(f"${n}" for n in range(1, len(REGISTRY_COLUMNS) + 1))
        try:
            rows = await self._on_connection(lambda con: con.fetch(
                f"INSERT INTO registered_devices ({columns}) VALUES ({values}) RETURNING *", *row))
            return rows[0]
        except asyncpg.UniqueViolationError as exc:
            constraint = exc.constraint_name or ""
            column = "id" if constraint.endswith("_pkey") else constraint.removeprefix("registered_devices_").removesuffix("_key")
            raise RegistryConflict(column) from None

    async def set_device_enabled(self, device: str, enabled: bool) -> asyncpg.Record | None:
        """Enable or disable a registered device; its row, None when not registered."""
        return await self._on_connection(lambda con: con.fetchrow(
            "UPDATE registered_devices SET enabled = $2, updated = clock_timestamp() WHERE id = $1 RETURNING *", device, enabled))

    async def device_rotated(self, device: str) -> asyncpg.Record | None:
        """Note that a device's password was replaced; its row, None when not registered."""
        return await self._on_connection(lambda con: con.fetchrow(
            "UPDATE registered_devices SET rotated = clock_timestamp(), updated = clock_timestamp() WHERE id = $1 RETURNING *",
            device))

    async def unregister_device(self, device: str) -> bool:
        """Remove a registration (a provisioning whose broker half failed); whether it was there."""
        return await self._on_connection(lambda con: con.fetchval(
            "WITH gone AS (DELETE FROM registered_devices WHERE id = $1 RETURNING 1) SELECT count(*) > 0 FROM gone", device))

    # --- alarm state ----------------------------------------------------------------

    @_retried
    async def record_alarms(self, alarms: Sequence[tuple], sensors: Sequence[tuple] = ()) -> None:
        """In one transaction: insert alarm events (ALARM_COLUMNS) and upsert the state of
        the sensors whose changes produced them, so that the outbox and the state a
        restart resumes from never disagree. ``sensors`` rows are (device, component,
        last_seen, silent, rules): ``rules`` a JSON-able dict. An event already stored
        (same source, device, kind, time and edge) is skipped."""

        async def op() -> None:
            async with self._pool.acquire() as con:
                async with con.transaction():
                    if alarms:
                        await con.execute(_INSERT_ALARMS, *_alarm_columns(alarms))
                    if sensors:
                        await con.executemany(
                            "INSERT INTO sensor_states (device, component, last_seen, silent, rules) VALUES ($1, $2, $3, $4, $5::jsonb) "
                            "ON CONFLICT (device) DO UPDATE SET component = excluded.component, last_seen = excluded.last_seen, "
                            "silent = excluded.silent, rules = excluded.rules, saved_at = now()",
                            [(*r[:4], json.dumps(r[4])) for r in sensors])

        await self._run(op)

    @_retried
    async def sensor_states(self) -> list[dict]:
        """Every saved sensor state: device, component, last_seen, silent, rules (a dict)."""

        async def op():
            async with self._pool.acquire() as con:
                return await con.fetch("SELECT device, component, last_seen, silent, rules::text AS rules FROM sensor_states ORDER BY device")

        rows = await self._run(op)
        return [dict(r, rules=json.loads(r["rules"])) for r in rows]

    @_retried
    async def latest_alarm_events(self, source: str) -> list[asyncpg.Record]:
        """The newest event of each (device, kind) from ``source``: device, component,
        kind, raised, t, value. Raised ones are the episodes still open."""

        async def op():
            async with self._pool.acquire() as con:
                return await con.fetch(
                    "SELECT DISTINCT ON (device, kind) device, component, kind, raised, t, value FROM alarm_events "
                    "WHERE source = $1 ORDER BY device, kind, id DESC", source)

        return await self._run(op)

    # --- cases ------------------------------------------------------------------------
    # Taxonomy versions, department members, cases and their append-only timeline
    # (migration 0009). A change of a case is decided by the caller's ``decide`` on the
    # row read FOR UPDATE, and written with its timeline entry and its audit entry in the
    # same transaction: a refused decision (it raises) changes nothing.

    async def save_taxonomy(self, label: str, city: str, example: bool, digest: str, source: str,
                            loaded_by: str) -> tuple[int, bool]:
        """Store a taxonomy file as a new version: (version, True); the newest version
        again when it is of the same text: (its version, False)."""

        async def work(con: asyncpg.Connection) -> tuple[int, bool]:
            await con.execute("LOCK TABLE taxonomies IN SHARE ROW EXCLUSIVE MODE")
            newest = await con.fetchrow("SELECT version, digest FROM taxonomies ORDER BY version DESC LIMIT 1")
            if newest is not None and newest["digest"] == digest:
                return newest["version"], False
            version = await con.fetchval(
                "INSERT INTO taxonomies (label, city, example, digest, source, loaded_by) VALUES ($1, $2, $3, $4, $5, $6)"
                " RETURNING version", label, city, example, digest, _text(source), loaded_by)
            return version, True

        return await self._on_connection(work, transaction=True)

    @_retried
    async def taxonomy(self, version: int | None = None) -> asyncpg.Record | None:
        """A stored taxonomy version (None: the newest), with its text in ``source``."""
        return await self._on_connection(lambda con: con.fetchrow(
            "SELECT * FROM taxonomies WHERE $1::int IS NULL OR version = $1 ORDER BY version DESC LIMIT 1", version))

    async def taxonomy_versions(self) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch(
            "SELECT version, label, city, example, digest, loaded_at, loaded_by FROM taxonomies ORDER BY version DESC"))

    async def add_department_member(self, department: str, account: str) -> bool:
        """False when the account was a member already; raises ``LookupError`` for no such account."""
        try:
            status = await self._on_connection(lambda con: con.execute(
                "INSERT INTO department_members (department, account) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                department, account))
        except asyncpg.ForeignKeyViolationError:
            raise LookupError(f"no account named {account!r}") from None
        return status.endswith(" 1")

    async def remove_department_member(self, department: str, account: str) -> bool:
        status = await self._on_connection(lambda con: con.execute(
            "DELETE FROM department_members WHERE department = $1 AND account = $2", department, account))
        return status.endswith(" 1")

    async def department_members(self) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch(
            "SELECT department, account, added_at FROM department_members ORDER BY department, account"))

    async def departments_of(self, account: str) -> list[str]:
        rows = await self._on_connection(lambda con: con.fetch(
            "SELECT department FROM department_members WHERE account = $1 ORDER BY department", account))
        return [r["department"] for r in rows]

    async def insert_case(self, row: dict, entry: dict, audit: AuditEntry) -> tuple[asyncpg.Record, bool]:
        """A new case (``row``: columns of ``cases``) with its first timeline entry and
        audit entry (its target the new case, ``case:ID``): (the case, True). A case of the same (source, external_id) already
        stored: (that case, False), and nothing written."""
        columns = _case_columns(row)

        async def work(con: asyncpg.Connection) -> tuple[asyncpg.Record, bool]:
            placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
            created = await con.fetchrow(
                f"INSERT INTO cases ({', '.join(columns)}) VALUES ({placeholders})"
                " ON CONFLICT (source, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING *",
                *(row[c] for c in columns))
            if created is None:
                found = await con.fetchrow("SELECT * FROM cases WHERE source = $1 AND external_id = $2",
                                           row["source"], row["external_id"])
                assert found is not None  # the conflict was with it
                return found, False
            await _insert_timeline(con, created["id"], entry)
            await _insert_audit(con, dataclasses.replace(audit, target=f"case:{created['id']}"))
            return created, True

        return await self._on_connection(work, transaction=True)

    async def change_case(self, case_id: int,
                          decide: Callable[[asyncpg.Record], tuple[dict, dict, AuditEntry | None] | None],
                          ) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
        """Change a case as ``decide(row)`` says, on the row locked FOR UPDATE: it returns
        (the columns to set, the timeline entry, the audit entry or None), or None to leave
        the case as it is; it may raise to refuse, and nothing is written. (before, after):
        (None, None) for no such case, after None when nothing changed."""

        async def work(con: asyncpg.Connection) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
            before = await con.fetchrow("SELECT * FROM cases WHERE id = $1 FOR UPDATE", case_id)
            if before is None:
                return None, None
            decided = decide(before)
            if decided is None:
                return before, None
            updates, entry, audit = decided
            columns = _case_columns(updates)
            sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
            after = await con.fetchrow(f"UPDATE cases SET {sets} WHERE id = $1 RETURNING *", case_id,
                                       *(updates[c] for c in columns))
            await _insert_timeline(con, case_id, entry)
            if audit is not None:
                await _insert_audit(con, audit)
            return before, after

        return await self._on_connection(work, transaction=True)

    async def case(self, case_id: int) -> asyncpg.Record | None:
        return await self._on_connection(lambda con: con.fetchrow("SELECT * FROM cases WHERE id = $1", case_id))

    async def case_by_external(self, source: str, external_id: str) -> asyncpg.Record | None:
        return await self._on_connection(lambda con: con.fetchrow(
            "SELECT * FROM cases WHERE source = $1 AND external_id = $2", source, external_id))

    async def cases(self, *, district: str | None, state: str | None = None, category: str | None = None,
                    street: str | None = None, source: str | None = None, urgent: bool | None = None,
                    overdue_at: datetime | None = None, department: str | None = None, escalated: bool | None = None,
                    before_id: int | None = None, limit: int = 50) -> list[asyncpg.Record]:
        """Cases newest first, of ``district`` (None: every one), filtered; ``overdue_at``:
        only those whose running stage is past due at that instant; ``before_id`` pages back."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT * FROM cases WHERE ($1::text IS NULL OR district = $1) AND ($2::text IS NULL OR state = $2)"
            " AND ($3::text IS NULL OR category = $3) AND ($4::text IS NULL OR street = $4)"
            " AND ($5::text IS NULL OR source = $5) AND ($6::boolean IS NULL OR urgent = $6)"
            " AND ($7::timestamptz IS NULL OR (stage IS NOT NULL AND parked_since IS NULL AND stage_due <= $7))"
            " AND ($8::text IS NULL OR department = $8) AND ($9::bigint IS NULL OR id < $9)"
            " AND ($11::boolean IS NULL OR (escalated_at IS NOT NULL) = $11)"
            " ORDER BY id DESC LIMIT $10",
            district, state, category, street, source, urgent, overdue_at, department, before_id, limit, escalated))

    @_retried
    async def cases_to_watch(self, now: datetime, escalate_before: datetime) -> list[asyncpg.Record]:
        """Open cases with something due by ``now``: a warning or overdue not yet given,
        or an escalation (reported before ``escalate_before``, never acknowledged)."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT * FROM cases WHERE stage IS NOT NULL AND parked_since IS NULL AND ("
            " (stage_warned_at IS NULL AND stage_warn <= $1) OR (stage_overdue_at IS NULL AND stage_due <= $1))"
            " OR (state NOT IN ('rejected', 'closed') AND acknowledged_at IS NULL AND escalated_at IS NULL"
            "     AND created_at <= $2)"
            " ORDER BY id", now, escalate_before))

    @_retried
    async def next_case_instant(self, escalate_after: timedelta) -> datetime | None:
        """The earliest instant at which a watched case has something due (None: nothing open)."""
        return await self._on_connection(lambda con: con.fetchval(
            "SELECT min(t) FROM ("
            " SELECT stage_warn AS t FROM cases WHERE stage IS NOT NULL AND parked_since IS NULL AND stage_warned_at IS NULL"
            " UNION ALL SELECT stage_due FROM cases WHERE stage IS NOT NULL AND parked_since IS NULL"
            "   AND stage_overdue_at IS NULL"
            " UNION ALL SELECT created_at + $1 FROM cases WHERE state NOT IN ('rejected', 'closed')"
            "   AND acknowledged_at IS NULL AND escalated_at IS NULL) due", escalate_after))

    async def open_cases_of(self, source: str) -> list[asyncpg.Record]:
        """The open cases of a source with their external ids (sources key their episodes by them)."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT id, external_id, state, district FROM cases WHERE source = $1 AND external_id IS NOT NULL"
            " AND state NOT IN ('rejected', 'closed') ORDER BY id", source))

    async def case_timeline(self, case_id: int) -> list[asyncpg.Record]:
        return await self._on_connection(lambda con: con.fetch(
            "SELECT * FROM case_timeline WHERE case_id = $1 ORDER BY id", case_id))

    # --- case sources -----------------------------------------------------------------
    # The alarm outbox consumed into cases: each event's effect on its case and the event's
    # consumption are one transaction, so a crash between them leaves the event pending and
    # nothing written; a case opened for an alarm episode is keyed by its first event.

    async def consume_alarm_events(self, limit: int, decide: Callable[[asyncpg.Record, dict], AlarmEffect | None],
                                   ) -> list[tuple[str, asyncpg.Record]]:
        """Take up to ``limit`` pending alarm events, oldest first, and for each carry out
        ``decide(event, open_cases)`` (``open_cases``: (originator, kind) → the open alarm
        case's row, as the events before it left them), then mark them consumed: all in one
        transaction. Consumers take turns (a transaction-scoped advisory lock): a repeat
        taken by one while another has its first event uncommitted would open a second case.
        Returns (what, case row) for each case opened ("created") or noted ("changed")."""

        async def work(con: asyncpg.Connection) -> list[tuple[str, asyncpg.Record]]:
            await con.execute("SELECT pg_advisory_xact_lock($1)", _ALARM_INTAKE_LOCK)
            events = await con.fetch("SELECT * FROM alarm_events WHERE consumed_at IS NULL ORDER BY id LIMIT $1", limit)
            if not events:
                return []
            originators = sorted({e["component"] or e["device"] for e in events})
            open_rows = await con.fetch(OPEN_ALARM_CASES, originators)
            open_cases: dict[tuple[str, str], asyncpg.Record] = {}
            for row in open_rows:
                originator, kind, _ = row["external_id"].rsplit(":", 2)
                open_cases.setdefault((originator, kind), row)
            done: list[tuple[str, asyncpg.Record]] = []
            # timeline and audit rows decide nothing later in the batch: written together at
            # its end (one pipelined statement each, not a round trip per event)
            timeline: list[tuple] = []
            audits: list[tuple] = []
            touched: dict[int, datetime] = {}  # case → when an alarm was last noted on it
            for event in events:
                effect = decide(event, open_cases)
                if effect is None:
                    continue
                if effect.new is not None:
                    created = await con.fetchrow(
                        f"INSERT INTO cases ({', '.join(_case_columns(effect.new))}) VALUES "
                        f"({', '.join(f'${i}' for i in range(1, len(effect.new) + 1))})"
                        " ON CONFLICT (source, external_id) WHERE external_id IS NOT NULL DO NOTHING RETURNING *",
                        *(effect.new[c] for c in _case_columns(effect.new)))
                    if created is None:  # opened already for this very event: consumed before, not marked
                        continue
                    timeline.append(_timeline_args(created["id"], effect.entry))
                    if effect.audit is not None:
                        audits.append(_audit_args(effect.audit))
                    open_cases[effect.key] = created
                    done.append(("created", created))
                elif effect.case is not None and (known := open_cases.get(effect.key)) is not None \
                        and known["id"] == effect.case:
                    # locked above (or opened in this transaction): its state cannot change under
                    # us, so its entry is written and its updated_at set at the batch's end
                    timeline.append(_timeline_args(effect.case, {**effect.entry, "state": known["state"]}))
                    touched[effect.case] = max(touched.get(effect.case, effect.entry["at"]), effect.entry["at"])
                elif effect.case is not None:
                    noted = await con.fetchrow("UPDATE cases SET updated_at = $2 WHERE id = $1 RETURNING *",
                                               effect.case, effect.entry["at"])
                    if noted is None:
                        continue
                    timeline.append(_timeline_args(effect.case, {**effect.entry, "state": noted["state"]}))
                    open_cases[effect.key] = noted
                    done.append(("changed", noted))
            if touched:
                noted_rows = await con.fetch(
                    "UPDATE cases c SET updated_at = u.at FROM unnest($1::bigint[], $2::timestamptz[]) AS u(id, at)"
                    " WHERE c.id = u.id RETURNING c.*", list(touched), list(touched.values()))
                done.extend(("changed", row) for row in sorted(noted_rows, key=lambda r: r["id"]))
            if timeline:
                await con.executemany(_TIMELINE_INSERT, timeline)
            if audits:
                await con.executemany(_AUDIT_INSERT, audits)
            await con.execute("UPDATE alarm_events SET consumed_at = now() WHERE id = ANY($1::bigint[])",
                              [e["id"] for e in events])
            return done

        return await self._on_connection(work, transaction=True)

    async def pending_alarm_events(self) -> int:
        return await self._on_connection(lambda con: con.fetchval(
            "SELECT count(*) FROM alarm_events WHERE consumed_at IS NULL"))
    # --- case figures ---------------------------------------------------------------

    async def case_figures(self, now: datetime, day_start: datetime, district: str | None = None) -> asyncpg.Record | None:
        """The figures of the big screen, of ``district`` (None: the city): open cases, those
        past their running stage's deadline, those past its warning, and today's reports,
        filings and closings (``day_start``: midnight of the city's day)."""
        return await self._on_connection(lambda con: con.fetchrow(
            "SELECT count(*) FILTER (WHERE state NOT IN ('closed', 'rejected')) AS open,"
            " count(*) FILTER (WHERE state NOT IN ('closed', 'rejected', 'parked') AND stage_due <= $1) AS overdue,"
            " count(*) FILTER (WHERE state NOT IN ('closed', 'rejected', 'parked') AND stage_warn <= $1 AND stage_due > $1)"
            " AS due_soon,"
            " count(*) FILTER (WHERE created_at >= $2) AS reported_today,"
            " count(*) FILTER (WHERE closed_at >= $2) AS closed_today"
            " FROM cases WHERE ($3::text IS NULL OR district = $3)", now, day_start, district))

    # --- open311 ----------------------------------------------------------------------

    @_retried
    async def open311_cases(self, *, ids: list[int] | None = None, categories: list[str] | None = None,
                            start: datetime | None = None, end: datetime | None = None, closed: bool | None = None,
                            source: str | None = None, limit: int = 1000) -> list[asyncpg.Record]:
        """Cases as Open311 asks for them, newest first: by id, by category, reported in
        [``start``, ``end``), open or ``closed`` (closed and rejected: finished). ``source``:
        only those of one source."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT * FROM cases WHERE ($1::bigint[] IS NULL OR id = ANY($1)) AND ($2::text[] IS NULL OR category = ANY($2))"
            " AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)"
            " AND ($5::boolean IS NULL OR (state IN ('closed', 'rejected')) = $5)"
            " AND ($6::text IS NULL OR source = $6)"
            " ORDER BY id DESC LIMIT $7", ids, categories, start, end, closed, source, limit))

    async def first_timeline_entry(self, case_id: int) -> asyncpg.Record | None:
        """The case's first timeline entry: its creation, with what the source gave."""
        return await self._on_connection(lambda con: con.fetchrow(
            "SELECT * FROM case_timeline WHERE case_id = $1 ORDER BY id LIMIT 1", case_id))

    # --- case bulk load ---------------------------------------------------------------

    async def bulk_insert_cases(self, rows: list[dict]) -> int:
        """Cases loaded in one COPY (imports and benchmarks: no timeline entries, no audit,
        no idempotence check); every row names the same columns. The count loaded."""
        if not rows:
            return 0
        columns = _case_columns(rows[0])
        records = [tuple(row[c] for c in columns) for row in rows]
        await self._on_connection(lambda con: con.copy_records_to_table("cases", records=records, columns=columns),
                                  transaction=True)
        return len(records)

    # --- outages ----------------------------------------------------------------------

    async def reconnect(self) -> None:
        """Have both pools replace their connections on next use: after an outage the
        idle ones are dead, and each would cost a failed attempt to find out."""

        async def op() -> None:
            await self._pool.expire_connections()
            await self._writer.expire_connections()

        await self._run(op)

    async def ping(self) -> None:
        """One round trip to the database (health probes)."""
        await self._on_connection(lambda con: con.execute("SELECT 1"))

    async def pings_retried(self, devices: Sequence[str], start: datetime, end: datetime) -> list[asyncpg.Record]:
        """``pings_of`` for background tasks (patrol replay): waits out an outage."""
        if self.retry is None:
            return await self.pings_of(devices, start, end)
        return await self.retry.retrying("pings_of", self.pings_of, devices, start, end)


    # --- history --------------------------------------------------------------------

    @_retried
    async def history(self, device: str, start: datetime, end: datetime, limit: int,
                      district: str | None = None) -> list[asyncpg.Record]:
        """Fixes of ``device`` in [start, end] with their accuracy, for the filtered track
        (``geofence.tracks``); none when ``district`` is given and the device is not of it."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT t, lat, lon, acc FROM pings WHERE device = $1 AND t >= $2 AND t <= $3"
            f" AND {_DEVICE_IN_DISTRICT.format(device='$1', district='$5')} ORDER BY t LIMIT $4",
            device, start, end, limit, district))
    # --- service runs ---------------------------------------------------------------

    async def run_started(self, at: datetime) -> int:
        """Record a run of the service beginning at ``at``; its id."""
        return await self._on_connection(lambda con: con.fetchval(
            "INSERT INTO service_runs (started_at, heartbeat_at) VALUES ($1, $1) RETURNING id", at))

    async def run_heartbeat(self, run_id: int, at: datetime, *, stopped: bool = False) -> None:
        """The run was alive at ``at`` (and, ``stopped``, ended there cleanly)."""
        await self._on_connection(lambda con: con.execute(
            "UPDATE service_runs SET heartbeat_at = greatest(heartbeat_at, $2),"
            " stopped_at = CASE WHEN $3 THEN greatest(heartbeat_at, $2) ELSE stopped_at END WHERE id = $1",
            run_id, at, stopped))

    async def runs_between(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The observed periods overlapping [start, end): each run from its start to its
        stop, or to its last heartbeat when it never stopped cleanly (a crash)."""
        rows = await self._on_connection(lambda con: con.fetch(
            "SELECT started_at, coalesce(stopped_at, heartbeat_at) AS ended_at FROM service_runs"
            " WHERE started_at < $2 AND coalesce(stopped_at, heartbeat_at) > $1 ORDER BY started_at", start, end))
        return [(r["started_at"], r["ended_at"]) for r in rows]

    # --- retention ------------------------------------------------------------------

    async def ping_days(self) -> list[int]:
        """UTC day numbers of the pings partitions that exist, oldest first."""

        async def op() -> list[str]:
            async with self._pool.acquire() as con:
                return [r["name"] for r in await con.fetch(
                    "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'pings'::regclass")]

        return sorted(day for name in await self._run(op) if (day := _ping_partition_day(name)) is not None)

    async def drop_ping_days_before(self, day: int) -> list[int]:
        """Drop every whole-day pings partition of a day before ``day``; return those days.

        Each goes in its own short transaction that waits at most a few seconds for its
        lock (the writer's COPY holds the parent): one that cannot is left for next time.
        """
        dropped = []
        for old in await self.ping_days():
            if old >= day:
                break

            async def op(old: int = old) -> bool:
                async with self._pool.acquire() as con:
                    try:
                        async with con.transaction():
                            await con.execute("SET LOCAL lock_timeout = '5s'")
                            await con.execute(f"DROP TABLE IF EXISTS {_ping_partition(old)}")
                    except asyncpg.LockNotAvailableError:
                        return False
                return True

            if await self._run(op):
                self._partitions.discard(old)  # a late fix for that day creates it again
                dropped.append(old)
        return dropped

    async def delete_expired(self, table: str, before: datetime, batch: int) -> int:
        """Delete rows of ``table`` (a key of RETAINED) older than ``before``, ``batch``
        rows per statement so no transaction grows long; return how many went."""
        column, key = RETAINED[table]
        query = (f"DELETE FROM {table} WHERE {key} = ANY(ARRAY("
                 f"SELECT {key} FROM {table} WHERE {column} < $1 LIMIT $2))")

        async def op() -> int:
            async with self._pool.acquire() as con:
                status = await con.execute(query, before, batch)
            return int(status.split()[-1])

        total = 0
        while True:
            deleted = await self._run(op)
            total += deleted
            if deleted < batch:
                return total
            await trio.lowlevel.checkpoint()

    @_retried
    async def recently_heard_devices(self, limit: int) -> list[asyncpg.Record]:
        """Like ``devices``, only the ``limit`` heard from last (the live state's warm
        start, which holds at most [pipeline] max_devices)."""

        async def op():
            async with self._pool.acquire() as con:
                return await con.fetch("SELECT * FROM devices ORDER BY last_rx DESC NULLS LAST, id LIMIT $1", limit)

        return await self._run(op)


    # --- sensor readings ----------------------------------------------------------------

    @_retried
    async def add_sensor_readings(self, rows: Sequence[tuple]) -> None:
        """Store sensor records (READING_COLUMNS); one delivered again is skipped."""

        async def op() -> None:
            async with self._pool.acquire() as con:
                await con.execute(_INSERT_READINGS, *(list(column) for column in zip(*rows, strict=True)))

        if rows:
            await self._run(op)

    async def sensor_readings(self, device: str, start: datetime, end: datetime, limit: int,
                              district: str | None = None) -> list[asyncpg.Record]:
        """A sensor's records between ``start`` and ``end``, oldest first, at most ``limit``
        (the newest ones when there are more); of ``district`` only when given (its
        component's district, as alarms derive theirs)."""
        return await self._on_connection(lambda con: con.fetch(
            "SELECT * FROM (SELECT * FROM sensor_readings WHERE device = $1 AND t >= $2 AND t <= $3 "
            "AND ($5::text IS NULL OR left(component, 6) = $5) ORDER BY t DESC LIMIT $4) newest ORDER BY t",
            device, start, end, limit, district))
# --- cases (helpers) ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AlarmEffect:
    """What one alarm event does to the cases: open ``new`` (the case's columns) or note
    ``entry`` on the open ``case``; ``key``: (originator, kind) of the case."""

    key: tuple[str, str]
    entry: dict
    new: dict | None = None
    case: int | None = None
    audit: AuditEntry | None = None


_ALARM_INTAKE_LOCK = 0x6777_6361_7365  # the alarm outbox's consumers' turn ("gwcase")


def alarm_case_key(originator: str, kind: str, first_event: int) -> str:
    """The external id of an alarm case: its originator, alarm kind and first event."""
    return f"{originator}:{kind}:{first_event}"


# the open alarm cases of these originators (an alarm case's external_id is
# originator:kind:event), through the partial index of migration 0012: the same predicate
OPEN_ALARM_CASES = (
    "SELECT * FROM cases WHERE source IN ('sensor', 'vehicle') AND state NOT IN ('rejected', 'closed')"
    " AND regexp_replace(external_id, ':[^:]*:[^:]*$', '') = ANY($1::text[]) ORDER BY id FOR UPDATE")


CASE_COLUMNS = frozenset((
    "state", "source", "external_id", "category", "taxonomy_version", "urgent", "description", "lat", "lon", "grid",
    "community", "street", "district", "department", "stage", "stage_started", "stage_due", "stage_warn",
    "stage_extension_s", "stage_paused_s", "stage_warned_at", "stage_overdue_at", "extension_pending",
    "extension_hours", "parked_since", "verifier", "acknowledged_at", "acknowledged_by", "escalated_at", "grade",
    "reporter", "created_at", "updated_at", "closed_at"))


def _case_columns(values: dict) -> list[str]:
    """The columns named in ``values``, checked: they become SQL identifiers."""
    unknown = set(values) - CASE_COLUMNS
    if unknown:
        raise ValueError(f"not columns of cases: {', '.join(sorted(unknown))}")
    return sorted(values)


_TIMELINE_INSERT = ("INSERT INTO case_timeline (case_id, at, actor, role, scope, action, state, note, fields)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)")
_AUDIT_INSERT = ("INSERT INTO audit (actor, role, scope, source, action, target, outcome, before, after, detail)"
                 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10)")


def _timeline_args(case_id: int, entry: dict) -> tuple:
    return (case_id, entry["at"], _text(entry["actor"]), entry.get("role"), entry.get("scope"), entry["action"],
            entry["state"], _text(entry.get("note", "")), _json_or_null(entry.get("fields") or {}))


def _audit_args(entry: AuditEntry) -> tuple:
    return (_text(entry.actor), entry.role, entry.scope, _text(entry.source), entry.action, _text(entry.target),
            entry.outcome, _json_or_null(entry.before), _json_or_null(entry.after), _text(entry.detail))


async def _insert_timeline(con: asyncpg.Connection, case_id: int, entry: dict) -> None:
    await con.execute(_TIMELINE_INSERT, *_timeline_args(case_id, entry))


async def _insert_audit(con: asyncpg.Connection, entry: AuditEntry) -> None:
    await con.execute(_AUDIT_INSERT, *_audit_args(entry))


# --- district scoping -------------------------------------------------------------
# A district account sees its district's records only; where a table stores no district
# it is derived, in SQL, so a query returns no more than it may show.
# A device is of the district its topic (or its gateway) names, kept in devices.district.
_DEVICE_IN_DISTRICT = ("({district}::text IS NULL OR EXISTS "
                       "(SELECT 1 FROM devices d WHERE d.id = {device} AND d.district = {district}))")
# An alarm event is its component's district's (a component code begins with it), else
# its device's, else the district of the unit grid it was raised in.
ALARM_DISTRICT = ("coalesce(left(alarm_events.component, 6), "
                  "(SELECT d.district FROM devices d WHERE d.id = alarm_events.device), left(alarm_events.grid, 6))")


# Tables kept for a configured number of days: table → (the time a row ages from, its key).
# Refused fixes age from their receipt (their own time may be days older: a backlog).
RETAINED = {"filtered_fixes": ("rx", "ctid"), "dead_letters": ("at", "id"), "sensor_readings": ("rx", "ctid"),
            "sessions": ("expires_at", "id")}


def _ping_partition(day: int) -> str:
    return f"pings_{ms_to_datetime(day * DAY_MS):%Y%m%d}"


def _ping_partition_day(name: str) -> int | None:
    """The UTC day number of a partition ``write_pings`` named, None for any other table."""
    digits = name.removeprefix("pings_")
    if digits == name or len(digits) != 8 or not digits.isdigit():
        return None
    return datetime_to_ms(datetime.strptime(digits, "%Y%m%d").replace(tzinfo=UTC)) // DAY_MS


# The writer connection's staging table for ping batches: PING_COLUMNS, emptied at each commit.
_PINGS_STAGING = "pings_staged"
_CREATE_PINGS_STAGING = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_PINGS_STAGING} (device text, t timestamptz, lat float8, lon float8, rx timestamptz, "
    "acc real, spd real, hdg real, alt real, bat real, crs text, seq bigint, cell bigint, grid text, late boolean) "
    "ON COMMIT DELETE ROWS"
)
_MOVE_STAGED_PINGS = (
    f"INSERT INTO pings ({', '.join(PING_COLUMNS)}) SELECT {', '.join(PING_COLUMNS)} FROM {_PINGS_STAGING} "
    "ON CONFLICT (device, t) DO NOTHING"
)
_INSERT_FILTERED = (
    f"INSERT INTO filtered_fixes ({', '.join(FILTERED_COLUMNS)}) "
    "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::float8[], $5::float8[], $6::real[], "
    "$7::real[], $8::bigint[], $9::text[]) ON CONFLICT (device, t, reason) DO NOTHING"
)
_INSERT_ALARMS = (
    f"INSERT INTO alarm_events ({', '.join(ALARM_COLUMNS)}) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::timestamptz[], $7::float8[], "
    "$8::text[], $9::float8[], $10::float8[], $11::text[], $12::float8[]) ON CONFLICT (source, device, kind, t, raised) DO NOTHING"
)
def _alarm_columns(alarms: Sequence[tuple]) -> list[list]:
    """ALARM_COLUMNS as arrays; an event given without its limit (the last column) has none."""
    rows = [a if len(a) == len(ALARM_COLUMNS) else (*a, None) for a in alarms]
    return [list(column) for column in zip(*rows, strict=True)]


_INSERT_READINGS = (
    f"INSERT INTO sensor_readings ({', '.join(READING_COLUMNS)}) "
    "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[], $5::text[], $6::real[], $7::real[], "
    "$8::real[], $9::bool[], $10::real[], $11::real[], $12::real[]) ON CONFLICT (device, t, kind) DO NOTHING"
)

# One statement for a whole batch of devices: arrays in, a set-based upsert server-side.
_UPSERT_DEVICES = (
    "INSERT INTO devices (id, class, district, last_t, last_rx, last_lat, last_lon, last_acc, last_spd, last_hdg, last_bat, last_cell, last_grid) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::float8[], $7::float8[], "
    "$8::real[], $9::real[], $10::real[], $11::real[], $12::bigint[], $13::text[]) "
    "ON CONFLICT (id) DO UPDATE SET class = excluded.class, district = excluded.district, "
    "last_t = excluded.last_t, last_rx = excluded.last_rx, last_lat = excluded.last_lat, last_lon = excluded.last_lon, "
    "last_acc = excluded.last_acc, last_spd = excluded.last_spd, last_hdg = excluded.last_hdg, last_bat = excluded.last_bat, "
    "last_cell = excluded.last_cell, last_grid = excluded.last_grid "
    "WHERE devices.last_t IS NULL OR excluded.last_t >= devices.last_t"
)


@asynccontextmanager
async def open_store(dsn: str, pool_min: int = 1, pool_max: int = 4, *, command_timeout_s: float = 60.0,
                     retry: DatabaseState | None = None) -> AsyncIterator[Store]:
    """Open the asyncio bridge and a connection pool for the life of the block.

    With ``retry`` (the service) a database that cannot be reached yet is waited for, and
    the store's write path retries through outages; without (one-shot commands) an
    unreachable database is a ``StoreError`` at once.
    """
    async with trio_asyncio.open_loop() as loop:

        async def create(**options):
            create_pool = trio_asyncio.aio_as_trio(asyncpg.create_pool)
            if retry is None:
                return await create_pool(dsn, command_timeout=command_timeout_s, **options)
            return await retry.retrying("connect", create_pool, dsn, command_timeout=command_timeout_s, **options)

        try:
            pool = await create(min_size=pool_min, max_size=pool_max)
        except ValueError as exc:  # asyncpg's ClientConfigurationError among them; the DSN is not echoed
            raise StoreError(f"invalid PostgreSQL DSN: {exc}") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {_redact(dsn)}: {exc}") from exc
        try:
            writer = await create(min_size=1, max_size=1, init=_writer_codecs)
        except BaseException as exc:  # a refusal, or cancelled while waiting for the database
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await trio_asyncio.aio_as_trio(pool.close)()
            if isinstance(exc, (OSError, asyncpg.PostgresError)):
                raise StoreError(f"cannot connect to PostgreSQL at {_redact(dsn)}: {exc}") from exc
            raise
        store = Store(pool, loop, writer)
        if retry is not None:
            store.retry = retry
            retry.reconnect = store.reconnect
        try:
            yield store
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(10):
                    await trio_asyncio.aio_as_trio(writer.close)()
                with trio.move_on_after(10):
                    await trio_asyncio.aio_as_trio(pool.close)()


def _redact(dsn: str) -> str:
    head, sep, tail = dsn.rpartition("@")
    if not sep or "://" not in head:
        return dsn
    scheme, _, creds = head.partition("://")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{tail}"
