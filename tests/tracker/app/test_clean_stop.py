"""SIGTERM is a clean stop: `tracker serve`, a real process, stops reading the broker, stores
what it received, acknowledges it and disconnects, so its next run is sent only the rest.
Real Mosquitto, PostgreSQL and processes; numbered QoS 1 fixes."""

from __future__ import annotations

import functools
import os
import signal
import sys
import time

import httpx
import msgpack
import paho.mqtt.client as paho
import trio

from tests.harness import BROKER_USERS, DEMO_CITY, LAT, LON, REPO, store_task
from tracker.app.service import import_grids
from tracker.devcity.starters import Mosquitto, free_port

TOPIC = "gw/v1/620105/collector/{}/pos"
DEVICES = 20
FIXES = 6000


def publish_paced(broker: Mosquitto, base_ms: int, per_s: float) -> None:
    """Fixes 0..FIXES-1 at QoS 1, ``per_s`` a second, each acknowledged by the broker (a thread)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"clean-stop-pub-{os.getpid()}", protocol=paho.MQTTv311)
    client.username_pw_set("simulator", BROKER_USERS["simulator"])
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        start, infos = time.monotonic(), []
        for n in range(FIXES):
            device, step = n % DEVICES, n // DEVICES
            fix = {"t": base_ms + step * 1000, "lat": round(LAT + device * 1e-4 + step * 1e-5, 7), "lon": LON, "acc": 5, "seq": n}
            infos.append(client.publish(TOPIC.format(f"cs{device:03d}"), msgpack.packb(fix), qos=1))
            delay = start + (n + 1) / per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


METRICS_TOKEN = "clean-stop-" + "m" * 24  # the service's [auth] metrics_token


async def metric(http: httpx.AsyncClient, name: str) -> float:
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def until_healthy(http: httpx.AsyncClient, process: trio.Process) -> None:
    with trio.fail_after(60):
        while True:
            assert process.returncode is None, "the service exited while starting"
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.1)


async def test_sigterm_stores_and_acknowledges_what_it_received_so_the_next_run_gets_only_the_rest(settings, broker, tmp_path):
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        await import_grids(store, str(DEMO_CITY), settings.grid.h3_resolution)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
        env.update({"TRACKER_DATABASE__DSN": settings.database.dsn, "TRACKER_MQTT__HOST": "127.0.0.1",
                    "TRACKER_MQTT__PORT": str(broker.port), "TRACKER_MQTT__QOS": "1",
                    "TRACKER_MQTT__PASSWORD": BROKER_USERS["gridwatch"], "TRACKER_MQTT__CLIENT_ID": settings.mqtt.client_id,
                    "TRACKER_WEB__PORT": str(port), "TRACKER_JT808__PORT": "0", "TRACKER_LOG__LEVEL": "WARNING",
                    "TRACKER_AUTH__METRICS_TOKEN": METRICS_TOKEN,
                    "TRACKER_REGISTRY__UNREGISTERED": "accept"})  # made-up devices, as in the settings fixture
        serve = functools.partial(trio.run_process, [sys.executable, "-m", "tracker", "serve"], cwd=REPO, env=env, check=False)
        base = int(time.time() * 1000) - 3_600_000
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as http:
            with open(tmp_path / "err1", "wb") as err:
                first = await nursery.start(functools.partial(serve, stderr=err))
                await until_healthy(http, first)
                nursery.start_soon(trio.to_thread.run_sync, publish_paced, broker, base, 2000.0)
                with trio.fail_after(30):
                    while await metric(http, "gridwatch_messages_total") < FIXES // 4:
                        await trio.sleep(0.02)
                first.send_signal(signal.SIGTERM)
                with trio.fail_after(30):
                    await first.wait()
            stopped_with = len(await store.fetch("SELECT seq FROM pings"))
            with open(tmp_path / "err2", "wb") as err:
                second = await nursery.start(functools.partial(serve, stderr=err))
                await until_healthy(http, second)
                with trio.fail_after(60):
                    while await metric(http, "gridwatch_persisted_total") < FIXES - stopped_with:
                        await trio.sleep(0.05)
                await trio.sleep(0.5)  # anything delivered again would be in by now
                second_run = (await metric(http, "gridwatch_messages_total"), await metric(http, "gridwatch_pings_already_stored_total"))
                second.send_signal(signal.SIGTERM)
                with trio.fail_after(30):
                    await second.wait()
        numbers = sorted(r["seq"] for r in await store.fetch("SELECT seq FROM pings"))
        nursery.cancel_scope.cancel()
    errors = (tmp_path / "err1").read_text() + (tmp_path / "err2").read_text()
    assert (first.returncode, second.returncode) == (0, 0), errors
    assert "Traceback" not in errors, errors
    assert stopped_with < FIXES  # stopped mid-stream indeed
    assert second_run == (FIXES - stopped_with, 0)  # the second run was sent only what the first had not stored
    assert numbers == list(range(FIXES))  # every fix, once
