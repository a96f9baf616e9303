"""The private broker and cluster of the demo and the tests, on real processes: nothing
runs as root, nothing connects without a password, the service's database role is no
superuser, and the demo's passwords are generated once, kept owner-only and reused."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import paho.mqtt.client as paho
import paho.mqtt.publish as paho_publish
import pytest
from paho.mqtt.exception import MQTTException

from protocols.model import DeviceClass
from tests.harness import BROKER_USERS, REPO
from tracker.devcity import starters
from tracker.devcity.credentials import kept_passwords
from tracker.devcity.starters import (
    SUPERUSER,
    Postgres,
    ServiceError,
    start_mosquitto,
    start_postgres,
    start_private_services,
)
from tracker.ingest.dynsec import ControlAccount, create_device, open_dynsec
from tracker.storage.store import DAY_MS, open_store

# quotes, URL delimiters and a percent sign: the DSN and the SQL must carry them intact
ROLE_PASSWORD = "it's @ 50%/#?:app"
SUPERUSER_PASSWORD = "admin's @ 50%/#?:root"
T = 1_764_000_000_123  # 2025-11-24 16:00:00.123 UTC


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Postgres:
    pg = start_postgres(tmp_path_factory.mktemp("cluster"), durable=False,
                        superuser_password=SUPERUSER_PASSWORD, role_password=ROLE_PASSWORD)
    yield pg
    pg.discard()


def psql(pg: Postgres, statement: str, *, role: str, password: str | None, socket: bool = False,
         database: str = "gridwatch") -> subprocess.CompletedProcess:
    """psql as ``role``; over the server's Unix socket as the OS user the server runs as
    (the user a `trust` line would let in as anyone), else over TCP as ourselves."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSFILE"] = os.devnull
    if password is not None:
        env["PGPASSWORD"] = password
    host = str(pg.datadir) if socket else "127.0.0.1"
    argv = [str(pg.bindir / "psql"), "-X", "-w", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-h", host, "-p", str(pg.port),
            "-U", role, "-d", database, "-tAc", statement]
    if socket and pg.user is not None:
        argv = ["runuser", "-u", pg.user, "--", "env", *(f"{k}={v}" for k, v in env.items()), *argv]
    return subprocess.run(argv, env=env, capture_output=True, text=True)


def test_the_cluster_lets_no_one_in_without_a_password(cluster):
    for role in (SUPERUSER, cluster.role):
        over_tcp = psql(cluster, "SELECT 1", role=role, password=None)
        assert over_tcp.returncode != 0 and "no password supplied" in over_tcp.stderr
        # the server's own OS user on the local socket, which initdb's default would trust
        local = psql(cluster, "SELECT 1", role=role, password=None, socket=True)
        assert local.returncode != 0 and "no password supplied" in local.stderr
        wrong = psql(cluster, "SELECT 1", role=role, password="guess")
        assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    assert psql(cluster, "SELECT current_user", role=SUPERUSER, password=SUPERUSER_PASSWORD, socket=True).stdout == "postgres\n"
    assert psql(cluster, "SELECT current_user", role=cluster.role, password=ROLE_PASSWORD).stdout == "gridwatch\n"


def test_every_host_and_local_line_of_pg_hba_asks_for_scram(cluster):
    lines = [line.split() for line in (cluster.datadir / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert {fields[0] for fields in lines} == {"local", "host"}
    assert {fields[-1] for fields in lines} == {"scram-sha-256"}


INSUFFICIENT_PRIVILEGE = "42501"


@pytest.mark.parametrize("statement", [
    "CREATE ROLE intruder LOGIN",
    "CREATE ROLE intruder LOGIN SUPERUSER",
    "ALTER ROLE gridwatch SUPERUSER",
    "ALTER ROLE postgres PASSWORD 'taken over'",
    "CREATE DATABASE elsewhere",
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "SELECT pg_read_file('/etc/passwd')",
])
def test_the_application_role_cannot_act_as_superuser(cluster, statement):
    refused = psql(cluster, statement, role=cluster.role, password=ROLE_PASSWORD)
    assert refused.returncode != 0
    assert f"ERROR:  {INSUFFICIENT_PRIVILEGE}:" in refused.stderr
    assert psql(cluster, "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user",
                role=cluster.role, password=ROLE_PASSWORD).stdout == "f|f|f\n"


async def test_the_application_role_migrates_and_writes_the_database_it_owns(cluster):
    async with open_store(cluster.dsn) as store:
        applied = await store.migrate()
        assert applied and applied[0].startswith("0001")
        row = ("c0001", T, 36.1, 103.7, T + 450, 5.0, None, None, None, 80.0, "wgs84", 7, 631_000_000_000_000_001, "620105001001001", False)
        await store.write_pings([row], {T // DAY_MS}, [])  # creates the day's partition too
        got = await store.fetch("SELECT device FROM pings")
        owners = await store.fetch("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        database_owner = await store.fetch("SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()")
    assert [r["device"] for r in got] == ["c0001"]
    assert [r["tableowner"] for r in owners] == ["gridwatch"]
    assert database_owner[0]["owner"] == "gridwatch"


def _uids(pid: int) -> list[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(uid) for uid in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def _connack(port: int, username: str, password: str) -> str | None:
    """None when the broker takes the account, else its refusal."""
    try:
        paho_publish.single("gw/v1/620105/collector/c9001/pos", b"", port=port, client_id=f"t-auth-{username}",
                            auth={"username": username, "password": password}, protocol=paho.MQTTv311)
    except MQTTException as exc:
        return str(exc)
    return None


def test_the_broker_runs_unprivileged_and_still_reads_its_accounts(broker):
    uids = _uids(broker.proc.pid)
    if os.geteuid() == 0:
        assert uids == [pwd.getpwnam("mosquitto").pw_uid] * 4
    else:
        assert uids == [os.geteuid()] * 4
    # the plugin's file is read after the broker dropped to its user: accounts still work
    assert _connack(broker.port, "gridwatch", BROKER_USERS["gridwatch"]) is None
    assert _connack(broker.port, "gridwatch", "guess") is not None


def test_without_the_dynamic_security_plugin_the_broker_is_not_started(tmp_path, monkeypatch):
    monkeypatch.setattr(starters, "DYNSEC_PLUGIN", tmp_path / "nowhere" / "mosquitto_dynamic_security.so")
    with pytest.raises(ServiceError, match=r"dynamic security plugin is not at .*nowhere"):
        start_mosquitto(tmp_path / "m", 0, {"gridwatch": "x"})


async def test_accounts_added_at_run_time_outlive_a_broker_restart_and_the_starting_ones_follow_the_caller(tmp_path):
    users = {"gridwatch": "one", "gridwatch-control": "ctl"}
    broker = start_mosquitto(tmp_path / "m", 0, users)
    try:
        async with open_dynsec(ControlAccount("127.0.0.1", broker.port, "gridwatch-control", "ctl")) as dynsec:
            await dynsec.execute(create_device("c9501", DeviceClass.COLLECTOR, "620105", "dev-pass"))
    finally:
        broker.stop()
    again = start_mosquitto(tmp_path / "m", broker.port, {**users, "gridwatch": "two"})
    try:
        assert _connack(again.port, "c9501", "dev-pass") is None
        assert _connack(again.port, "gridwatch", "one") is not None
        assert _connack(again.port, "gridwatch", "two") is None
    finally:
        again.discard()


def test_kept_passwords_are_random_per_state_dir_and_kept_when_names_are_added(tmp_path):
    first = kept_passwords(tmp_path / "a", ("one", "two"))
    assert kept_passwords(tmp_path / "a", ("one",)) == {"one": first["one"]}
    assert kept_passwords(tmp_path / "a", ("two", "three"))["two"] == first["two"]
    other = kept_passwords(tmp_path / "b", ("one", "two"))
    assert len({first["one"], first["two"], other["one"], other["two"]}) == 4
    assert all(len(p) >= 32 for p in (*first.values(), *other.values()))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_demo_passwords_are_generated_on_first_start_kept_owner_only_and_reused(tmp_path):
    services = start_private_services(tmp_path, durable=False)
    try:
        secrets_file = services.secrets_file
        assert secrets_file.parent.parent == tmp_path
        assert (_mode(secrets_file), _mode(secrets_file.parent)) == (0o600, 0o700)
        kept = json.loads(secrets_file.read_text())
        assert sorted(kept) == ["mqtt/gridwatch", "mqtt/gridwatch-control", "mqtt/simulator", "postgres/gridwatch",
                                "postgres/postgres"]
        assert len(set(kept.values())) == 5
        assert services.service_password == kept["mqtt/gridwatch"]
        assert services.database.role_password == kept["postgres/gridwatch"]
        # the printed DSN names the application role and holds no password
        assert services.database.shown_dsn == f"postgresql://gridwatch@127.0.0.1:{services.database.port}/gridwatch"
        assert psql(services.database, "SELECT 1", role="gridwatch", password=kept["postgres/gridwatch"]).stdout == "1\n"
    finally:
        services.stop()
    os.chmod(secrets_file, 0o644)  # loosened by hand: tightened again on the next start

    again = start_private_services(tmp_path, durable=False)
    try:
        assert json.loads(again.secrets_file.read_text()) == kept
        assert _mode(again.secrets_file) == 0o600
        assert psql(again.database, "SELECT current_user", role="gridwatch", password=kept["postgres/gridwatch"]).stdout == "gridwatch\n"
        assert psql(again.database, "SELECT 1", role=SUPERUSER, password=kept["postgres/postgres"]).stdout == "1\n"
        assert _connack(again.broker.port, "gridwatch", kept["mqtt/gridwatch"]) is None
        assert _connack(again.broker.port, "simulator", kept["mqtt/simulator"]) is None
        assert _connack(again.broker.port, "gridwatch-control", kept["mqtt/gridwatch-control"]) is None
        assert _connack(again.broker.port, "gridwatch", BROKER_USERS["gridwatch"]) is not None
    finally:
        again.database.discard()
        again.broker.discard()


def _stdlib_python_for(user: str) -> str | None:
    """A Python that ``user`` may run (the starters need only the standard library)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if subprocess.run(["runuser", "-u", user, "--", candidate, "-c", "import sys; assert sys.version_info >= (3, 11)"],
                          capture_output=True).returncode == 0:
            return candidate
    return None


RUN_AS_NOBODY = """
import json, sys
from pathlib import Path
from tracker.devcity.starters import start_private_services
services = start_private_services(Path(sys.argv[1]), durable=False)
try:
    status = Path(f"/proc/{services.broker.proc.pid}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    print(json.dumps({"broker_uid": int(uid), "dsn": services.database.dsn, "cluster_os_user": services.database.user}))
finally:
    services.database.discard()
    services.broker.discard()
"""


def test_an_unprivileged_user_starts_the_pair_as_itself():
    if os.geteuid() != 0:
        pytest.skip("this run is unprivileged already: every other test here covers it")
    nobody = pwd.getpwnam("nobody")
    python = _stdlib_python_for("nobody")
    starters = REPO / "tracker" / "devcity" / "starters.py"
    if python is None or subprocess.run(["runuser", "-u", "nobody", "--", "test", "-r", str(starters)]).returncode:
        pytest.skip("no Python or checkout that the user nobody can reach")
    state = Path(tempfile.mkdtemp(prefix="gridwatch-nobody-"))
    try:
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        ran = subprocess.run(["runuser", "-u", "nobody", "--", "env", f"PYTHONPATH={REPO}", f"HOME={state}",
                              python, "-c", RUN_AS_NOBODY, str(state / "demo")], capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        report = json.loads(ran.stdout)
        assert report["broker_uid"] == nobody.pw_uid
        assert report["cluster_os_user"] is None  # not root: no user switch
        assert report["dsn"].startswith("postgresql://gridwatch:")
        assert _mode(state / "demo" / "secrets" / "passwords.json") == 0o600
        assert (state / "demo" / "secrets" / "passwords.json").stat().st_uid == nobody.pw_uid
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_a_cluster_left_from_the_trusting_days_is_refused_not_reused():
    state = Path(tempfile.mkdtemp(prefix="gridwatch-trusting-"))
    try:
        os.chmod(state, 0o755)  # reachable by the cluster's user: the cluster would live right here
        (state / "pg").mkdir()
        (state / "pg" / "PG_VERSION").write_text("15\n")
        (state / "pg" / "pg_hba.conf").write_text("# TYPE DATABASE USER ADDRESS METHOD\nlocal all all trust\n")
        with pytest.raises(ServiceError, match="predates password authentication"):
            start_postgres(state, superuser_password="x", role_password="y")
    finally:
        shutil.rmtree(state, ignore_errors=True)
