"""The service outlives its database: stopped under load, down at start, or stalled by a
lock, PostgreSQL is waited for, health says why the service is not well meanwhile, and
every fix is stored exactly once when the database is back. Real Mosquitto, a real
PostgreSQL cluster stopped and started, real processes: the waits are real too."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import msgpack
import trio

from tests.harness import BROKER_USERS, DEMO_CITY, LAT, LON, REPO, auth_headers, start_service, store_task
from tests.helpers import apublish, wait_for
from tracker.app.service import import_grids, run_service
from tracker.devcity.starters import free_port

T = TypeVar("T")
TOPIC = "gw/v1/620105/collector/{}/pos"
DEVICES = 20


def numbered_fixes(first: int, count: int, base_ms: int) -> list[tuple[str, bytes]]:
    """Fix number n: device c00(n mod 20), sequence number n, 100 ms after fix n-1."""
    return [(TOPIC.format(f"c{n % DEVICES:04d}"),
             msgpack.packb({"t": base_ms + n * 100, "lat": LAT + n * 1e-6, "lon": LON, "acc": 5, "seq": n}))
            for n in range(first, first + count)]


def outage_settings(settings, dsn: str):
    """QoS 1, every fix kept (no position filter), quick retries and probes."""
    s = settings.replace("database", dsn=dsn, retry_first_s=0.05, retry_max_s=0.5)
    s = s.replace("mqtt", qos=1)
    s = s.replace("filters", enabled=())
    return s.replace("health", max_persist_lag_s=3.0, database_probe_s=0.5)


async def health(http: httpx.AsyncClient) -> tuple[int, str]:
    response = await http.get("/healthz")
    return response.status_code, response.json()["detail"]


async def stored(store) -> list[tuple[str, int]]:
    return [(r["device"], r["seq"]) for r in await store.fetch("SELECT device, seq FROM pings ORDER BY seq")]


async def test_fixes_published_through_a_ten_second_outage_are_all_stored_once(settings, broker, restartable_postgres):
    pg = restartable_postgres
    settings = outage_settings(settings, pg.dsn)
    base = int(time.time() * 1000) - 600_000
    total, burst = 600, 20
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            assert await health(http) == (200, "ok")

            async def publish_all() -> None:
                for first in range(0, total, burst):
                    await apublish(broker, numbered_fixes(first, burst, base))
                    await trio.sleep(0.5)

            nursery.start_soon(publish_all)
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 60)
            await trio.to_thread.run_sync(pg.stop)
            down_at = trio.current_time()
            status, detail = await wait_for(lambda: _health_now(running)[0] == 503 and _health_now(running), timeout=5)
            assert status == 503 and detail.startswith("database unavailable since "), detail
            assert (await health(http))[0] == 503
            alarms = await http.get("/api/alarms")  # a read that needs the database fails fast, and says why
            assert alarms.status_code == 503 and alarms.json()["error"].startswith("database unavailable: "), alarms.text
            assert "gridwatch_database_up 0.0" in running.pipeline.metrics.render()
            await trio.sleep(10 - (trio.current_time() - down_at))
            assert running.pipeline.metrics.get("gridwatch_persisted_total") < total  # the outage held some back
            await trio.to_thread.run_sync(pg.start)
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= total, timeout=30)
            await wait_for(lambda: _health_now(running)[0] == 200, timeout=5)
            assert await health(http) == (200, "ok")
        assert await stored(store) == [(f"c{n % DEVICES:04d}", n) for n in range(total)]
        metrics = running.pipeline.metrics
        assert metrics.get("gridwatch_database_retries_total", operation="write_pings") > 0
        assert "gridwatch_database_up 1.0" in metrics.render()
        nursery.cancel_scope.cancel()


def _health_now(running) -> tuple[int, str]:
    ok, detail = running.web.healthy()
    return (200 if ok else 503), detail


async def test_serve_started_with_the_database_down_waits_for_it_then_serves(broker, restartable_postgres, tmp_path):
    pg = restartable_postgres
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, pg.dsn)
        await import_grids(store, str(DEMO_CITY), 12)
        headers = await auth_headers(store)
        nursery.cancel_scope.cancel()
    await trio.to_thread.run_sync(pg.stop)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update({"TRACKER_DATABASE__DSN": pg.dsn, "TRACKER_DATABASE__RETRY_MAX_S": "0.5", "TRACKER_HEALTH__DATABASE_PROBE_S": "0.5",
                "TRACKER_MQTT__HOST": "127.0.0.1", "TRACKER_MQTT__PORT": str(broker.port), "TRACKER_MQTT__QOS": "1",
                "TRACKER_MQTT__PASSWORD": BROKER_USERS["gridwatch"], "TRACKER_MQTT__CLIENT_ID": f"gw-outage-{os.getpid()}",
                "TRACKER_WEB__PORT": str(port), "TRACKER_JT808__PORT": "0", "TRACKER_LOG__LEVEL": "WARNING",
                "TRACKER_REGISTRY__UNREGISTERED": "accept"})  # made-up devices, as in the settings fixture
    with open(tmp_path / "out", "wb") as out, open(tmp_path / "err", "wb") as err:
        async with trio.open_nursery() as nursery:
            process = await nursery.start(functools.partial(trio.run_process, [sys.executable, "-m", "tracker", "serve"], cwd=REPO,
                                                            env=env, stdout=out, stderr=err, check=False))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10, headers=headers) as http:
                # "starting" until its first attempt at the database has failed, then the reason
                answers: list[tuple[int, str]] = []

                async def database_reason() -> bool:
                    answer = await _answer(http, "/healthz")
                    if answer is not None:
                        answers.append(answer)
                    return answer is not None and answer[1].startswith("database unavailable since ")

                await poll(database_reason, timeout=15)
                assert {status for status, _ in answers} == {503}, answers
                assert (await http.get("/api/devices")).status_code == 503
                await trio.sleep(1)
                assert process.returncode is None  # still up, still waiting
                await trio.to_thread.run_sync(pg.start)
                await poll(functools.partial(_answer, http, "/healthz", 200), timeout=15)
                t = int(time.time() * 1000)
                await apublish(broker, [(TOPIC.format("c0001"), msgpack.packb({"t": t, "lat": LAT, "lon": LON, "acc": 5, "seq": 1}))])
                device = await poll(functools.partial(_answer, http, "/api/devices/c0001", 200), timeout=10)
                assert device[0] == 200
            async with trio.open_nursery() as inner:
                reader = await inner.start(store_task, pg.dsn)
                rows = await poll(functools.partial(reader.fetch, "SELECT device, seq FROM pings"), timeout=10)
                inner.cancel_scope.cancel()
            assert [tuple(r) for r in rows] == [("c0001", 1)]
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await process.wait()
    assert process.returncode == 0, (tmp_path / "err").read_text()
    assert "Traceback" not in (tmp_path / "err").read_text()


async def poll(condition: Callable[[], Awaitable[T]], timeout: float) -> T:
    """Await a condition until it gives something truthy; return that."""
    with trio.fail_after(timeout):
        while True:
            value = await condition()
            if value:
                return value
            await trio.sleep(0.1)


async def _answer(http: httpx.AsyncClient, path: str, want: int | None = None) -> tuple[int, str] | None:
    """(status, detail) once the server answers (with ``want``, when given); None before."""
    try:
        response = await http.get(path)
    except httpx.TransportError:
        return None
    if want is not None and response.status_code != want:
        return None
    body = response.json()
    return response.status_code, body.get("detail", "") if isinstance(body, dict) else ""


async def test_a_statement_stalled_by_a_lock_is_retried_and_the_service_stays_up(settings, broker, postgres):
    settings = outage_settings(settings, settings.database.dsn)
    settings = settings.replace("health", max_persist_lag_s=1.0)
    base = int(time.time() * 1000) - 600_000
    async with trio.open_nursery() as nursery:
        setup = await nursery.start(store_task, settings.database.dsn)
        await import_grids(setup, str(DEMO_CITY), settings.grid.h3_resolution)
        # the service's own store: every statement it runs is cut off after half a second
        store = await nursery.start(functools.partial(store_task, settings.database.dsn, command_timeout_s=0.5))
        running = await nursery.start(functools.partial(run_service, settings, store))
        metrics = running.pipeline.metrics
        await apublish(broker, numbered_fixes(0, 1, base))
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= 1)  # the day's partition exists
        # another session holds pings for 4 s: every write to it outlasts command_timeout meanwhile
        holder = functools.partial(trio.run_process, [postgres.psql, "-X", "-q", settings.database.dsn, "-c",
                                                      "BEGIN; LOCK TABLE pings; SELECT pg_sleep(4); COMMIT;"], capture_stdout=True)
        nursery.start_soon(holder)
        await poll(functools.partial(store.fetch, "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                                                  "WHERE c.relname = 'pings' AND l.mode = 'AccessExclusiveLock' AND l.granted"), 5)
        await apublish(broker, numbered_fixes(1, 99, base))
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            _, detail = await poll(functools.partial(_answer, http, "/healthz", 503), timeout=5)
        assert detail.startswith("persistence lag ") and detail.endswith(" s over the bound 1 s"), detail
        await wait_for(lambda: metrics.get("gridwatch_database_retries_total", operation="write_pings") >= 2, timeout=5)
        assert metrics.get("gridwatch_persisted_total") == 1
        assert _health_now(running)[0] == 503
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= 100, timeout=10)
        await wait_for(lambda: _health_now(running) == (200, "ok"), timeout=5)
        assert await stored(store) == [(f"c{n % DEVICES:04d}", n) for n in range(100)]
        nursery.cancel_scope.cancel()
