"""The `tracker` command line (also `python -m tracker`).

A failure the user can cause and fix (configuration, arguments, an unreachable or
refusing broker or database, a database at another schema version, a file that cannot
be read or written) ends the command with one line on stderr, ``tracker: error: ...``,
and exit status 2 for usage and configuration, 1 otherwise. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import TYPE_CHECKING, NoReturn

import trio

from tracker import config as config_mod

if TYPE_CHECKING:
    from tracker.storage.store import Store

log = logging.getLogger("tracker")


class CommandError(Exception):
    """A command cannot go on for a reason the user can fix; the message says which."""


def _settings(args) -> config_mod.Settings:
    path = args.config or os.environ.get("TRACKER_CONFIG")
    if path is None and os.path.exists("config.toml"):
        path = "config.toml"
    try:
        return config_mod.load(path)
    except OSError as exc:
        raise config_mod.ConfigError(f"{path}: {exc.strerror or exc}") from None


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _need_dsn(settings: config_mod.Settings) -> str:
    if not settings.database.dsn:
        raise config_mod.ConfigError("no database: set [database] dsn in config.toml or TRACKER_DATABASE__DSN")
    return settings.database.dsn


@asynccontextmanager
async def _store(settings: config_mod.Settings) -> AsyncIterator[Store]:
    """The configured database, checked to be at this code's schema version."""
    from tracker.storage.schema import check_schema
    from tracker.storage.store import open_store

    async with open_store(_need_dsn(settings)) as store:
        await check_schema(store)
        yield store


async def _reach_broker(mqtt: config_mod.MqttSettings) -> None:
    """Fail now, not in a reconnect loop, when the broker does not even accept a connection.
    Once the service runs, a lost broker is waited for (see tracker.ingest.broker)."""
    try:
        conn = await trio.to_thread.run_sync(functools.partial(socket.create_connection, (mqtt.host, mqtt.port), timeout=10))
    except OSError as exc:
        raise CommandError(f"cannot reach the MQTT broker at {mqtt.host}:{mqtt.port}: {exc.strerror or exc}") from exc
    conn.close()


def cmd_demo(args, settings) -> int:
    from tracker.app.demo import run_demo

    if args.port is not None:
        settings = settings.replace("demo", web_port=args.port)
    run_demo(settings)
    return 0


def cmd_serve(args, settings) -> int:
    from tracker.app.service import serve

    _need_dsn(settings)

    async def main() -> None:
        # a database that is down is waited for (health says so meanwhile); a broker that
        # does not even accept a connection is a configuration to fix first
        await _reach_broker(settings.mqtt)
        async with trio.open_nursery() as nursery:
            serving = await nursery.start(functools.partial(serve, settings, tune=True))

            async def announce() -> None:  # /healthz answers at once; the rest once the database does
                await serving.ready.wait()
                print(f"serving {serving.url}/", flush=True)

            nursery.start_soon(announce)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            if serving.running is not None:
                await serving.running.stop()
            nursery.cancel_scope.cancel()

    trio.run(main)
    return 0


def cmd_migrate(args, settings) -> int:
    from tracker.storage.store import open_store

    dsn = _need_dsn(settings)

    async def main() -> None:
        async with open_store(dsn) as store:
            applied = await store.migrate()
            print("applied: " + (", ".join(applied) if applied else "nothing, schema is current"))
            print(f"schema version {await store.schema_version()}")

    trio.run(main)
    return 0


def cmd_simulate(args, settings) -> int:
    import functools
    from pathlib import Path

    from tracker.devcity.city import PATH
    from tracker.devcity.simulator import build_fleet, fleet_registrations, run_fleet
    from tracker.ingest.broker import BrokerParams
    from tracker.ingest.dynsec import DynsecError
    from tracker.registry.provisioning import Provisioning, ProvisioningOff, control_account

    settings = settings.replace("mqtt", host=args.host or settings.mqtt.host, port=args.port or settings.mqtt.port)
    m = settings.mqtt
    params = BrokerParams(m.host, m.port, args.username, args.password, "gridwatch-sim", m.keepalive_s)
    fleet = build_fleet(Path(args.grids or PATH), args.collectors, args.vehicles, args.sensors)
    jt808 = args.jt808

    async def main() -> None:
        accounts = None
        if args.register:  # each device registered (or given a fresh password) and logged in as itself
            async with _store(settings) as store:
                try:
                    accounts = await Provisioning(store, control_account(settings)).ensure_all(fleet_registrations(fleet))
                except ProvisioningOff as exc:
                    raise config_mod.ConfigError(str(exc)) from None
                except DynsecError as exc:
                    raise CommandError(f"the broker did not register the fleet: {exc}") from None
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(run_fleet, params, fleet, args.interval, jt808, connections=args.connections,
                                                  accounts=accounts, speed_limit_kmh=settings.jt808.speed_limit_kmh))
            vehicles = f"vehicles on JT/T 808 at {jt808[0]}:{jt808[1]}" if jt808 else "vehicles on MQTT"
            print(f"simulating {len(fleet)} devices against {params.host}:{params.port} ({vehicles})", flush=True)

    try:
        trio.run(main)
    except* KeyboardInterrupt:  # trio hands it on inside an exception group from the nursery
        pass
    return 0


def cmd_grids_import(args, settings) -> int:
    from tqdm import tqdm

    from tracker.app.service import import_grids

    bars: list[tqdm] = []

    def progress(done: int, total: int) -> None:
        # called once per chunk of features checked (from the worker thread): draw each one
        if not bars:
            bars.append(tqdm(total=total, desc="checking grids", unit=" grids", file=sys.stderr, mininterval=0))
        bars[0].update(done - bars[0].n)
        if done >= total:
            bars[0].close()  # the checks are done; the database import follows

    from geofence.importer import ImportError_

    async def main() -> int:
        async with _store(settings) as store:
            try:
                report = await import_grids(store, args.file, settings.grid.h3_resolution, args.crs, progress)
            except ImportError_ as exc:  # not a grid file at all; a file's bad grids are listed below
                raise CommandError(str(exc)) from None
            finally:
                for bar in bars:
                    bar.close()
        for line in report.errors:
            print(f"error: {line}")
        for line in report.warnings:
            print(f"warning: {line}")
        if report.errors:
            print(f"refused: {len(report.errors)} error(s); nothing imported")
            return 1
        print(f"imported {len(report.grids)} grids, {len(report.cover)} H3 cells at resolution {settings.grid.h3_resolution}")
        return 0

    return trio.run(main)


def cmd_grids_export(args, settings) -> int:
    import json

    from geofence.importer import to_feature_collection

    async def main() -> None:
        async with _store(settings) as store:
            doc = to_feature_collection(await store.grids(), source=args.source)
        with open(args.file, "w", encoding="utf-8") as out:
            json.dump(doc, out, ensure_ascii=False)
        print(f"exported {len(doc['features'])} grids to {args.file}")

    trio.run(main)
    return 0


def cmd_dead_letters(args, settings) -> int:
    async def main() -> None:
        async with _store(settings) as store:
            rows = await store.dead_letters(args.limit)
        for r in rows:
            print(f"{r['at']:%Y-%m-%d %H:%M:%S} {r['protocol']:<9} {r['reason']:<16} {r['device'] or '-':<16} {r['source']}  {r['error']}")
            print(f"    {bytes(r['raw'][:64]).hex()}{'…' if len(r['raw']) > 64 else ''}")
        print(f"{len(rows)} dead letter(s)")

    trio.run(main)
    return 0


def cmd_patrol(args, settings) -> int:
    import json

    from geofence.plan import PatrolPlan, PlanError

    async def main() -> int:
        async with _store(settings) as store:
            latest = await store.latest_plan()
            if args.patrol_command == "export":
                version, doc = _stored_plan(latest)
                with open(args.file, "w", encoding="utf-8") as out:
                    json.dump(doc, out, ensure_ascii=False, indent=1)
                print(f"exported plan version {version} to {args.file}")
                return 0
            if args.patrol_command == "slots":
                plan = PatrolPlan.from_dict(_stored_plan(latest)[1])
                day = args.date or date.today()
                schedule = plan.schedule()
                for slot in schedule.slots_on(day):
                    start = ms_local(slot.start_ms, plan.zone)
                    end = ms_local(slot.end_ms, plan.zone)
                    print(f"{slot.collector:<12} {plan.areas[slot.area][0]:<16} {slot.area}  {start} – {end}")
                return 0
            cover = dict(await store.grid_cells())
            try:
                if args.patrol_command == "import":
                    with open(args.file, encoding="utf-8") as f:
                        plan = PatrolPlan.from_dict(json.load(f))
                else:  # exception
                    plan = PatrolPlan.from_dict(_stored_plan(latest)[1]).with_exception(json.loads(args.json))
                plan.territory(cover)
            except (ValueError, PlanError) as exc:  # a file that cannot be read is an OSError: main reports it
                raise CommandError(f"patrol plan refused: {exc}") from None
            version = await store.save_plan(plan.to_dict(), args.note or args.patrol_command)
            print(f"patrol plan version {version}: {len(plan.areas)} responsibility grids, {len(plan.shifts)} shifts, "
                  f"{len(plan.exceptions)} exceptions (a running service picks it up within [patrol] evaluate_s)")
            return 0

    return trio.run(main)


def _operator() -> str:
    """The audit trail's actor for what this command line does: ``cli:<os user>``."""
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"cli:uid{os.getuid()}"


def _password_from(path: str | None) -> tuple[str, bool]:
    """The password in ``path`` (its first line), or a generated one; and whether generated."""
    from tracker.access.passwords import generate_password

    if path is None:
        return generate_password(), True
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\r\n"), False


def cmd_accounts(args, settings) -> int:
    from tracker.app import accounts

    actor = _operator()

    async def main() -> int:
        async with _store(settings) as store:
            try:
                if args.accounts_command == "add":
                    password, generated = _password_from(args.password_file)
                    district = accounts.parse_scope(args.scope)
                    await accounts.add_account(store, args.name, accounts.parse_role(args.role), district, password,
                                               actor=actor, device=args.device)
                    print(f"account {args.name} ({args.role}, {args.scope}) created")
                    if generated:
                        print(f"password: {password}   (shown once)")
                elif args.accounts_command == "passwd":
                    password, generated = _password_from(args.password_file)
                    await accounts.set_password(store, args.name, password, actor=actor)
                    print(f"password of {args.name} changed; its sessions ended")
                    if generated:
                        print(f"password: {password}   (shown once)")
                elif args.accounts_command in ("disable", "enable"):
                    await accounts.set_enabled(store, args.name, args.accounts_command == "enable", actor=actor)
                    print(f"account {args.name} {args.accounts_command}d")
                elif args.accounts_command == "list":
                    for r in await store.accounts():
                        scope = r["district"] or "city"
                        state = "enabled" if r["enabled"] else "DISABLED"
                        device = f"  device {r['device']}" if r["device"] else ""
                        print(f"{r['name']:<20} {r['role']:<10} {scope:<6} {state:<8} {r['tokens']} token(s){device}")
                elif args.token_command == "create":
                    issued = await accounts.create_token(store, args.name, args.label, actor=actor)
                    print(f"token {issued.token_id} for {args.name}: {issued.token}   (shown once)")
                else:  # token revoke
                    name = await accounts.revoke_token(store, args.id, actor=actor)
                    print(f"token {args.id} of {name} revoked")
            except accounts.AccountError as exc:
                raise CommandError(str(exc)) from None
        return 0

    return trio.run(main)


def _stored_plan(latest: tuple[int, dict] | None) -> tuple[int, dict]:
    if latest is None:
        raise CommandError("no patrol plan stored: import one with `tracker patrol import FILE`")
    return latest


def ms_local(ms: int, zone: str) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ms / 1000, ZoneInfo(zone)).strftime("%m-%d %H:%M")


def _as_of(value: str, zone: str) -> int:
    from zoneinfo import ZoneInfo

    from starlette.exceptions import HTTPException

    from protocols.epoch import datetime_to_ms
    from web.params import parse_time

    try:
        return datetime_to_ms(parse_time(value, "--as-of", ZoneInfo(zone)))
    except HTTPException as exc:
        raise CommandError(exc.detail) from None


def cmd_report_coverage(args, settings) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from geofence.plan import PatrolPlan
    from tracker.clock import wall_clock_ms
    from tracker.live.patrol import coverage_report_from_store, default_rule
    from web.exports import to_csv
    from web.routes.exports import COVERAGE

    async def main() -> int:
        async with _store(settings) as store:
            plan = PatrolPlan.from_dict(_stored_plan(await store.latest_plan())[1])
            cover = dict(await store.grid_cells())
            now_ms = wall_clock_ms() if args.as_of is None else _as_of(args.as_of, settings.city.timezone)
            day = args.date or datetime.fromtimestamp(now_ms / 1000, ZoneInfo(settings.city.timezone)).date()
            report = await coverage_report_from_store(store, plan, cover, plan.rules(default_rule(settings.patrol)), day,
                                                      now_ms, settings.grid.district)
        rows = report["collectors"]
        summary = report["summary"]
        share = "no data" if summary["share"] is None else f"{summary['share']:.0%}"
        print(f"coverage on {report['date']}: {len(rows)} slots; {summary['grids_covered']}/{summary['grids_total']} grids "
              f"covered ({share}) over {summary['slots']} slots with data, {summary['slots_no_data']} without")
        print(f"{'collector':<10} {'area':<13} {'slot':<23} {'grids':>9} {'share':>6} {'passes':>6} {'inside':>8}")
        for r in rows:
            slot = f"{ms_local(r['start'], plan.zone)}–{ms_local(r['end'], plan.zone)[6:]}"
            figure = (f"{r['grids_covered']:>4}/{r['grids_total']:<4} {r['share']:>6.0%}" if r["share"] is not None
                      else f"{'':>4} {'':<4} {r['status']:>6}")
            print(f"{r['collector']:<10} {r['area']:<13} {slot:<23} {figure} "
                  f"{r['passes']:>6} {r['inside_min']:>6.0f} m{'' if r['status'] != 'in_progress' else ' (in progress)'}")
        for level in ("streets", "communities"):
            print(f"\n{level}:")
            for r in report[level]:
                share = "-" if r["share"] is None else f"{r['share']:.0%}"
                print(f"  {r['code']:<13} {r['covered']:>4}/{r['scheduled']:<4} grid-slots covered ({share})")
        out = args.csv or f"coverage-{report['date']}.csv"
        # the same file as GET /api/exports/coverage.csv: city times, 是/否, two header rows
        with open(out, "wb") as f:
            f.write(to_csv(COVERAGE, rows, settings.city.timezone))
        print(f"\nwrote {out}")
        return 0

    return trio.run(main)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error (and names the help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"tracker: error: {message} (see `{self.prog} --help`)\n")


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"wants HOST:PORT, got {text!r}")
    return host, int(port)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"wants a date as YYYY-MM-DD, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tracker", description="Gridwatch: real-time tracking and patrol alerting for grid-based city management")
    parser.add_argument("--config", help="config file (default: $TRACKER_CONFIG, else ./config.toml if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="broker, database, demo city, simulated fleet and live map, all private")
    p.add_argument("--port", type=int, help="web port (default [demo] web_port)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="run the service against the broker and database in the config")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("db", help="database schema")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    m = dbsub.add_parser("migrate", help="apply pending migrations")
    m.set_defaults(func=cmd_migrate)

    p = sub.add_parser("simulate", help="the simulated fleet alone, against any broker")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--username", default="simulator", help="an account that may publish for every device (the demo's and "
                   "the tests' brokers have one; a production broker does not: use --register)")
    p.add_argument("--password", default="")
    p.add_argument("--register", action="store_true", help="register every simulated device in the configured database "
                   "and broker ([registry] control account) and connect each as itself")
    p.add_argument("--grids", help="GeoJSON of the unit grids to patrol (default: the demo city)")
    p.add_argument("--collectors", type=int, default=48)
    p.add_argument("--vehicles", type=int, default=6)
    p.add_argument("--sensors", type=int, default=12)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between a device's reports")
    p.add_argument("--connections", type=int, default=0, help="MQTT connections shared by the fleet (0: one per device)")
    p.add_argument("--jt808", metavar="HOST:PORT", type=_host_port,
                   help="JT/T 808 gateway for the vehicles' terminals (default: vehicles publish over MQTT)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("grids", help="unit grid polygons")
    gsub = p.add_subparsers(dest="grids_command", required=True)
    g = gsub.add_parser("import", help="validate and import unit grids from GeoJSON, GeoPackage or Shapefile (re-import updates in place)")
    g.add_argument("file")
    g.add_argument("--crs", help="source CRS if the file does not say: EPSG:4490 (CGCS2000), EPSG:4326, GCJ02, any EPSG code")
    g.set_defaults(func=cmd_grids_import)
    g = gsub.add_parser("export", help="export the imported grids as GeoJSON")
    g.add_argument("file")
    g.add_argument("--source", action="store_true", help="the original geometry and CRS instead of WGS-84")
    g.set_defaults(func=cmd_grids_export)

    p = sub.add_parser("patrol", help="the patrol plan: responsibility grids, shifts, exceptions")
    psub = p.add_subparsers(dest="patrol_command", required=True)
    g = psub.add_parser("import", help="validate and store a patrol plan (JSON; see geofence/plan.py)")
    g.add_argument("file")
    g.add_argument("--note", default="")
    g.set_defaults(func=cmd_patrol)
    g = psub.add_parser("export", help="write the current plan as JSON")
    g.add_argument("file")
    g.set_defaults(func=cmd_patrol)
    g = psub.add_parser("exception", help="add a dated exception, e.g. '{\"type\": \"leave\", \"collector\": \"c0003\", \"day\": \"2026-11-24\"}'")
    g.add_argument("json")
    g.add_argument("--note", default="")
    g.set_defaults(func=cmd_patrol)
    g = psub.add_parser("slots", help="the slots of a day")
    g.add_argument("--date", type=_day, help="YYYY-MM-DD (default today)")
    g.set_defaults(func=cmd_patrol)

    p = sub.add_parser("report", help="reports")
    rsub = p.add_subparsers(dest="report_command", required=True)
    g = rsub.add_parser("coverage", help="patrol coverage per collector and slot, community and street; writes CSV")
    g.add_argument("--date", type=_day, help="YYYY-MM-DD, a day of the city ([city] timezone; default today)")
    g.add_argument("--as-of", help="the day as it stood at this time (as the API takes times: ISO 8601 with an offset, "
                                   "epoch milliseconds, or a local time of the city; default now)")
    g.add_argument("--csv", help="CSV file (default coverage-DATE.csv)")
    g.set_defaults(func=cmd_report_coverage)

    p = sub.add_parser("accounts", help="people's accounts and API tokens (every change audited)")
    asub = p.add_subparsers(dest="accounts_command", required=True)
    g = asub.add_parser("add", help="a new account; prints a generated password once unless --password-file")
    g.add_argument("name")
    g.add_argument("--role", required=True, help="admin, commander, supervisor, viewer or collector")
    g.add_argument("--scope", required=True, help="city, or a 6-digit district code")
    g.add_argument("--password-file", help="read the password from the first line of this file")
    g.add_argument("--device", help="a collector's own handset (the one device it may see)")
    g = asub.add_parser("passwd", help="change a password (prints a generated one unless --password-file); ends its sessions")
    g.add_argument("name")
    g.add_argument("--password-file")
    for verb, text in (("disable", "refuse its logins, sessions and tokens"), ("enable", "allow it again")):
        g = asub.add_parser(verb, help=text)
        g.add_argument("name")
    asub.add_parser("list", help="every account, its role, scope and live tokens")
    g = asub.add_parser("token", help="API tokens for integrations (Authorization: Bearer ...)")
    tsub = g.add_subparsers(dest="token_command", required=True)
    t = tsub.add_parser("create", help="a new token of an account; printed once")
    t.add_argument("name")
    t.add_argument("--label", default="")
    t = tsub.add_parser("revoke", help="revoke a token by its id")
    t.add_argument("id", type=int)
    p.set_defaults(func=cmd_accounts)

    p = sub.add_parser("dead-letters", help="recent payloads that failed decoding")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_dead_letters)

    from tracker.app.cli_devices import add_device_commands

    add_device_commands(sub)
    from tracker.app.cli_cases import add_case_commands

    add_case_commands(sub)
    return parser


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _one_line(error: BaseException) -> str:
    if isinstance(error, config_mod.ConfigError):
        text = f"configuration: {error}"
    elif isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except config_mod.ConfigError as exc:
        print(f"tracker: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    _logging(settings.log.level)
    from tracker.devcity.starters import ServiceError
    from tracker.ingest.broker import BrokerError
    from tracker.storage.schema import SchemaError
    from tracker.storage.store import StoreError

    failures: list[BaseException] = []
    try:
        return args.func(args, settings) or 0
    except* (config_mod.ConfigError, CommandError, BrokerError, SchemaError, StoreError, ServiceError, OSError) as group:
        failures.extend(_leaves(group))
    for failure in failures:
        log.debug("%s", type(failure).__name__, exc_info=failure)  # the traceback, when [log] level is DEBUG
        print(f"tracker: error: {_one_line(failure)}", file=sys.stderr)
    return 2 if all(isinstance(failure, config_mod.ConfigError) for failure in failures) else 1


if __name__ == "__main__":
    sys.exit(main())
