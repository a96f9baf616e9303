"""Mistakes an operator can make end `tracker` with one line on stderr, ``tracker: error:
...``, exit status 2 for usage and configuration and 1 for the rest, and no traceback:
run as a real process, from the repository, against the test broker and database."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys

import pytest
import trio

from tests.harness import BROKER_USERS, DEMO_CITY, REPO, store_task
from tracker.app.service import import_grids
from tracker.storage.store import migrations

_ids = itertools.count()
LATEST = migrations()[-1][0]


async def tracker(*args: str, **env: str) -> tuple[int, str, str]:
    """`python -m tracker ARGS` with the shipped config.toml, overridden by ``env``
    (TRACKER_ prefix added) and nothing from the caller's own TRACKER_ variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environ.update({"TRACKER_WEB__PORT": "0", "TRACKER_JT808__PORT": "0"})
    environ.update({f"TRACKER_{key.upper()}": value for key, value in env.items()})
    with trio.fail_after(120):
        done = await trio.run_process([sys.executable, "-m", "tracker", *args], cwd=REPO, env=environ,
                                      capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def error_line(err: str) -> str:
    """The one line on stderr, after ``tracker: error: ``."""
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracker: error: "), err
    return lines[0].removeprefix("tracker: error: ")


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_env(broker, password: str | None = None) -> dict[str, str]:
    return {"mqtt__host": "127.0.0.1", "mqtt__port": str(broker.port), "mqtt__username": "gridwatch",
            "mqtt__password": BROKER_USERS["gridwatch"] if password is None else password,
            "mqtt__client_id": f"gridwatch-cli-test-{os.getpid()}-{next(_ids)}"}


@pytest.fixture
def database_with_grids(database) -> str:
    """The test database with the demo city imported, as a service's database would be."""

    async def load() -> None:
        async with trio.open_nursery() as nursery:
            store = await nursery.start(store_task, database)
            await import_grids(store, str(DEMO_CITY), 12)
            nursery.cancel_scope.cancel()

    trio.run(load)
    return database


@pytest.fixture
def other_database(postgres):
    """Make a database by SQL of the test's choosing; dropped afterwards."""
    made: list[str] = []

    def make(*statements: str) -> str:
        name = f"gw_cli_{os.getpid()}_{next(_ids)}"
        dsn = postgres.create_database(name, template="template1")  # owned by the application's role
        made.append(name)
        for statement in statements:
            subprocess.run([postgres.psql, dsn, "-v", "ON_ERROR_STOP=1", "-qc", statement], check=True, capture_output=True)
        return dsn

    yield make
    for name in made:
        postgres.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- the broker ---------------------------------------------------------------------


def test_serve_with_a_wrong_broker_password_says_the_broker_refused_it(broker, database_with_grids):
    # the service logs its start-up at INFO (patrol plan, grids); at WARNING, a good start is silent
    code, out, err = trio.run(lambda: tracker("serve", database__dsn=database_with_grids, log__level="WARNING",
                                              **broker_env(broker, "wrong")))
    assert code == 1, out + err
    assert error_line(err).startswith("broker refused 'gridwatch': "), err
    assert "serving" not in out


def test_serve_with_no_broker_listening_says_it_cannot_reach_it(database):
    port = closed_port()
    code, out, err = trio.run(lambda: tracker("serve", database__dsn=database, mqtt__port=str(port)))
    assert code == 1, out + err
    assert error_line(err) == f"cannot reach the MQTT broker at 127.0.0.1:{port}: Connection refused"


# --- the database -------------------------------------------------------------------


async def test_migrate_with_no_database_listening_says_it_cannot_connect():
    port = closed_port()
    code, out, err = await tracker("db", "migrate", database__dsn=f"postgresql://gridwatch:secret@127.0.0.1:{port}/gridwatch")
    assert code == 1, out + err
    line = error_line(err)
    assert line.startswith(f"cannot connect to PostgreSQL at postgresql://gridwatch@127.0.0.1:{port}/gridwatch: "), line
    assert "secret" not in line


@pytest.mark.parametrize("dsn, says", [
    ("host=127.0.0.1 password=secret", 'invalid PostgreSQL DSN: invalid DSN: scheme is expected to be either "postgresql" or "postgres"'),
    ("mysql://gridwatch@127.0.0.1/gridwatch", "invalid PostgreSQL DSN: invalid DSN: scheme is expected"),
])
async def test_a_dsn_that_is_not_postgresql_is_named_invalid_without_echoing_it(dsn, says):
    code, out, err = await tracker("db", "migrate", database__dsn=dsn)
    assert code == 1, out + err
    line = error_line(err)
    assert line.startswith(says) and "secret" not in line, line


async def test_an_unknown_database_user_or_a_wrong_password_is_refused_by_the_server(postgres):
    head, _, rest = postgres.dsn("postgres").partition("//")
    host = rest.partition("@")[2]
    for user in ("nobody_here:whatever", "gridwatch:not-the-password"):
        code, out, err = await tracker("dead-letters", database__dsn=f"{head}//{user}@{host}")
        assert code == 1, out + err
        name = user.partition(":")[0]
        # with password authentication the server does not say whether the role exists
        assert error_line(err).endswith(f'password authentication failed for user "{name}"'), err


def test_a_database_never_migrated_asks_for_a_migration(other_database, tmp_path):
    dsn = other_database()
    code, out, err = trio.run(lambda: tracker("grids", "export", str(tmp_path / "out.json"), database__dsn=dsn))
    assert code == 1, out + err
    assert error_line(err) == f"database schema is at version 0, this code needs {LATEST}: run `tracker db migrate`"
    assert not (tmp_path / "out.json").exists()


def test_serve_on_a_database_of_a_later_release_refuses_it(other_database, broker):
    dsn = other_database("CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL)",
                         f"INSERT INTO schema_version VALUES ({LATEST + 1}, 'from a later release')")
    code, out, err = trio.run(lambda: tracker("serve", database__dsn=dsn, **broker_env(broker)))
    assert code == 1, out + err
    assert error_line(err) == (f"database schema is at version {LATEST + 1}, newer than this code knows ({LATEST}): "
                               "run the release that migrated it")


# --- files and configuration --------------------------------------------------------


async def test_a_missing_grids_file_is_named(database, tmp_path):
    missing = tmp_path / "no-such-city.geojson"
    code, out, err = await tracker("grids", "import", str(missing), database__dsn=database)
    assert code == 1, out + err
    assert error_line(err) == f"{missing}: not readable GeoJSON: [Errno 2] No such file or directory: '{missing}'"


async def test_a_grids_file_that_is_not_geojson_is_named(database, tmp_path):
    path = tmp_path / "city.geojson"
    path.write_text("code,name\n620105001001001,north\n")
    code, out, err = await tracker("grids", "import", str(path), database__dsn=database)
    assert code == 1, out + err
    assert error_line(err).startswith(f"{path}: not readable GeoJSON: Expecting value: line 1 column 1"), err


async def test_a_file_that_cannot_be_written_or_a_plan_not_yet_stored_is_one_line(database, tmp_path):
    nowhere = tmp_path / "no-such-folder" / "grids.geojson"
    code, out, err = await tracker("grids", "export", str(nowhere), database__dsn=database)
    assert (code, error_line(err)) == (1, f"{nowhere}: No such file or directory"), out + err
    code, out, err = await tracker("report", "coverage", database__dsn=database)
    assert (code, error_line(err)) == (1, "no patrol plan stored: import one with `tracker patrol import FILE`"), out + err


@pytest.mark.parametrize("args, env, says", [
    (["db", "migrate"], {"mqtt__port": "eighteen"}, "configuration: [mqtt] port: expected int, got 'eighteen'"),
    (["db", "migrate"], {"grid__h3_resolution": "16"}, "configuration: [grid] h3_resolution: must be 0..15"),
    (["--config", "/nonexistent/gridwatch.toml", "db", "migrate"], {}, "configuration: /nonexistent/gridwatch.toml: No such file or directory"),
    (["db", "migrate"], {"database__dsn": ""}, "configuration: no database: set [database] dsn in config.toml or TRACKER_DATABASE__DSN"),
    (["report", "coverage", "--date", "2026-13-01"], {},
     "argument --date: wants a date as YYYY-MM-DD, got '2026-13-01' (see `tracker report coverage --help`)"),
])
async def test_a_bad_configuration_value_or_argument_is_a_usage_error(args, env, says):
    code, out, err = await tracker(*args, **env)
    assert (code, error_line(err)) == (2, says), out + err
