"""Private Mosquitto and PostgreSQL instances for `tracker demo` and the tests.

Both are started from the Debian packages' binaries under a state directory, on a free
(or given) loopback port, and stopped by whoever started them. Neither runs as root: as
root, Mosquitto drops to its `mosquitto` user and the cluster is created and run as
`postgres`. Every account has a password, given by the caller: the cluster's superuser
(set at initdb, used only to provision) and a non-superuser application role that owns
the application database, the broker's accounts likewise.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tracker.devcity.credentials import FILE_NAME, kept_passwords
from tracker.devcity.dynsec_file import CONTROL_ACCOUNT, DEFAULT_ROLES, SERVICE_ACCOUNT, SIMULATOR_ACCOUNT, write_dynsec_file

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO_DIR = REPO / "mosquitto"


class ServiceError(RuntimeError):
    """A private service could not be started; the message says which and why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"{what} exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceError(f"{what} did not listen on port {port} within {timeout:.0f} s")


# --- running as someone else ------------------------------------------------------------


def _unprivileged(candidates: tuple[str, ...]) -> str | None:
    """The first existing user of ``candidates`` to run a service as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in candidates:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServiceError(f"running as root and no unprivileged user ({', '.join(candidates)}) exists")


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


def _reachable_by(user: str | None, path: Path) -> bool:
    if user is None:
        return True
    return subprocess.run(_as_user(user, ["test", "-x", str(path)]), capture_output=True).returncode == 0


def _home_for(user: str | None, state_dir: Path, kind: str) -> Path | None:
    """None when ``user`` can reach ``state_dir``; else a directory of its own under the
    system temp dir (e.g. for a checkout under /root), the same one on every start."""
    if _reachable_by(user, state_dir):
        return None
    digest = hashlib.sha1(str(state_dir).encode()).hexdigest()[:12]
    home = Path(tempfile.gettempdir()) / f"gridwatch-{kind}-{digest}"
    home.mkdir(mode=0o755, exist_ok=True)
    # the name is predictable: take it only if no one else made it (or a link in its place)
    made = home.lstat()
    if not stat.S_ISDIR(made.st_mode) or made.st_uid not in (os.geteuid(), pwd.getpwnam(user or "root").pw_uid):
        raise ServiceError(f"{home} exists and is not ours: remove it")
    log.info("state dir %s is not reachable by %s; %s files kept in %s", state_dir, user, kind, home)
    return home


def _give(user: str | None, path: Path, mode: int) -> None:
    os.chmod(path, mode)
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


# --- Mosquitto --------------------------------------------------------------------------


@dataclass
class Mosquitto:
    port: int
    proc: subprocess.Popen
    users: dict[str, str] = field(repr=False)
    log_path: Path
    scratch: Path | None = None  # the broker's own directory outside the state dir, if any

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def discard(self) -> None:
        """Stop, and remove what was kept outside the state dir (throwaway brokers)."""
        self.stop()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
DYNSEC_FILE = "dynamic-security.json"


def start_mosquitto(state_dir: Path, port: int, users: Mapping[str, str], overrides: str = "",
                    roles: Mapping[str, str] | None = None) -> Mosquitto:
    """Start Mosquitto with mosquitto/mosquitto.conf and the dynamic security plugin on a
    loopback port. ``users`` (name: password) are the accounts the starter provisions;
    ``roles`` (name: one of ``tracker.devcity.dynsec_file.ROLES``) what each may do,
    by default ``DEFAULT_ROLES`` for the names it lists (an account given no role may
    connect and do nothing). Devices are not provisioned here: the registry adds them
    at run time over ``$CONTROL/dynamic-security/v1``, and the plugin keeps them in its
    file, which later starts keep (only the accounts above are rewritten).
    ``overrides``: configuration lines after the file's (a test broker with a tiny
    queue, say).

    As root the broker drops to the `mosquitto` user (its ``user`` option), which then
    reads and rewrites the plugin's file: that, and its persistence directory, are its own.
    """
    if not users:
        raise ValueError("the broker needs at least one account")
    for name, password in users.items():
        if not name or ":" in name or "\n" in name or "\n" in password or not password:
            raise ValueError(f"unusable broker account {name!r}")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise ServiceError("mosquitto is not installed (Debian package 'mosquitto')")
    plugin = dynsec_plugin()
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    _kill_stale(state_dir / "mosquitto.pid")
    port = port or free_port()
    run_as = _unprivileged(("mosquitto", "nobody"))
    scratch = _home_for(run_as, state_dir, "mosquitto")
    home = scratch or state_dir
    _give(run_as, home, 0o700)
    dynsec = home / DYNSEC_FILE
    granted = {name: (roles if roles is not None else DEFAULT_ROLES).get(name) for name in users}
    try:
        write_dynsec_file(dynsec, users, granted)
    except ValueError as exc:
        raise ServiceError(f"{dynsec}: {exc}") from None
    (home / "passwd").unlink(missing_ok=True)  # left by a broker of the password-file days
    (home / "acl").unlink(missing_ok=True)
    conf = home / "mosquitto.conf"
    header = [
        f"listener {port} 127.0.0.1",
        f"plugin {plugin}",
        f"plugin_opt_config_file {dynsec}",
        f"persistence_location {home}/",
    ]
    if run_as is not None:
        header.append(f"user {run_as}")
    conf.write_text("\n".join(header) + "\n" + (MOSQUITTO_DIR / "mosquitto.conf").read_text() + "\n" + overrides)
    for path in (dynsec, conf):
        _give(run_as, path, 0o600)
    log_path = state_dir / "mosquitto.log"
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    (state_dir / "mosquitto.pid").write_text(str(proc.pid))
    try:
        _wait_port(port, 10, "mosquitto", proc)
    except ServiceError as exc:
        proc.kill()
        proc.wait()
        raise ServiceError(f"{exc}; see {log_path}: {log_path.read_text()[-2000:]}") from None
    return Mosquitto(port, proc, dict(users), log_path, scratch)


def dynsec_plugin() -> Path:
    """Where Debian's mosquitto package puts the dynamic security plugin; an error that
    says so when it is not there (another distribution, another architecture)."""
    if not DYNSEC_PLUGIN.exists():
        raise ServiceError(f"the Mosquitto dynamic security plugin is not at {DYNSEC_PLUGIN} (Debian package "
                           "'mosquitto' 2.0 or later on x86-64); the broker cannot authenticate anyone without it")
    return DYNSEC_PLUGIN


def _kill_stale(pid_file: Path) -> None:
    """A previous run killed hard may have left its broker behind: stop it."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"mosquitto" in cmdline:
        os.kill(pid, signal.SIGTERM)


# --- PostgreSQL -------------------------------------------------------------------------

SUPERUSER = "postgres"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _pg_bindir() -> Path:
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for root in reversed(roots):
        if (root / "initdb").exists():
            return root
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ServiceError("PostgreSQL server binaries not found (Debian package 'postgresql')")


def _literal(text: str) -> str:
    """An SQL string literal (standard_conforming_strings is on from PostgreSQL 9.1)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Postgres:
    port: int
    datadir: Path
    bindir: Path
    user: str | None  # the OS user the server runs as; None: ours
    role: str  # the application role, owner of ``database``
    database: str
    role_password: str = field(repr=False)
    superuser_password: str = field(repr=False)
    scratch: Path | None = None  # the cluster's directory outside the state dir, if any

    @property
    def dsn(self) -> str:
        """The application's DSN: the application role, with its password."""
        return f"postgresql://{self.role}:{quote(self.role_password, safe='')}@127.0.0.1:{self.port}/{self.database}"

    @property
    def shown_dsn(self) -> str:
        """The application's DSN without the password, to print or log."""
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{self.database}"

    def admin_dsn(self, database: str = "postgres") -> str:
        """The superuser's DSN: for provisioning and throwaway clusters only."""
        return f"postgresql://{SUPERUSER}:{quote(self.superuser_password, safe='')}@127.0.0.1:{self.port}/{database}"

    def psql(self, script: str, database: str = "postgres") -> subprocess.CompletedProcess:
        """Run ``script`` (psql input, read from stdin) as the superuser; stops at the first error."""
        env = {**os.environ, "PGPASSWORD": self.superuser_password, "PGPASSFILE": os.devnull}
        return subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", SUPERUSER, "-d", database, "-w"],
            input=script, env=env, capture_output=True, text=True,
        )

    def stop(self) -> None:
        subprocess.run(
            _as_user(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )

    def discard(self) -> None:
        """Stop and remove the cluster (throwaway clusters)."""
        self.stop()
        shutil.rmtree(self.scratch or self.datadir, ignore_errors=True)


def start_postgres(state_dir: Path, port: int = 0, *, superuser_password: str, role_password: str,
                   role: str = "gridwatch", database: str = "gridwatch", durable: bool = True) -> Postgres:
    """Create (first time) and start a private cluster under ``state_dir``.

    initdb sets the superuser's password and scram-sha-256 for local and host connections
    alike. Each start then makes sure ``role`` can log in with ``role_password`` and
    nothing more (no superuser, no CREATEDB, no CREATEROLE) and that it owns ``database``.
    ``durable=False`` turns fsync off: for throwaway test clusters only.
    """
    for name in (role, database):
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain lower-case SQL identifier")
    if role == SUPERUSER:
        raise ValueError(f"the application role must not be the superuser {SUPERUSER!r}")
    for password in (superuser_password, role_password):
        if not password or "\n" in password or "\0" in password:
            raise ValueError("a PostgreSQL password must be one non-empty line")
    bindir = _pg_bindir()
    user = _unprivileged(("postgres", "nobody"))
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    scratch = _home_for(user, state_dir, "pg")
    base = scratch or state_dir
    if scratch is not None and user is not None:
        os.chown(scratch, pwd.getpwnam(user).pw_uid, -1)
    datadir = base / "pg"
    if not (datadir / "PG_VERSION").exists():
        _initdb(bindir, datadir, user, superuser_password, durable)
    elif _trusts_anyone(datadir):
        raise ServiceError(f"the cluster in {datadir} predates password authentication (it trusts every local "
                           "user); stop anything using it and remove that directory to start afresh")
    pg_ctl = str(bindir / "pg_ctl")
    if subprocess.run(_as_user(user, [pg_ctl, "-D", str(datadir), "status"]), capture_output=True).returncode == 0:
        subprocess.run(_as_user(user, [pg_ctl, "-D", str(datadir), "-m", "fast", "-w", "stop"]), capture_output=True)
    port = port or free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {datadir} -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    logfile = datadir / "server.log"
    result = subprocess.run(
        _as_user(user, [pg_ctl, "-D", str(datadir), "-l", str(logfile), "-o", options, "-w", "-t", "60", "start"]),
        capture_output=True,
        text=True,
        start_new_session=True,
    )
    if result.returncode != 0:
        tail = logfile.read_text()[-2000:] if logfile.exists() else ""
        raise ServiceError(f"pg_ctl start failed: {result.stderr.strip()} {tail}")
    pg = Postgres(port, datadir, bindir, user, role, database, role_password, superuser_password, scratch)
    try:
        _provision(pg)
    except BaseException:
        pg.stop()
        raise
    return pg


def _initdb(bindir: Path, datadir: Path, user: str | None, superuser_password: str, durable: bool) -> None:
    datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _give(user, datadir, 0o700)
    # initdb reads the password from a file, which must be readable by the user it runs as
    fd, pwfile = tempfile.mkstemp(prefix=".pwfile-", dir=datadir.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(superuser_password + "\n")
        _give(user, Path(pwfile), 0o600)
        result = subprocess.run(
            _as_user(user, [str(bindir / "initdb"), "-D", str(datadir), "-U", SUPERUSER, f"--pwfile={pwfile}",
                            "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                            *([] if durable else ["--no-sync"])]),
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(pwfile)
    if result.returncode != 0:
        raise ServiceError(f"initdb failed: {result.stderr.strip()[-2000:]}")


def _trusts_anyone(datadir: Path) -> bool:
    for line in (datadir / "pg_hba.conf").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[-1] == "trust":
            return True
    return False


def _provision(pg: Postgres) -> None:
    """The application role (password from the caller, no privilege beyond logging in)
    and its database; run on every start, so the role follows the kept password."""
    role, database = pg.role, pg.database
    script = f"""
SELECT format('CREATE ROLE %I', {_literal(role)}) WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(role)}) \\gexec
ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD {_literal(pg.role_password)};
SELECT format('CREATE DATABASE %I OWNER %I', {_literal(database)}, {_literal(role)})
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {_literal(database)}) \\gexec
"""
    result = pg.psql(script)
    if result.returncode != 0:
        hint = ""
        if "password authentication failed" in result.stderr:
            hint = (f" (the cluster in {pg.datadir} does not take the kept superuser password: if the kept "
                    f"{FILE_NAME} was removed, remove the cluster too to start afresh)")
        raise ServiceError(f"setting up role {role} and database {database} failed: {result.stderr.strip()}{hint}")


# --- the demo's pair --------------------------------------------------------------------

SECRETS_DIR = "secrets"


@dataclass
class PrivateServices:
    """The demo's broker and cluster, their passwords kept in ``secrets_file``."""

    broker: Mosquitto
    database: Postgres
    secrets_file: Path

    @property
    def service_password(self) -> str:
        return self.broker.users[SERVICE_ACCOUNT]

    @property
    def simulator_password(self) -> str:
        return self.broker.users[SIMULATOR_ACCOUNT]

    @property
    def control_password(self) -> str:
        return self.broker.users[CONTROL_ACCOUNT]

    def stop(self) -> None:
        try:
            self.database.stop()
        finally:
            self.broker.stop()


def start_private_services(state_dir: Path, mqtt_port: int = 0, pg_port: int = 0, *, durable: bool = True) -> PrivateServices:
    """Mosquitto under ``state_dir/mosquitto`` with the service's, the control and the
    simulator's accounts, and the cluster under ``state_dir/pg``; every password generated on the
    first start, kept in ``state_dir/secrets`` and reused on later starts.
    ``durable=False``: see start_postgres."""
    state_dir = Path(state_dir).resolve()
    secrets_dir = state_dir / SECRETS_DIR
    accounts = (SERVICE_ACCOUNT, CONTROL_ACCOUNT, SIMULATOR_ACCOUNT)
    passwords = kept_passwords(secrets_dir, (*(f"mqtt/{name}" for name in accounts),
                                             f"postgres/{SUPERUSER}", f"postgres/{SERVICE_ACCOUNT}"))
    broker = start_mosquitto(state_dir / "mosquitto", mqtt_port, {name: passwords[f"mqtt/{name}"] for name in accounts})
    try:
        database = start_postgres(state_dir, pg_port, superuser_password=passwords[f"postgres/{SUPERUSER}"],
                                  role_password=passwords[f"postgres/{SERVICE_ACCOUNT}"], role=SERVICE_ACCOUNT, durable=durable)
    except BaseException:
        broker.stop()
        raise
    return PrivateServices(broker, database, secrets_dir / FILE_NAME)
