"""Private Mosquitto and PostgreSQL instances for `tracker demo` and the tests.

Both are started from the Debian packages' binaries under a state directory, on a free
(or given) loopback port, and stopped by whoever started them. PostgreSQL refuses to run
as root, so as root the cluster is created and run as an unprivileged system user.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

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


# --- Mosquitto --------------------------------------------------------------------------


@dataclass
class Mosquitto:
    port: int
    proc: subprocess.Popen
    users: dict[str, str]
    log_path: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_mosquitto(state_dir: Path, port: int = 0, users: dict[str, str] | None = None) -> Mosquitto:
    """Start Mosquitto with mosquitto/mosquitto.conf and mosquitto/acl on a loopback port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd_tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(binary).exists():
        raise ServiceError("mosquitto is not installed (Debian package 'mosquitto')")
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    _kill_stale(state_dir / "mosquitto.pid")
    port = port or free_port()
    users = users or {"gridwatch": "gridwatch", "simulator": "simulator"}
    passwd = state_dir / "passwd"
    passwd.unlink(missing_ok=True)
    passwd.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run([passwd_tool, "-b", str(passwd), user, password], check=True, capture_output=True)
    conf = state_dir / "mosquitto.conf"
    header = [
        f"listener {port} 127.0.0.1",
        f"password_file {passwd}",
        f"acl_file {MOSQUITTO_DIR / 'acl'}",
    ]
    if os.geteuid() == 0:
        # the broker would drop to user 'mosquitto', who may not reach a state dir under /root
        header.append("user root")
    conf.write_text("\n".join(header) + "\n" + (MOSQUITTO_DIR / "mosquitto.conf").read_text())
    log_path = state_dir / "mosquitto.log"
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    (state_dir / "mosquitto.pid").write_text(str(proc.pid))
    try:
        _wait_port(port, 10, "mosquitto", proc)
    except ServiceError as exc:
        proc.kill()
        raise ServiceError(f"{exc}; see {log_path}: {log_path.read_text()[-2000:]}") from None
    return Mosquitto(port, proc, users, log_path)


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


def _pg_bindir() -> Path:
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for root in reversed(roots):
        if (root / "initdb").exists():
            return root
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise ServiceError("PostgreSQL server binaries not found (Debian package 'postgresql')")


def _run_as() -> str | None:
    """The unprivileged user to run PostgreSQL as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServiceError("running as root and no unprivileged user (postgres, nobody) exists")


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return argv if user is None else ["runuser", "-u", user, "--", *argv]


def _reachable_by(user: str | None, path: Path) -> bool:
    if user is None:
        return True
    return subprocess.run(_as_user(user, ["test", "-x", str(path)]), capture_output=True).returncode == 0


@dataclass
class Postgres:
    port: int
    datadir: Path
    bindir: Path
    user: str | None
    dsn: str

    def stop(self) -> None:
        subprocess.run(
            _as_user(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]),
            capture_output=True,
        )


def start_postgres(state_dir: Path, port: int = 0, *, durable: bool = True, database: str = "gridwatch") -> Postgres:
    """Create (first time) and start a private cluster; return its DSN.

    ``durable=False`` turns fsync off: for throwaway test clusters only.
    """
    bindir = _pg_bindir()
    user = _run_as()
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    base = state_dir
    if not _reachable_by(user, state_dir):
        # e.g. a checkout under /root: the cluster lives where its user can reach it
        digest = hashlib.sha1(str(state_dir).encode()).hexdigest()[:12]
        base = Path(tempfile.gettempdir()) / f"gridwatch-pg-{digest}"
        base.mkdir(mode=0o755, exist_ok=True)
        log.info("state dir %s is not reachable by %s; cluster kept in %s", state_dir, user, base)
    datadir = base / "pg"
    if user is not None and base != state_dir:
        os.chown(base, pwd.getpwnam(user).pw_uid, -1)
    if not (datadir / "PG_VERSION").exists():
        datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(datadir, pw.pw_uid, pw.pw_gid)
        result = subprocess.run(
            _as_user(user, [str(bindir / "initdb"), "-D", str(datadir), "-U", "gridwatch", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip()[-2000:]}")
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
    pg = Postgres(port, datadir, bindir, user, f"postgresql://gridwatch@127.0.0.1:{port}/{database}")
    exists = subprocess.run(
        [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "gridwatch", "-d", "postgres", "-tAc",
         f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],
        capture_output=True, text=True,
    )
    if exists.stdout.strip() != "1":
        made = subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "gridwatch", database],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pg.stop()
            raise ServiceError(f"createdb failed: {made.stderr.strip()}")
    return pg
