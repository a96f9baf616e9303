"""`tracker devices ...` as an operator runs it: a real process against the test broker
and database. Each change takes effect on the broker at once and is audited as
``cli:<os user>``; the password is printed once."""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import subprocess
import sys
import threading

import paho.mqtt.client as paho
import trio

from tests.harness import BROKER_USERS, REPO, store_task
from tests.tracker.registry.devices import Connected, login_refusal


async def tracker(database: str, broker, *args: str, control_password: str | None = None) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environ.update({"TRACKER_DATABASE__DSN": database, "TRACKER_MQTT__HOST": "127.0.0.1", "TRACKER_MQTT__PORT": str(broker.port),
                    "TRACKER_REGISTRY__CONTROL_PASSWORD": BROKER_USERS["gridwatch-control"] if control_password is None
                    else control_password, "TRACKER_REGISTRY__CONTROL_TIMEOUT_S": "3"})
    with trio.fail_after(60):
        done = await trio.run_process([sys.executable, "-m", "tracker", "devices", *args], cwd=REPO, env=environ,
                                      capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def printed_password(out: str) -> str:
    found = re.search(r"password:\s+(\S+)$", out, re.MULTILINE)
    assert found, out
    return found.group(1)


async def test_add_disable_enable_rotate_from_the_command_line_take_effect_and_are_audited(database, broker):
    code, out, err = await tracker(database, broker, "add", "v9401", "--class", "vehicle", "--district", "620105",
                                   "--plate", "甘A00001", "--phone", "013912345678", "--terminal-id", "T000001")
    assert code == 0, err
    password = printed_password(out)
    device = await trio.to_thread.run_sync(Connected, broker, "v9401", password)
    assert device.refused is None

    code, out, err = await tracker(database, broker, "add", "v9402", "--class", "vehicle", "--district", "620105",
                                   "--phone", "13912345678")
    assert (code, err.strip()) == (1, "tracker: error: a device with this phone is registered already")

    code, out, err = await tracker(database, broker, "disable", "v9401")
    assert code == 0, err
    assert await trio.to_thread.run_sync(device.closed.wait, 5)
    assert await trio.to_thread.run_sync(login_refusal, broker, "v9401", password) == "Not authorized"

    assert (await tracker(database, broker, "enable", "v9401"))[0] == 0
    assert await trio.to_thread.run_sync(login_refusal, broker, "v9401", password) is None

    code, out, err = await tracker(database, broker, "rotate", "v9401")
    assert code == 0, err
    new = re.search(r"new MQTT password of v9401: (\S+)", out).group(1)
    assert await trio.to_thread.run_sync(login_refusal, broker, "v9401", password) == "Not authorized"
    assert await trio.to_thread.run_sync(login_refusal, broker, "v9401", new) is None

    code, out, _ = await tracker(database, broker, "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["id"], listed["phone"], listed["terminal_id"], listed["enabled"]) == ("v9401", "013912345678", "T000001", True)
    assert password not in out and new not in out

    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, database)
        trail = list(reversed(await store.audit_entries(action="device.")))
        nursery.cancel_scope.cancel()
    assert [(e["actor"], e["source"], e["action"], e["target"], e["outcome"]) for e in trail] == [
        (f"cli:{getpass.getuser()}", "cli", action, target, outcome) for action, target, outcome in (
            ("device.add", "v9401", "ok"), ("device.add", "v9402", "refused"), ("device.disable", "v9401", "ok"),
            ("device.enable", "v9401", "ok"), ("device.rotate", "v9401", "ok"))]
    assert all(password not in str(dict(e)) and new not in str(dict(e)) for e in trail)
    device.close()


async def test_operator_mistakes_end_with_one_line(database, broker):
    code, _, err = await tracker(database, broker, "disable", "nobody")
    assert (code, err.strip()) == (1, "tracker: error: no registered device 'nobody'")
    code, _, err = await tracker(database, broker, "add", "s1", "--class", "sensor", "--district", "620105", "--component", "123")
    assert (code, err.strip()) == (1, "tracker: error: component '123': a 16-digit component code")
    code, _, err = await tracker(database, broker, "add", "c1", "--class", "collector", "--district", "620105", control_password="")
    assert code == 2 and "control_password" in err and "Traceback" not in err
    code, _, err = await tracker(database, broker, "add", "c1", "--class", "collector", "--district", "620105",
                                 control_password="wrong")
    assert code == 1 and "Traceback" not in err, err
    # nothing half-made: the refused registration left no row behind
    code, out, _ = await tracker(database, broker, "list")
    assert (code, out.strip()) == (0, "0 device(s)")


async def test_simulate_register_logs_every_device_in_as_itself(database, broker):
    """`tracker simulate --register`: the fleet registered, then each device publishing on
    its own account (a production broker has no account publishing for everyone)."""
    heard: set[str] = set()

    def listen(stop: threading.Event) -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"listener-{os.getpid()}", protocol=paho.MQTTv311)
        client.username_pw_set("gridwatch", BROKER_USERS["gridwatch"])
        client.on_connect = lambda c, *_: c.subscribe("gw/v1/#", 0)
        client.on_message = lambda _c, _u, msg: heard.add(msg.topic.split("/")[4])
        client.connect("127.0.0.1", broker.port)
        while not stop.is_set():
            client.loop(0.05)
        client.disconnect()

    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environ.update({"TRACKER_DATABASE__DSN": database, "TRACKER_REGISTRY__CONTROL_PASSWORD": BROKER_USERS["gridwatch-control"]})
    stop = threading.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, listen, stop)
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tracker", "simulate", "--host", "127.0.0.1", "--port", str(broker.port), "--register",
             "--collectors", "2", "--vehicles", "0", "--sensors", "1", "--interval", "0.2", "--username", "nobody"],
            cwd=REPO, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            with trio.fail_after(30):
                while not heard >= {"c0001", "c0002", "mh-0001"}:
                    await trio.sleep(0.1)
        finally:
            process.kill()
            await process.wait()
            stop.set()
    code, out, _ = await tracker(database, broker, "list")
    assert (code, out.splitlines()[-1]) == (0, "3 device(s)")


async def test_broker_accounts_writes_the_production_file_with_the_configured_passwords(tmp_path):
    path = tmp_path / "dynamic-security.json"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environ.update({"TRACKER_MQTT__PASSWORD": "ingest-pass", "TRACKER_REGISTRY__CONTROL_PASSWORD": "control-pass"})
    done = await trio.run_process([sys.executable, "-m", "tracker", "broker-accounts", str(path)], cwd=REPO, env=environ,
                                  capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr
    clients = {c["username"]: c for c in json.loads(path.read_text())["clients"]}
    assert {name: [r["rolename"] for r in c["roles"]] for name, c in clients.items()} == {
        "gridwatch": ["gridwatch-service"], "gridwatch-control": ["gridwatch-control"]}
    for name, password in (("gridwatch", b"ingest-pass"), ("gridwatch-control", b"control-pass")):
        c = clients[name]
        digest = hashlib.pbkdf2_hmac("sha512", password, base64.b64decode(c["salt"]), c["iterations"], 64)
        assert base64.b64decode(c["password"]) == digest
    environ.pop("TRACKER_REGISTRY__CONTROL_PASSWORD")
    refused = await trio.run_process([sys.executable, "-m", "tracker", "broker-accounts", str(path)], cwd=REPO, env=environ,
                                     capture_stdout=True, capture_stderr=True, check=False)
    assert refused.returncode == 2 and b"control_password" in refused.stderr
