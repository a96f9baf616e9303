"""The shared harness: where the repository and the demo city are, the broker accounts of
the test broker and the test cluster's passwords (fixed: both are throwaway), and starting
the service on the test's broker and database.

conftest.py holds the fixtures (broker, database, settings, clocks); test modules import
what they need from here, never from each other.
"""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

import trio

from tracker.app.service import import_grids, run_service
from tracker.devcity.city import PATH as DEMO_CITY
from tracker.storage.store import open_store

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = "gridwatch_template"

# The accounts the test broker starts with (their roles: tracker.devcity.dynsec_file's
# DEFAULT_ROLES). Device accounts are not here: a test that needs one provisions it
# through the registry, as production does (tests/tracker/registry).
BROKER_USERS = {
    "gridwatch": "svc-secret",
    "gridwatch-control": "control-secret",
    # publishes for any device: the load generators' and most tests' account
    "simulator": "sim-secret",
}
# the test cluster's superuser and application role (start_postgres keyword arguments)
PG_PASSWORDS = {"superuser_password": "pg-admin-secret", "role_password": "pg-app-secret"}


# the middle of grid 620105003003010 (Anning demo city)
LAT, LON = 36.1050, 103.7200
GRID = "620105003003010"


async def start_service(nursery, settings, **service):
    """A store on the test's database with the demo city imported, and the service on it."""
    store = await nursery.start(store_task, settings.database.dsn)
    await import_grids(store, str(DEMO_CITY), settings.grid.h3_resolution)
    running = await nursery.start(lambda task_status: run_service(settings, store, task_status=task_status, **service))
    return store, running


async def store_task(dsn, *, task_status=trio.TASK_STATUS_IGNORED, **options):
    """An open store for as long as the nursery runs: ``store = await nursery.start(store_task, dsn)``;
    ``options`` go to ``open_store`` (e.g. ``command_timeout_s``)."""
    async with open_store(dsn, **options) as store:
        task_status.started(store)
        await trio.sleep_forever()


def ws_url(running) -> str:
    return running.url.replace("http://", "ws://") + "/ws"


_accounts = itertools.count(1)


async def new_account(store, *, role: str = "admin", district: str | None = None, device: str | None = None) -> tuple[str, str]:
    """A new account of ``role`` scoped to ``district`` (None: the city), made directly
    through the store; its (name, password), for tests that log in."""
    from tracker.app.accounts import add_account
    from web.principal import Role

    name = f"test-{role}-{district or 'city'}-{next(_accounts)}-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    await add_account(store, name, Role(role), district, password, actor="test", device=device)
    return name, password


async def auth_headers(store, *, role: str = "admin", district: str | None = None) -> dict[str, str]:
    """HTTP headers that authenticate a request (or a WebSocket handshake) to the service
    on ``store``'s database as an account of ``role`` scoped to ``district`` (None: the
    city). Every test that talks to a running service over HTTP or WebSocket gets its
    headers here, so they follow how the service authenticates: a new account of that
    role and scope, and an API token of it, made directly through the store."""
    from tracker.app.accounts import create_token

    name, _ = await new_account(store, role=role, district=district)
    issued = await create_token(store, name, "tests", actor="test")
    return {"Authorization": f"Bearer {issued.token}"}
