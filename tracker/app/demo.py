"""`tracker demo`: broker, database, demo city, simulated fleet, service and map, on one
command, with nothing to configure. Ctrl-C stops everything it started."""

from __future__ import annotations

import functools
import json
import logging
import signal
from dataclasses import dataclass
from pathlib import Path

import trio

from geofence.districts import district_name
from geofence.plan import PatrolPlan
from protocols.epoch import ms_to_datetime
from tracker.access.passwords import password_matches
from tracker.app.accounts import add_account, create_token, set_enabled, set_password
from tracker.app.service import import_grids, run_service
from tracker.clock import wall_clock_ms
from tracker.config import Settings
from tracker.devcity.city import FIRST_SLOT_LEFT_MIN, PATH as DEMO_CITY, SLOT_STAGGER_MIN, demo_plan
from tracker.devcity.credentials import kept_passwords
from tracker.devcity.dynsec_file import CONTROL_ACCOUNT, SERVICE_ACCOUNT
from tracker.devcity.hotline import run_hotline
from tracker.devcity.simulator import build_fleet, fleet_registrations, run_fleet
from tracker.devcity.starters import start_private_services
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY
from tracker.ingest.broker import BrokerParams
from tracker.registry.provisioning import Provisioning, control_account
from tracker.storage.store import Store, open_store
from web.principal import Role

log = logging.getLogger(__name__)


def run_demo(settings: Settings) -> None:
    state = Path(settings.demo.state_dir).resolve()
    print(f"gridwatch demo: state in {state}", flush=True)
    services = start_private_services(state, settings.demo.mqtt_port, settings.demo.pg_port)
    try:
        broker, database = services.broker, services.database
        settings = settings.replace("mqtt", host="127.0.0.1", port=broker.port, username=SERVICE_ACCOUNT, password=services.service_password)
        settings = settings.replace("database", dsn=database.dsn)
        settings = settings.replace("web", port=settings.demo.web_port)
        print(f"  broker   mqtt://127.0.0.1:{broker.port} (mosquitto, pid {broker.proc.pid})", flush=True)
        print(f"  database {database.shown_dsn}", flush=True)
        print(f"  passwords in {services.secrets_file}", flush=True)
        logins = kept_passwords(services.secrets_file.parent, [f"web/{a.name}" for a in DEMO_ACCOUNTS] + [METRICS_TOKEN])
        settings = settings.replace("auth", metrics_token=logins[METRICS_TOKEN])
        settings = settings.replace("registry", control_username=CONTROL_ACCOUNT, control_password=services.control_password)
        trio.run(_main, settings, broker.port, logins)
    finally:
        services.stop()
    print("gridwatch demo: stopped", flush=True)


@dataclass(frozen=True, slots=True)
class DemoAccount:
    name: str
    role: Role
    district: str | None  # None: the city


# Logins of the map, their passwords generated on the first start and kept with the others.
DEMO_ACCOUNTS = (
    DemoAccount("admin", Role.ADMIN, None),
    DemoAccount("dispatch", Role.COMMANDER, None),
    DemoAccount("anning.dispatch", Role.COMMANDER, "620105"),
    DemoAccount("qilihe.supervisor", Role.SUPERVISOR, "620103"),
    # the hotline desk: its API token is the simulated hotline's Open311 api_key
    DemoAccount("hotline", Role.COMMANDER, None),
    # a member of Anning's sanitation department (620105-HW): handles, returns, asks for time
    DemoAccount("anning.hw", Role.VIEWER, "620105"),
)
DEPARTMENT_MEMBERS = (("620105-HW", "anning.hw"),)
HOTLINE_EVERY_S = 60.0
METRICS_TOKEN = "web/metrics-token"


async def ensure_demo_accounts(store: Store, passwords: dict[str, str]) -> list[str]:
    """Create the demo's accounts, or give them back their kept password; the lines to print."""
    lines = []
    for account in DEMO_ACCOUNTS:
        password = passwords[f"web/{account.name}"]
        row = await store.account(account.name)
        if row is None:
            await add_account(store, account.name, account.role, account.district, password, actor="demo", source="demo")
        elif not password_matches(row["password_hash"], password) or not row["enabled"]:
            await set_password(store, account.name, password, actor="demo", source="demo")
            await set_enabled(store, account.name, True, actor="demo", source="demo")
        lines.append(f"  login  {account.name} / {password}  ({account.role.value}, {account.district or 'city'})")
    return lines


def is_demo_plan(stored: dict, grid_doc: dict, collectors: int) -> bool:
    """Whether ``stored`` is a plan the demo laid out (at some start) that nobody has changed
    since: the same areas, collectors, rules and exceptions, whatever its slot times."""
    def shape(doc: dict) -> dict:
        return doc | {"shifts": sorted({(s["collector"], s["area"]) for s in doc["shifts"]})}

    return shape(stored) == shape(PatrolPlan.from_dict(demo_plan(grid_doc, collectors)).to_dict())


async def _main(settings: Settings, broker_port: int, logins: dict[str, str]) -> None:
    async with open_store(settings.database.dsn, settings.database.pool_min, settings.database.pool_max) as store:
        applied = await store.migrate()
        if applied:
            print(f"  migrated {', '.join(applied)}", flush=True)
        if not (await store.fetch("SELECT count(*) AS n FROM grids"))[0]["n"]:
            report = await import_grids(store, str(DEMO_CITY), settings.grid.h3_resolution)
            districts = ", ".join(f"{district_name(d)} {d}" for d in dict.fromkeys(g.district for g in report.grids))
            print(f"  imported {len(report.grids)} unit grids of {districts} ({len(report.cover)} H3 cells)", flush=True)
        stored = await store.latest_plan()
        grid_doc = json.loads(DEMO_CITY.read_text(encoding="utf-8"))
        if stored is None or is_demo_plan(stored[1], grid_doc, settings.demo.collectors):
            # laid out afresh at every start, so that the first alerts come minutes after it
            plan = PatrolPlan.from_dict(demo_plan(grid_doc, settings.demo.collectors, ms_to_datetime(wall_clock_ms()))).to_dict()
            version = await store.save_plan(plan, "demo plan")
            print(f"  patrol plan v{version}: {len(plan['areas'])} responsibility grids, {len(plan['shifts'])} two-hour slots a day, "
                  f"the first ending {FIRST_SLOT_LEFT_MIN}-{FIRST_SLOT_LEFT_MIN + 7 * SLOT_STAGGER_MIN + 1} min from now", flush=True)
        if not settings.cases.taxonomy:  # the demo's example categories, when the database holds none yet
            settings = settings.replace("cases", taxonomy=str(DEMO_TAXONOMY))
        async with trio.open_nursery() as nursery:
            running = await nursery.start(functools.partial(run_service, settings, store, tune=True))
            if running.cases is not None:
                version, taxonomy = await running.cases.taxonomy()
                example = " — an EXAMPLE, not a city's adopted standard" if taxonomy.example else ""
                print(f"  case taxonomy v{version}: {taxonomy.version}, {len(taxonomy.categories)} categories, "
                      f"{len(taxonomy.departments)} departments{example}", flush=True)
            fleet = build_fleet(DEMO_CITY, settings.demo.collectors, settings.demo.vehicles, settings.demo.sensors)
            # every simulated device is registered and logs in as itself, with a password
            # fresh at each start (passwords are kept nowhere)
            accounts = await Provisioning(store, control_account(settings), running.registry).ensure_all(fleet_registrations(fleet))
            print(f"  registered {len(accounts)} devices (`tracker devices list`)", flush=True)
            params = BrokerParams("127.0.0.1", broker_port, "", "", "gridwatch-sim")
            await nursery.start(functools.partial(run_fleet, accounts=accounts,
                                                  speed_limit_kmh=settings.jt808.speed_limit_kmh), params, fleet, settings.demo.interval_s,
                                (settings.jt808.host, running.jt808_port) if running.jt808_port else None)
            print(f"  simulating {len(fleet)} devices", flush=True)
            print("\n".join(await ensure_demo_accounts(store, logins)), flush=True)
            if running.cases is not None:
                for department, member in DEPARTMENT_MEMBERS:
                    await store.add_department_member(department, member)
                    print(f"  department {department}: member {member}", flush=True)
                issued = await create_token(store, "hotline", "demo hotline", actor="demo", source="demo")
                await nursery.start(functools.partial(run_hotline, every_s=HOTLINE_EVERY_S), running.url, issued.token,
                                    DEMO_CITY)
                print(f"  hotline  an Open311 request about every {HOTLINE_EVERY_S:.0f} s to {running.url}/open311/v2/",
                      flush=True)
            print(f"  metrics  curl -H 'Authorization: Bearer {settings.auth.metrics_token}' {running.url}/metrics", flush=True)
            print(f"\n  command map: {running.url}/   (Ctrl-C to stop)\n", flush=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    print(f"\ngridwatch demo: {signal.Signals(signum).name}, stopping", flush=True)
                    break
            await running.stop()
            nursery.cancel_scope.cancel()
