"""Real services for the tests: a private Mosquitto from mosquitto/, and PostgreSQL.

PostgreSQL is the server named by TRACKER_DATABASE__DSN when set (a database is created
there per test), else a private throwaway cluster started for the session. Each test that
needs the database gets a fresh one cloned from a migrated template.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.harness import BROKER_USERS, PG_PASSWORDS, TEMPLATE
from tests.helpers import discard_session
from tracker import config
from tracker.devcity import starters
from tracker.devcity.starters import SUPERUSER, Mosquitto, free_port, start_mosquitto, start_postgres
from tracker.storage.store import open_store

DECODER_MODULES = ("protocols.handset.decode", "protocols.owntracks.decode", "protocols.jt808.session")


@pytest.fixture(autouse=True)
def every_decoded_fix_is_sane(monkeypatch):
    """Each fix a decoder builds during any test passes tests/sanity.py."""
    import importlib

    from tests.sanity import checked

    for name in DECODER_MODULES:
        monkeypatch.setattr(importlib.import_module(name), "Fix", checked)


@pytest.fixture
def autojump_clock():
    """trio's MockClock that jumps ahead whenever every task waits: minutes pass in no time."""
    return trio.testing.MockClock(autojump_threshold=0)


@dataclass
class Postgres:
    admin_dsn: str  # the server's maintenance database, as a role that may create databases
    app_dsn: str  # a database of the application's role; other databases: the same, renamed
    owner: str | None  # the application's role, owner of each test database (None: the admin's)
    psql: str
    admin_password: str | None = field(default=None, repr=False)

    def dsn(self, database: str) -> str:
        head, _, _ = self.app_dsn.rpartition("/")
        return f"{head}/{database}"

    def sql(self, statement: str) -> None:
        env = dict(os.environ, PGPASSWORD=self.admin_password) if self.admin_password else None
        subprocess.run([self.psql, "-X", self.admin_dsn, "-v", "ON_ERROR_STOP=1", "-q"], input=statement, text=True,
                       env=env, check=True, capture_output=True)

    def create_database(self, name: str, template: str = TEMPLATE) -> str:
        """A new database cloned from ``template``, owned by the application's role; its DSN."""
        owner = f" OWNER {self.owner}" if self.owner else ""
        self.sql(f"CREATE DATABASE {name} TEMPLATE {template}{owner}")
        return self.dsn(name)


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Mosquitto:
    m = start_mosquitto(tmp_path_factory.mktemp("mosquitto"), 0, BROKER_USERS)
    yield m
    m.discard()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Postgres:
    external = os.environ.get("TRACKER_DATABASE__DSN")
    cluster = None
    if external:
        head, _, _ = external.rpartition("/")
        pg = Postgres(f"{head}/postgres", external, None, "psql")
    else:
        cluster = start_postgres(tmp_path_factory.mktemp("pg"), durable=False, database=TEMPLATE, **PG_PASSWORDS)
        # the admin's DSN carries no password: psql gets it from the environment
        pg = Postgres(f"postgresql://{SUPERUSER}@127.0.0.1:{cluster.port}/postgres", cluster.dsn, cluster.role,
                      str(cluster.bindir / "psql"), cluster.superuser_password)
    pg.sql(f"DROP DATABASE IF EXISTS {TEMPLATE}")
    owner = f" OWNER {pg.owner}" if pg.owner else ""
    pg.sql(f"CREATE DATABASE {TEMPLATE}{owner}")

    async def migrate() -> None:
        async with open_store(pg.dsn(TEMPLATE)) as store:
            await store.migrate()

    trio.run(migrate)
    yield pg
    if cluster is not None:
        cluster.discard()


_counter = itertools.count()


@pytest.fixture
def database(postgres) -> str:
    """A fresh, migrated database for one test; returns its DSN."""
    name = f"gw_test_{os.getpid()}_{next(_counter)}"
    yield postgres.create_database(name)
    postgres.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(broker, database) -> Iterator[config.Settings]:
    s = config.load(None, environ={})
    s = s.replace("mqtt", host="127.0.0.1", port=broker.port, username="gridwatch", password=BROKER_USERS["gridwatch"],
                  client_id=f"gridwatch-test-{next(_counter)}")
    s = s.replace("database", dsn=database)
    s = s.replace("web", port=0)
    s = s.replace("jt808", port=0)
    # Most tests publish for made-up device ids through the simulator account and are not
    # about the registry: they let unregistered devices in. Tests of the registry itself
    # (tests/tracker/registry) set "refuse", the production default.
    s = s.replace("registry", unregistered=config.Unregistered.ACCEPT, control_password=BROKER_USERS["gridwatch-control"])
    yield s
    discard_session(broker, s.mqtt.client_id)  # the service's session is persistent


@dataclass
class RestartablePostgres:
    """A private cluster of one test on a fixed port, to stop and start again (outages)."""

    state_dir: Path
    port: int
    cluster: starters.Postgres

    @property
    def dsn(self) -> str:
        return self.cluster.dsn

    def stop(self) -> None:
        self.cluster.stop()

    def start(self) -> None:
        self.cluster = start_postgres(self.state_dir, self.port, durable=False, **PG_PASSWORDS)


@pytest.fixture
def restartable_postgres(tmp_path) -> RestartablePostgres:
    """A migrated database on a cluster of its own, which the test may stop and start."""
    state_dir = tmp_path / "pg"
    port = free_port()  # kept for restarts: the service's DSN names it
    pg = RestartablePostgres(state_dir, port, start_postgres(state_dir, port, durable=False, **PG_PASSWORDS))

    async def migrate() -> None:
        async with open_store(pg.dsn) as store:
            await store.migrate()

    trio.run(migrate)
    yield pg
    pg.cluster.discard()
