"""The service names its devices as the registry does, keeps every sensor record for the
map's chart (scoped to the caller's district like everything else), and stores each
alarm's measured value with the limit it was judged against."""

from __future__ import annotations

import struct
import time
from datetime import UTC, datetime, timedelta, timezone

import httpx
import msgpack
import trio

from protocols.epoch import datetime_to_ms
from protocols.jt808.messages import encode_message
from tests.harness import auth_headers, start_service
from tests.helpers import apublish, wait_for
from tests.jt808_wire import AUTH_2013, HEARTBEAT_2013, exchange
from tracker.registry.model import RegisteredDevice

ANNING_BIN, QILIHE_BIN = "6201050302000003", "6201030302000001"


def _bin(device: str, component: str, district: str, t_ms: int, fill: float) -> list[tuple[str, bytes]]:
    base = f"gw/v1/{district}/sensor/{device}"
    lat, lon = (36.1050, 103.7200) if district == "620105" else (36.0650, 103.7600)
    return [(f"{base}/pos", msgpack.packb({"t": t_ms - 60_000, "lat": lat, "lon": lon, "acc": 3.0})),
            (f"{base}/status", msgpack.packb({"dev": device, "comp": component, "t": t_ms, "type": "bin", "kind": "status",
                                              "fill": fill, "bat": 77}))]


async def test_devices_carry_the_registry_names_and_readings_keep_to_the_district(settings, broker):
    now = int(time.time() * 1000)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        for device in (RegisteredDevice.new("c0001", "collector", "620105", name="采集员 王芳", person="王芳"),
                       RegisteredDevice.new("bin-0001", "sensor", "620105", name="果皮箱 桃林 3 号", component=ANNING_BIN)):
            await store.register_device(device.row())
        await running.registry.load(store)
        await apublish(broker, [
            ("gw/v1/620105/collector/c0001/pos", msgpack.packb({"t": now - 5000, "lat": 36.1050, "lon": 103.7200, "acc": 5.0})),
            ("gw/v1/620105/collector/c0002/pos", msgpack.packb({"t": now - 5000, "lat": 36.1052, "lon": 103.7202, "acc": 5.0})),
            *_bin("bin-0001", ANNING_BIN, "620105", now - 120_000, 61.0),
            *_bin("bin-0001", ANNING_BIN, "620105", now - 60_000, 63.5)[1:],
            *_bin("bin-9001", QILIHE_BIN, "620103", now - 60_000, 20.0),
        ])
        live = running.pipeline.live
        await wait_for(lambda: {"c0001", "c0002", "bin-0001", "bin-9001"} <= set(live.devices) and
                       live.readings.get("bin-0001", {}).get("fill") == 63.5)
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 4)  # the four fixes
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store, role="viewer")) as city:
            devices = {d["id"]: d for d in (await city.get("/api/devices")).json()["devices"]}
            with trio.fail_after(10):
                while len((day := (await city.get("/api/devices/bin-0001/readings")).json())["readings"]) < 2:
                    await trio.sleep(0.05)
            backwards = await city.get("/api/devices/bin-0001/readings", params={"from": now, "to": now - 1})
        async with httpx.AsyncClient(base_url=running.url,
                                     headers=await auth_headers(store, role="viewer", district="620105")) as anning:
            own = (await anning.get("/api/devices/bin-0001/readings")).json()["readings"]
            other = await anning.get("/api/devices/bin-9001/readings")
        async with httpx.AsyncClient(base_url=running.url,
                                     headers=await auth_headers(store, role="viewer", district="620103")) as qilihe:
            theirs = (await qilihe.get("/api/devices/bin-9001/readings")).json()["readings"]
        nursery.cancel_scope.cancel()
    c1, c2, bin1 = devices["c0001"], devices["c0002"], devices["bin-0001"]
    assert (c1["label"], c1["person"], c1["name"]) == ("王芳", "王芳", "采集员 王芳")
    assert (c2["label"], "person" in c2) == ("c0002", False)  # not registered: its id
    assert (bin1["label"], bin1["component"], bin1["readings"]) == ("果皮箱 桃林 3 号", ANNING_BIN,
                                                                   {"fill": 63.5, "bat": 77.0, "t": now - 60_000})
    # the sensor stood still; it was heard from after its fix
    assert (bin1["t"], bin1["heard"] > bin1["t"]) == (now - 120_000 - 60_000, True)
    assert [(r["t"], r["kind"], r["fill"], r["bat"]) for r in day["readings"]] == [
        (now - 120_000, "status", 61.0, 77.0), (now - 60_000, "status", 63.5, 77.0)]
    assert backwards.status_code == 400 and "'from' is after 'to'" in backwards.json()["error"]
    assert (len(own), other.status_code, len(theirs)) == (2, 404, 1)


def _location(serial: int, t: datetime, alarm: int, speed_tenths: int) -> bytes:
    bcd = bytes.fromhex(t.astimezone(timezone(timedelta(hours=8))).strftime("%y%m%d%H%M%S"))
    body = struct.pack(">IIIIhHH", alarm, 0b11, round(36.1050 * 1e6), round(103.7200 * 1e6), 1520, speed_tenths, 90) + bcd
    return encode_message(0x0200, body, "013912345678", serial)


async def test_alarm_events_carry_the_value_and_the_limit(settings, broker):
    settings = settings.replace("jt808", auth_codes="any", speed_limit_kmh=60.0)
    now = int(time.time() * 1000)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        await apublish(broker, _bin("bin-0001", ANNING_BIN, "620105", now - 60_000, 91.0))  # a bin over 80 % full
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        await exchange(stream, buffer, AUTH_2013)
        await exchange(stream, buffer, _location(1, t0, 0, 420).hex())
        await exchange(stream, buffer, _location(2, t0 + timedelta(seconds=10), 1 << 1, 724).hex())  # overspeed at 72.4 km/h
        live = running.pipeline.live
        await wait_for(lambda: "jt013912345678" in live.devices)
        reported = live.view("jt013912345678")["heard"]
        await trio.sleep(1.1)
        await exchange(stream, buffer, HEARTBEAT_2013)  # parked: no fix, still there
        heartbeat = live.view("jt013912345678")
        await stream.aclose()
        with trio.fail_after(10):
            while len(rows := await store.fetch("SELECT kind, value, alarm_limit FROM alarm_events ORDER BY kind")) < 2:
                await trio.sleep(0.05)
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store, role="viewer")) as http:
            alarms = {a["kind"]: a for a in (await http.get("/api/alarms")).json()["alarms"]}
        nursery.cancel_scope.cancel()
    assert [tuple(r) for r in rows] == [("full", 91.0, 80.0), ("overspeed", 72.4, 60.0)]
    assert heartbeat["t"] == datetime_to_ms(t0 + timedelta(seconds=10)) and heartbeat["heard"] >= reported + 1000
    assert (alarms["full"]["value"], alarms["full"]["limit"]) == (91.0, 80.0)
    assert (alarms["overspeed"]["value"], alarms["overspeed"]["limit"], alarms["overspeed"]["detail"]) == (
        72.4, 60.0, "speed 72.4 km/h, limit 60 km/h")
