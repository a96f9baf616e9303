"""The device registry end to end, on the test broker (dynamic security plugin) and a
real database: what a provisioned device may do, what disabling and rotating do to it
at once, and what becomes of payloads from devices the registry does not know."""

from __future__ import annotations

import time

import httpx
import msgpack
import pytest
import trio

from tests.harness import LAT, LON, auth_headers, start_service
from tests.helpers import apublish, wait_for
from tests.tracker.registry.devices import Connected, login_refusal
from tracker import config
from tracker.registry.model import RegisteredDevice
from tracker.registry.provisioning import Provisioning, control_account


@pytest.fixture
def refusing(settings):
    """The production default: payloads of unregistered devices are refused."""
    return settings.replace("registry", unregistered=config.Unregistered.REFUSE)


def fix(t_ms: int | None = None) -> bytes:
    return msgpack.packb({"t": t_ms or int(time.time() * 1000), "lat": LAT, "lon": LON, "acc": 5})


async def provision(settings, store, running, *devices: RegisteredDevice) -> list[str]:
    return await Provisioning(store, control_account(settings), running.registry).add_all(list(devices))


async def connected(broker, username: str, password: str) -> Connected:
    return await trio.to_thread.run_sync(Connected, broker, username, password)


async def test_a_device_publishes_as_itself_only_not_as_another_device_class_or_district(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        password, _ = await provision(refusing, store, running, RegisteredDevice.new("c9001", "collector", "620105"),
                                      RegisteredDevice.new("c9002", "collector", "620105"))
        device = await connected(broker, "c9001", password)
        assert device.refused is None
        t = int(time.time() * 1000)
        for topic in ("gw/v1/620105/collector/c9002/pos",  # another device's topic (c9002 is registered)
                      "gw/v1/999999/vehicle/c9001/pos",  # another district and class
                      "gw/v1/620106/collector/c9001/pos",  # another district
                      "gw/v1/620105/vehicle/c9001/pos",  # another class
                      "gw/v1/620105/sensor/c9001/alarm"):  # a sensor's alarm
            await trio.to_thread.run_sync(device.publish, topic, fix(t - 10_000))
        await trio.to_thread.run_sync(device.publish, "gw/v1/620105/collector/c9001/pos", fix(t))
        await wait_for(lambda: "c9001" in running.pipeline.live.devices)
        await trio.sleep(0.3)  # time for anything the broker let through after it (it let nothing through before)
        metrics = running.pipeline.metrics
        assert (set(running.pipeline.live.devices), metrics.get("gridwatch_messages_total")) == ({"c9001"}, 1)
        assert sum(metrics.get("gridwatch_device_refused_total", reason=r)
                   for r in ("unregistered", "wrong_class", "wrong_district")) == 0  # the broker dropped them
        rows = await store.fetch("SELECT device, count(*) AS n FROM pings GROUP BY device")
        assert [(r["device"], r["n"]) for r in rows] == [("c9001", 1)]
        device.close()
        nursery.cancel_scope.cancel()


async def test_a_disabled_device_is_cut_off_at_once_and_cannot_log_in(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        provisioning = Provisioning(store, control_account(refusing), running.registry)
        (password,) = await provisioning.add_all([RegisteredDevice.new("v9001", "vehicle", "620105", plate="甘A12345")])
        device = await connected(broker, "v9001", password)
        assert device.refused is None and not device.closed.is_set()
        before, after = await provisioning.set_enabled("v9001", False)
        assert (before.enabled, after.enabled) == (True, False)
        assert await trio.to_thread.run_sync(device.closed.wait, 5), "the open connection was not closed"
        assert await trio.to_thread.run_sync(login_refusal, broker, "v9001", password) == "Not authorized"
        # what still arrives for it (through an account that publishes for anyone) is refused
        await apublish(broker, [("gw/v1/620105/vehicle/v9001/pos", fix())])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_device_refused_total", reason="disabled") == 1)
        assert "v9001" not in running.pipeline.live.devices
        await provisioning.set_enabled("v9001", True)
        assert await trio.to_thread.run_sync(login_refusal, broker, "v9001", password) is None
        device.close()
        nursery.cancel_scope.cancel()


async def test_a_rotated_password_replaces_the_old_one_and_ends_its_session(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        provisioning = Provisioning(store, control_account(refusing), running.registry)
        (old,) = await provisioning.add_all([RegisteredDevice.new("s9001", "sensor", "620105", component="6201050101000001")])
        device = await connected(broker, "s9001", old)
        _known, new = await provisioning.rotate("s9001")
        assert new != old
        assert await trio.to_thread.run_sync(device.closed.wait, 5), "the session of the old password lives on"
        assert await trio.to_thread.run_sync(login_refusal, broker, "s9001", old) == "Not authorized"
        fresh = await connected(broker, "s9001", new)
        assert fresh.refused is None
        await trio.to_thread.run_sync(fresh.publish, "gw/v1/620105/sensor/s9001/pos", fix())
        await wait_for(lambda: "s9001" in running.pipeline.live.devices)
        (row,) = await store.fetch("SELECT rotated FROM registered_devices WHERE id = 's9001'")
        assert row["rotated"] is not None
        fresh.close()
        device.close()
        nursery.cancel_scope.cancel()


async def test_payloads_of_unregistered_devices_are_counted_and_leave_no_rows(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        await provision(refusing, store, running, RegisteredDevice.new("c9001", "collector", "620105"))
        status = msgpack.packb({"t": int(time.time() * 1000), "component": "6201050101000009", "tilt": 45.0, "bat": 80})
        await apublish(broker, [("gw/v1/620105/collector/ghost1/pos", fix()), ("gw/v1/620105/sensor/ghost2/status", status),
                                ("gw/v1/620105/sensor/ghost2/alarm", status), ("gw/v1/620105/collector/c9001/pos", fix())])
        await wait_for(lambda: "c9001" in running.pipeline.live.devices)
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_device_refused_total", reason="unregistered") == 3)
        await trio.sleep(running.pipeline.settings.pipeline.persist_flush_ms / 1000 + 2.5)  # past a devices write
        for table, column in (("pings", "device"), ("devices", "id"), ("components", "device"), ("sensor_states", "device"),
                              ("alarm_events", "device"), ("dead_letters", "device")):
            rows = await store.fetch(f"SELECT {column} FROM {table} WHERE {column} LIKE 'ghost%'")
            assert rows == [], table
        assert "ghost1" not in running.pipeline.live.devices
        nursery.cancel_scope.cancel()


async def test_the_admin_api_registers_a_device_and_shows_its_password_once(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        headers = await auth_headers(store, role="admin")
        async with httpx.AsyncClient(base_url=running.url, headers=headers) as http:
            added = await http.post("/api/admin/devices", json={"id": "c9100", "class": "collector", "district": "620105",
                                                                "name": "Wang Fang", "person": "王芳"})
            assert added.status_code == 201, added.text
            password = added.json()["mqtt"]["password"]
            assert added.json()["device"]["person"] == "王芳"
            again = await http.post("/api/admin/devices", json={"id": "c9100", "class": "collector", "district": "620105"})
            assert again.status_code == 409
            listed = await http.get("/api/admin/devices")
            assert [d["id"] for d in listed.json()["devices"]] == ["c9100"] and password not in listed.text
            assert await trio.to_thread.run_sync(login_refusal, broker, "c9100", password) is None
            await apublish(broker, [("gw/v1/620105/collector/c9100/pos", fix())], username="c9100", password=password)
            await wait_for(lambda: "c9100" in running.pipeline.live.devices)  # in force at once: no reload waited for
            disabled = await http.post("/api/admin/devices/c9100/disable")
            assert disabled.json()["device"]["enabled"] is False
            rotated = await http.post("/api/admin/devices/c9100/rotate")
            assert rotated.status_code == 200 and rotated.json()["mqtt"]["password"] != password
            assert (await http.post("/api/admin/devices/nobody/rotate")).status_code == 404
            bad = await http.post("/api/admin/devices", json={"id": "c/1", "class": "collector", "district": "620105"})
            assert bad.status_code == 422 and "device id" in bad.json()["error"]
            assert (await http.post("/api/admin/devices", json={"id": "x1", "class": "boat", "district": "620105"})).status_code == 422
        trail = await store.audit_entries(target="c9100")
        assert [(e["action"], e["outcome"]) for e in reversed(trail)] == [
            ("device.add", "ok"), ("device.add", "refused"), ("device.disable", "ok"), ("device.rotate", "ok")]
        assert all(password not in str(dict(e)) for e in trail)
        nursery.cancel_scope.cancel()


async def test_a_registration_made_elsewhere_reaches_ingest_within_the_refresh(refusing, broker):
    settings = refusing.replace("registry", refresh_s=0.2)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        await apublish(broker, [("gw/v1/620105/collector/c9200/pos", fix())])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_device_refused_total", reason="unregistered") == 1)
        # another process (the CLI) registers it: the database changes, this process is not told
        await Provisioning(store, control_account(settings)).add(RegisteredDevice.new("c9200", "collector", "620105"))
        await wait_for(lambda: "c9200" in running.registry.devices)
        await apublish(broker, [("gw/v1/620105/collector/c9200/pos", fix())])
        await wait_for(lambda: "c9200" in running.pipeline.live.devices)
        nursery.cancel_scope.cancel()




async def test_without_a_control_account_the_admin_api_says_provisioning_is_off(refusing, broker):
    settings = refusing.replace("registry", control_password="")
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store)) as http:
            answer = await http.post("/api/admin/devices", json={"id": "c9300", "class": "collector", "district": "620105"})
        assert answer.status_code == 503 and "control_password" in answer.json()["error"]
        assert await store.registered_devices() == []
        nursery.cancel_scope.cancel()


async def test_a_sensor_speaks_only_for_the_component_it_is_registered_on(refusing, broker):
    own, other = "6201050101000001", "6201050101000002"
    t = int(time.time() * 1000)

    def record(component: str, t_ms: int) -> bytes:
        return msgpack.packb({"dev": "s9002", "comp": component, "t": t_ms, "type": "manhole", "kind": "status", "tilt": 0.5,
                              "bat": 90})

    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        (password,) = await provision(refusing, store, running, RegisteredDevice.new("s9002", "sensor", "620105", component=own))
        topic = "gw/v1/620105/sensor/s9002/status"
        await apublish(broker, [(topic, record(other, t - 1000)), (topic, record(own, t))], username="s9002", password=password)
        await wait_for(lambda: "s9002" in running.pipeline.sensors.last_seen)
        metrics = running.pipeline.metrics
        assert metrics.get("gridwatch_device_refused_total", reason="wrong_component") == 1
        await wait_for(lambda: running.pipeline.persist_lag_s() == 0)
        await trio.sleep(0.5)
        rows = await store.fetch("SELECT code FROM components WHERE device = 's9002'")
        assert [r["code"] for r in rows] == [own]
        nursery.cancel_scope.cancel()
