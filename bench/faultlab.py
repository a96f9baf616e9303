"""The fault lab: real processes, a fault mid-stream, and a count of what PostgreSQL kept.

A lab owns a private Mosquitto (restartable on the same port and persistence directory) and
a private PostgreSQL cluster (stoppable and startable), with a template database migrated
and holding the demo grids (``python -m tracker db migrate``, ``python -m tracker grids
import``). Each run gets a fresh database cloned from it, the service as a subprocess
(``python -m tracker serve``, configured through TRACKER_* variables) and the numbered
publisher of ``bench.faultpub`` as another. At a given share of the fixes sent, the fault
strikes:

- ``kill``: SIGKILL of the service, then a restart;
- ``term``: SIGTERM (a clean stop), then a restart;
- ``broker``: Mosquitto stopped and started again on the same port and persistence directory;
- ``db``: the cluster stopped for ``outage_s`` seconds;
- ``burst``: the publisher sends ``burst_factor`` times its rate for ``burst_s`` seconds;
- ``none``: no fault (the baseline).

The service is supervised as a service manager would: if it exits on its own it is counted
as a crash and started again (once the database is back, when it is the one away).

Then it counts, number by number: fixes stored, lost (acknowledged by the broker at QoS 1,
or sent at QoS 0, but not stored), duplicated (stored rows beyond one per number), and alarm
episodes lost or doubled; the recovery time (from the fault until the stored fixes caught up
again with the acknowledged ones, within one second of traffic), and the service's peak RSS.
"""

from __future__ import annotations

import bisect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from bench.faultpub import sensor_id
from tracker.devcity.starters import SUPERUSER, Mosquitto, Postgres, free_port, start_mosquitto, start_postgres

REPO = Path(__file__).resolve().parent.parent
DEMO_GRIDS = REPO / "tracker" / "devcity" / "data" / "lanzhou-demo.geojson"
USERS = {"gridwatch": "faultlab-service", "simulator": "faultlab-publisher"}
PG_PASSWORDS = {"superuser_password": "faultlab-admin", "role_password": "faultlab-app"}
TEMPLATE = "gridwatch"  # the cluster's application database, migrated once and cloned per run
FAULTS = ("none", "kill", "term", "broker", "db", "burst")
SAMPLE_S = 0.5
PREFIX = "f"
HANDSETS = f"device ~ '^{PREFIX}[0-9]'"  # the run's numbered handsets, not its sensors


@dataclass(frozen=True)
class Scenario:
    """One run: ``fixes`` numbered fixes at ``rate`` a second over ``devices`` handsets."""

    name: str
    fault: str
    fixes: int = 5000
    rate: float = 500.0
    devices: int = 100
    qos: int = 1
    at: float = 0.4  # share of the fixes sent when the fault strikes
    outage_s: float = 0.0  # db: how long the cluster is down; broker: how long the broker is down
    burst_factor: float = 3.0
    burst_s: float = 0.0
    episodes: int = 20  # manhole tilt alarm episodes spread over the run
    settle_s: float = 60.0  # longest wait, after the last fix was sent, for the database to catch up
    env: tuple[tuple[str, str], ...] = ()  # extra TRACKER_* settings for the service

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {', '.join(FAULTS)}")
        if self.qos not in (0, 1):
            raise ValueError("qos is 0 or 1")


@dataclass
class Outcome:
    """What one run kept and lost. ``acknowledged`` is None at QoS 0 (nothing is)."""

    name: str
    fault: str
    qos: int
    sent: int
    acknowledged: int | None
    stored: int  # distinct numbered fixes stored
    lost: int  # acknowledged (QoS 1) or sent (QoS 0), not stored
    duplicated: int  # stored rows beyond one per number
    refused: dict[str, int]  # numbered fixes the position filters refused, by reason
    episodes: int
    episodes_acknowledged: int
    episodes_lost: int  # an acknowledged episode without its raised or its cleared tilt event
    episodes_doubled: int  # an episode with more than one raised or cleared tilt event
    recovery_s: float | None  # from the fault's start; None: no fault, or never caught up
    peak_rss_mb: float
    service_starts: int
    service_crashes: int  # exits the lab did not cause
    publisher_reconnects: int
    seconds: float
    lost_sample: list[int] = field(default_factory=list)  # the first lost numbers, to look them up
    notes: list[str] = field(default_factory=list)
    # the alarm outbox consumed into cases: one case per episode's sensor, none lost, none doubled
    cases_lost: int = 0  # an acknowledged episode whose sensor has no case
    cases_doubled: int = 0  # cases beyond one per episode's sensor
    alarms_pending: int = 0  # alarm events the case intake had not consumed by the count

    def as_dict(self) -> dict:
        return asdict(self)


# --- the service --------------------------------------------------------------------------


class ServiceProcess:
    """``python -m tracker serve`` in the repository, its output appended to ``log_path``."""

    def __init__(self, env: dict[str, str], web_port: int, log_path: Path) -> None:
        self.env, self.url, self.log_path = env, f"http://127.0.0.1:{web_port}", log_path
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.peak_rss_kb = 0

    def start(self, timeout: float = 90.0) -> None:
        """Start and wait until /healthz answers 200; a ServiceExited if it stops first."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "tracker", "serve"], cwd=REPO, env=self.env,
                                         stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceExited(f"the service exited with {self.proc.returncode} while starting; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            self.sample_rss()
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        raise ServiceExited(f"the service did not become healthy within {timeout:.0f} s; see {self.log_path}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample_rss(self) -> None:
        if not self.running:
            return
        assert self.proc is not None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))
        except OSError:
            pass

    def signal(self, signum: int, timeout: float = 60.0) -> int | None:
        """Send ``signum`` and wait for the exit; its code (None: still running, then killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.sample_rss()
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


class ServiceExited(RuntimeError):
    """The service stopped while it was being started."""


# --- the lab ------------------------------------------------------------------------------


class Lab:
    """A private broker and cluster, and runs of scenarios against them. A context manager."""

    def __init__(self, state_dir: Path | None = None, *, durable: bool = True, say: Callable[[str], None] | None = None) -> None:
        self._own_state = state_dir is None  # a directory of our own, removed on close
        self.state = Path(state_dir or tempfile.mkdtemp(prefix="gridwatch-faultlab-")).resolve()
        self.durable = durable
        self.say = say or (lambda line: None)
        self.broker: Mosquitto | None = None
        self.pg: Postgres | None = None
        self.broker_port = free_port()
        self.pg_port = free_port()
        self.runs = 0

    # broker and cluster

    def start_broker(self) -> None:
        self.broker = start_mosquitto(self.state / "mosquitto", self.broker_port, USERS)

    def stop_broker(self) -> None:
        if self.broker is not None:
            self.broker.stop()

    def start_db(self) -> None:
        self.pg = start_postgres(self.state, self.pg_port, durable=self.durable, **PG_PASSWORDS)

    def stop_db(self) -> None:
        if self.pg is not None:
            self.pg.stop()

    def __enter__(self) -> Lab:
        self.start_broker()
        try:
            self.start_db()
            self._tracker("db", "migrate", dsn=self._pg.dsn)
            self._tracker("grids", "import", str(DEMO_GRIDS), dsn=self._pg.dsn)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop and remove the cluster and the broker; the state directory (logs of every run)
        stays when the caller gave it."""
        if self.pg is not None:
            self.pg.discard()
        if self.broker is not None:
            self.broker.discard()
        if self._own_state:
            shutil.rmtree(self.state, ignore_errors=True)

    @property
    def _pg(self) -> Postgres:
        if self.pg is None:
            raise RuntimeError("the lab's cluster is not started")
        return self.pg

    def _tracker(self, *args: str, dsn: str) -> None:
        env = dict(os.environ, TRACKER_DATABASE__DSN=dsn)
        done = subprocess.run([sys.executable, "-m", "tracker", *args], cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"tracker {' '.join(args)} failed: {done.stdout[-1000:]} {done.stderr[-2000:]}")

    def query(self, sql: str, database: str) -> list[list[str]] | None:
        """Rows of ``sql`` as the superuser, as text; None while the cluster does not answer."""
        pg = self._pg
        env = dict(os.environ, PGPASSWORD=pg.superuser_password, PGPASSFILE=os.devnull, PGCONNECT_TIMEOUT="2")
        done = subprocess.run([str(pg.bindir / "psql"), "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                               "-p", str(pg.port), "-U", SUPERUSER, "-d", database, "-w", "-c", sql],
                              env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return None
        return [line.split("\t") for line in done.stdout.splitlines() if line]

    def _new_database(self) -> str:
        self.runs += 1
        name = f"faultrun_{os.getpid()}_{self.runs}"
        result = self._pg.psql(f"DROP DATABASE IF EXISTS {name};\nCREATE DATABASE {name} TEMPLATE {TEMPLATE} OWNER {self._pg.role};")
        if result.returncode != 0:
            raise RuntimeError(f"cannot create {name}: {result.stderr}")
        return name

    def drop_database(self, name: str) -> None:
        self._pg.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);")

    # a run

    def run(self, scenario: Scenario, *, keep_database: bool = False) -> Outcome:
        database = self._new_database()
        try:
            return _Run(self, scenario, database).go()
        finally:
            if not keep_database:
                self.drop_database(database)


@dataclass
class _Sample:
    at: float
    sent: int
    acknowledged: int
    stored: int | None
    up: bool  # the service was running, not being started


class _Run:
    def __init__(self, lab: Lab, scenario: Scenario, database: str) -> None:
        self.lab, self.s, self.database = lab, scenario, database
        self.dir = lab.state / database
        self.dir.mkdir()
        pg = lab._pg
        dsn = f"{pg.dsn.rpartition('/')[0]}/{database}"
        web_port = free_port()
        env = dict(os.environ, TRACKER_MQTT__HOST="127.0.0.1", TRACKER_MQTT__PORT=str(lab.broker_port),
                   TRACKER_MQTT__USERNAME="gridwatch", TRACKER_MQTT__PASSWORD=USERS["gridwatch"],
                   TRACKER_MQTT__CLIENT_ID=f"gridwatch-{database}", TRACKER_MQTT__QOS=str(scenario.qos),
                   TRACKER_DATABASE__DSN=dsn, TRACKER_WEB__PORT=str(web_port), TRACKER_JT808__ENABLED="false",
                   TRACKER_LOG__LEVEL="WARNING",
                   # the numbered publisher sends for made-up devices: the registry lets them in
                   # (it is still asked about every message)
                   TRACKER_REGISTRY__UNREGISTERED="accept",
                   # the alarms become cases: the example taxonomy files the tilts
                   TRACKER_CASES__TAXONOMY=str(REPO / "tracker" / "devcity" / "taxonomy.toml"))
        env.update(dict(scenario.env))
        self.service = ServiceProcess(env, web_port, self.dir / "service.log")
        self.sent = self.acknowledged = 0
        self.fault_start: float | None = None
        self.fault_end: float | None = None
        self.db_down = False
        self.in_fault = False
        self.restarting = False
        self.crashes = 0
        self.notes: list[str] = []
        self.finished = threading.Event()
        self.failure: BaseException | None = None

    def go(self) -> Outcome:
        s = self.s
        t0 = time.monotonic()
        self.service.start()
        pub_out = self.dir / "publisher.json"
        burst_at = int(s.fixes * s.at) if s.fault == "burst" else -1
        argv = [sys.executable, "-m", "bench.faultpub", "--port", str(self.lab.broker_port), "--password", USERS["simulator"],
                "--client-id", f"faultpub-{self.database}", "--qos", str(s.qos), "--fixes", str(s.fixes), "--rate", str(s.rate),
                "--devices", str(s.devices), "--prefix", PREFIX, "--episodes", str(s.episodes), "--burst-at", str(burst_at),
                "--burst-factor", str(s.burst_factor), "--burst-s", str(s.burst_s), "--out", str(pub_out)]
        with open(self.dir / "publisher.err", "wb") as errors:
            publisher = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=errors, text=True)
        assert publisher.stdout is not None
        reader = threading.Thread(target=self._progress, args=(publisher.stdout,), daemon=True)
        reader.start()
        operator = threading.Thread(target=self._operate, daemon=True)
        operator.start()
        samples: list[_Sample] = []
        try:
            while publisher.poll() is None:
                samples.append(self._sample())
                time.sleep(SAMPLE_S)
            reader.join(5)
            if publisher.returncode != 0:
                raise RuntimeError(f"the publisher failed: {(self.dir / 'publisher.err').read_text()[-2000:]}")
            summary = json.loads(pub_out.read_text())
            self.sent = summary["sent"]
            self.acknowledged = len(summary["acknowledged"]) if s.qos else self.sent
            self._settle(samples)
        finally:
            self.finished.set()
            operator.join(s.outage_s + 120)
            if publisher.poll() is None:
                publisher.kill()
                publisher.wait()
            publisher.stdout.close()
            if self.db_down:
                self.lab.start_db()
            self.service.signal(signal.SIGTERM)
        if self.failure is not None:
            raise self.failure
        return self._count(summary, samples, time.monotonic() - t0)

    def _progress(self, stream: IO[str]) -> None:
        for line in stream:
            parts = line.split()
            if parts[:1] == ["P"]:
                self.sent, self.acknowledged = int(parts[1]), int(parts[2])
            elif parts == ["B", "start"]:
                self.fault_start = time.monotonic()
            elif parts == ["B", "end"]:
                self.fault_end = time.monotonic()

    def _sample(self) -> _Sample:
        self.service.sample_rss()
        rows = None if self.db_down else self.lab.query(f"SELECT count(*) FROM pings WHERE {HANDSETS}", self.database)
        up = self.service.running and not self.restarting
        return _Sample(time.monotonic(), self.sent, self.acknowledged, int(rows[0][0]) if rows else None, up)

    def _settle(self, samples: list[_Sample]) -> None:
        """Sample until every acknowledged fix is stored, or the count stops moving for 10 s
        with no fault in progress, or ``settle_s`` passed."""
        deadline = time.monotonic() + self.s.settle_s
        quiet_since, last = time.monotonic(), -1
        while time.monotonic() < deadline:
            sample = self._sample()
            sample.sent, sample.acknowledged = self.sent, self.acknowledged
            samples.append(sample)
            busy = self.in_fault or self.db_down or not self.service.running
            if sample.stored is not None and sample.stored >= self.acknowledged and not busy:
                break
            if sample.stored != last or busy:
                quiet_since, last = time.monotonic(), sample.stored if sample.stored is not None else -1
            elif time.monotonic() - quiet_since > 10:
                break
            time.sleep(SAMPLE_S)
        # alarm events go through a transaction of their own: wait until their count has held
        # for a second (at most settle_s more), rather than a fixed pause
        deadline, held_since, count = time.monotonic() + self.s.settle_s, time.monotonic(), None
        while time.monotonic() < deadline and time.monotonic() - held_since < 1.0:
            now = self.lab.query("SELECT count(*) FROM alarm_events", self.database)
            if now != count:
                held_since, count = time.monotonic(), now
            time.sleep(SAMPLE_S)

    # the fault, and a service manager's restarts

    def _operate(self) -> None:
        s = self.s
        at = int(s.fixes * s.at)
        exited = False  # the service stopped on its own and was not started again yet
        try:
            while not self.finished.is_set():
                if s.fault in ("kill", "term", "broker", "db") and self.fault_start is None and self.sent >= at:
                    self.in_fault = True
                    self.fault_start = time.monotonic()
                    self.lab.say(f"   {s.fault} at {self.sent:,} fixes sent")
                    self._strike()
                    self.in_fault = False
                if self.db_down and self.fault_start is not None and time.monotonic() - self.fault_start >= s.outage_s:
                    self.lab.start_db()
                    self.db_down = False
                    self.fault_end = time.monotonic()
                    self.lab.say(f"   database back after {self.fault_end - self.fault_start:.1f} s")
                if not self.service.running and not exited:
                    exited = True
                    self.crashes += 1
                    code = self.service.proc.returncode if self.service.proc is not None else None
                    after = f"{time.monotonic() - self.fault_start:.1f} s after the fault" if self.fault_start is not None else "before any fault"
                    self.notes.append(f"the service exited on its own with {code}, {after}")
                if exited and not self.db_down:
                    self._restart()
                    exited = False
                time.sleep(0.05)
        except BaseException as exc:  # surfaces in go()
            self.failure = exc

    def _restart(self) -> None:
        self.restarting = True
        try:
            self._start_until_healthy()
        finally:
            self.restarting = False

    def _start_until_healthy(self) -> None:
        while not self.finished.is_set():
            try:
                self.service.start()
                if self.fault_start is not None:
                    self.lab.say(f"   service healthy again {time.monotonic() - self.fault_start:.1f} s after the fault")
                return
            except ServiceExited as exc:
                self.notes.append(str(exc))
                time.sleep(1.0)

    def _strike(self) -> None:
        fault = self.s.fault
        if fault == "kill":
            self.service.signal(signal.SIGKILL)
            self._restart()
        elif fault == "term":
            code = self.service.signal(signal.SIGTERM)
            if code != 0:
                self.notes.append(f"SIGTERM: the service exited with {code}")
            self._restart()
        elif fault == "broker":
            self.lab.stop_broker()
            time.sleep(self.s.outage_s)
            self.lab.start_broker()
        elif fault == "db":
            self.lab.stop_db()
            self.db_down = True
            return
        self.fault_end = time.monotonic()

    # the count

    def _count(self, summary: dict, samples: list[_Sample], seconds: float) -> Outcome:
        s = self.s
        rows = self.lab.query(f"SELECT device, seq, count(*) FROM pings WHERE {HANDSETS} GROUP BY device, seq",
                              self.database) or []
        stored_numbers: dict[int, int] = {}
        for device, seq, count in rows:
            if device[len(PREFIX):].isdigit() and seq:
                stored_numbers[int(seq) * s.devices + int(device[len(PREFIX):])] = int(count)
        refused_rows = self.lab.query(f"SELECT reason, count(*) FROM filtered_fixes WHERE {HANDSETS} GROUP BY reason",
                                      self.database) or []
        expected = set(summary["acknowledged"])
        missing = sorted(expected.difference(stored_numbers))
        extra = sorted(number for number, count in stored_numbers.items() for _ in range(count - 1))
        duplicated = len(extra)

        events = self.lab.query("SELECT device, raised, count(*) FROM alarm_events WHERE kind = 'tilt' GROUP BY device, raised",
                                self.database) or []
        tilt = {(device, raised == "t"): int(count) for device, raised, count in events}
        both = set(summary["alarms_acknowledged"]).intersection(summary["recoveries_acknowledged"])
        episodes_lost = sum(1 for j in both if not tilt.get((sensor_id(PREFIX, j), True)) or not tilt.get((sensor_id(PREFIX, j), False)))
        episodes_doubled = sum(1 for j in range(s.episodes)
                               if tilt.get((sensor_id(PREFIX, j), True), 0) > 1 or tilt.get((sensor_id(PREFIX, j), False), 0) > 1)
        case_rows = self.lab.query("SELECT reporter, count(*) FROM cases WHERE source = 'sensor' GROUP BY reporter",
                                   self.database) or []
        cases = {reporter: int(count) for reporter, count in case_rows}
        pending = self.lab.query("SELECT count(*) FROM alarm_events WHERE consumed_at IS NULL", self.database) or [(0,)]
        return Outcome(
            cases_lost=sum(1 for j in both if not cases.get(sensor_id(PREFIX, j))),
            cases_doubled=sum(max(0, count - 1) for count in cases.values()), alarms_pending=int(pending[0][0]),
            name=s.name, fault=s.fault, qos=s.qos, sent=summary["sent"], acknowledged=len(expected) if s.qos else None,
            stored=len(stored_numbers), lost=len(missing), duplicated=duplicated, refused={r: int(c) for r, c in refused_rows},
            episodes=s.episodes, episodes_acknowledged=len(both), episodes_lost=episodes_lost, episodes_doubled=episodes_doubled,
            recovery_s=self._recovery(samples, missing, extra), peak_rss_mb=round(self.service.peak_rss_kb / 1024, 1),
            service_starts=self.service.starts, service_crashes=self.crashes, publisher_reconnects=summary["reconnects"],
            seconds=round(seconds, 1), lost_sample=missing[:10], notes=self.notes)

    def _recovery(self, samples: list[_Sample], missing: list[int], extra: list[int]) -> float | None:
        """Seconds from the fault's start until, with the service up, the stored fixes were
        again within one second of traffic of the acknowledged ones, those never stored set
        aside (``missing``; ``extra``: a number once per row beyond its first; both sorted).
        Numbers are sent in order, so the first ``n`` acknowledged are about the numbers
        below ``n``. A database stop or a burst counts its own length in."""
        if self.fault_start is None:
            return None
        ready = self.fault_end or self.fault_start
        slack = max(self.s.rate, 50.0)
        for sample in samples:
            if sample.at < ready or sample.stored is None or not sample.up:
                continue
            n = sample.acknowledged
            if sample.stored - bisect.bisect_left(extra, n) >= n - bisect.bisect_left(missing, n) - slack:
                return round(sample.at - self.fault_start, 1)
        return None


# --- printing -----------------------------------------------------------------------------

COLUMNS = ("fault", "qos", "sent", "acknowledged", "stored", "lost", "duplicated", "episodes lost/doubled", "recovery s",
           "peak RSS MB", "crashes")


def table(outcomes: list[Outcome]) -> str:
    rows = [COLUMNS]
    for o in outcomes:
        recovery = "-" if o.fault == "none" else ("never" if o.recovery_s is None else f"{o.recovery_s:.1f}")
        rows.append((o.name, str(o.qos), f"{o.sent:,}", "-" if o.acknowledged is None else f"{o.acknowledged:,}", f"{o.stored:,}",
                     f"{o.lost:,}", f"{o.duplicated:,}", f"{o.episodes_lost}/{o.episodes_doubled} of {o.episodes}", recovery,
                     f"{o.peak_rss_mb:.0f}", str(o.service_crashes)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
                     for r in rows)
