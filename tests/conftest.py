"""Real services for the tests: a private Mosquitto from mosquitto/, and PostgreSQL.

PostgreSQL is the server named by TRACKER_DATABASE__DSN when set (a database is created
there per test), else a private throwaway cluster started for the session. Each test that
needs the database gets a fresh one cloned from a migrated template.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass

import pytest
import trio
import trio.testing

from tests.harness import BROKER_USERS, TEMPLATE
from tracker import config
from tracker.devcity.starters import Mosquitto, start_mosquitto, start_postgres
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
    admin_dsn: str  # a DSN to the server's maintenance database
    psql: str

    def dsn(self, database: str) -> str:
        head, _, _ = self.admin_dsn.rpartition("/")
        return f"{head}/{database}"

    def sql(self, statement: str) -> None:
        subprocess.run([self.psql, self.admin_dsn, "-v", "ON_ERROR_STOP=1", "-qc", statement], check=True, capture_output=True)


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Mosquitto:
    m = start_mosquitto(tmp_path_factory.mktemp("mosquitto"), 0, BROKER_USERS)
    yield m
    m.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Postgres:
    external = os.environ.get("TRACKER_DATABASE__DSN")
    cluster = None
    if external:
        head, _, _ = external.rpartition("/")
        admin = f"{head}/postgres"
        psql = "psql"
    else:
        cluster = start_postgres(tmp_path_factory.mktemp("pg"), durable=False, database="postgres")
        admin = cluster.dsn
        psql = str(cluster.bindir / "psql")
    pg = Postgres(admin, psql)
    pg.sql(f"DROP DATABASE IF EXISTS {TEMPLATE}")
    pg.sql(f"CREATE DATABASE {TEMPLATE}")

    async def migrate() -> None:
        async with open_store(pg.dsn(TEMPLATE)) as store:
            await store.migrate()

    trio.run(migrate)
    yield pg
    if cluster is not None:
        cluster.stop()


_counter = itertools.count()


@pytest.fixture
def database(postgres) -> str:
    """A fresh, migrated database for one test; returns its DSN."""
    name = f"gw_test_{os.getpid()}_{next(_counter)}"
    postgres.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield postgres.dsn(name)
    postgres.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def settings(broker, database) -> config.Settings:
    s = config.load(None, environ={})
    s = s.replace("mqtt", host="127.0.0.1", port=broker.port, username="gridwatch", password=BROKER_USERS["gridwatch"],
                  client_id=f"gridwatch-test-{next(_counter)}")
    s = s.replace("database", dsn=database)
    s = s.replace("web", port=0)
    s = s.replace("jt808", port=0)
    return s
