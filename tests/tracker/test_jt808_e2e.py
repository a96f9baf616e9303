"""A JT/T 808 vehicle terminal reports to the running service over TCP: its fixes reach the
database and the live map like any handset's, and an alarm bit's 0→1 edge is one event,
also across a crash of the service."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import httpx
import trio

from protocols.epoch import datetime_to_ms
from protocols.jt808.messages import encode_message
from tests.harness import auth_headers, start_service
from tests.helpers import wait_for
from tests.jt808_wire import AUTH_2013, exchange, read_frame

PHONE = "013912345678"
BEIJING = timezone(timedelta(hours=8))


def location_body(t: datetime, alarm: int = 0, north_m: float = 0.0) -> bytes:
    lat = round((36.1050 + north_m / 111_195) * 1e6)
    bcd = bytes.fromhex(t.astimezone(BEIJING).strftime("%y%m%d%H%M%S"))
    return struct.pack(">IIIIhHH", alarm, 0b11, lat, round(103.7200 * 1e6), 1520, 360, 90) + bcd


def location(serial: int, t: datetime, alarm: int = 0, north_m: float = 0.0) -> bytes:
    return encode_message(0x0200, location_body(t, alarm, north_m), PHONE, serial)


async def test_terminal_fixes_and_alarm_edges_flow_through_the_service(settings, broker):
    settings = settings.replace("jt808", auth_codes="any")
    now = datetime.now(UTC).replace(microsecond=0)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        answer = await exchange(stream, buffer, AUTH_2013)
        # 0x8001 answering serial 3, message 0x0102, result 0 (success)
        assert (answer[2:6], answer[-14:-4]) == ("8001", "0003010200")
        for serial, (seconds, alarm) in enumerate([(-20, 0), (-10, 1), (0, 1)], start=10):
            await exchange(stream, buffer, location(serial, now + timedelta(seconds=seconds), alarm, north_m=-seconds).hex())
        # a dispatcher asks where the vehicle is now: 0x8201 goes down the terminal's link,
        # and its 0x0201 answer (the query's serial, then a location) is a fix like any other
        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store)) as http:
            asked = await http.post("/api/devices/jt013912345678/locate")
            query = (await read_frame(stream, buffer)).hex()
            reply_body = bytes.fromhex(query[22:26]) + location_body(now + timedelta(seconds=5), 1, north_m=-5)
            await stream.send_all(encode_message(0x0201, reply_body, PHONE, 13))
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 4)
            await stream.aclose()
            await wait_for(lambda: "jt013912345678" not in running.gateway.sessions)
            offline = await http.post("/api/devices/jt013912345678/locate")
        with trio.fail_after(10):
            while not (alarms := await store.fetch("SELECT source, device, kind, raised FROM alarm_events")):
                await trio.sleep(0.05)
        pings = await store.fetch("SELECT device, t, grid, spd FROM pings ORDER BY t LIMIT 3")
        live = running.pipeline.live.devices["jt013912345678"]
        nursery.cancel_scope.cancel()
    assert [(r["device"], datetime_to_ms(r["t"]), r["grid"], round(r["spd"], 2)) for r in pings] == [
        ("jt013912345678", int((now + timedelta(seconds=s)).timestamp() * 1000), "620105003003010", 10.0) for s in (-20, -10, 0)]
    assert (live.fix.device_class.value, live.grid) == ("vehicle", "620105003003010")
    assert [tuple(r) for r in alarms] == [("vehicle", "jt013912345678", "sos", True)]
    assert (asked.status_code, asked.json()["via"], query[2:6]) == (202, "jt808", "8201")
    assert offline.status_code == 503 and "not connected" in offline.json()["error"]


async def test_a_report_with_a_damaged_tail_and_an_impossible_speed_is_stored_and_counted(settings, broker):
    settings = settings.replace("jt808", auth_codes="any")
    now = datetime.now(UTC).replace(microsecond=0)
    body = location_body(now)
    body = body[:18] + struct.pack(">H", 20_000) + body[20:]  # speed 2000.0 km/h
    body += bytes.fromhex("30011c" "3101")  # signal 28, then satellites cut before its value
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        await exchange(stream, buffer, AUTH_2013)
        answer = await exchange(stream, buffer, encode_message(0x0200, body, PHONE, 10).hex())
        metrics = running.pipeline.metrics
        await wait_for(lambda: metrics.get("gridwatch_persisted_total") >= 1)
        await stream.aclose()
        pings = await store.fetch("SELECT device, t, spd, alt FROM pings")
        tolerated = {reason: metrics.get("gridwatch_tolerated_total", protocol="jt808", reason=reason)
                     for reason in ("extras_damaged", "speed_range")}
        nursery.cancel_scope.cancel()
    assert (answer[-6:-4], [(r["device"], datetime_to_ms(r["t"]), r["spd"], r["alt"]) for r in pings], tolerated) == (
        "00", [("jt013912345678", int(now.timestamp() * 1000), None, 1520.0)], {"extras_damaged": 1, "speed_range": 1})


async def test_an_alarm_still_set_after_a_crash_is_not_raised_again_and_clears_once(settings, broker):
    settings = settings.replace("jt808", auth_codes="any")
    t0 = datetime(2026, 11, 19, 9, 46, 40, tzinfo=UTC)
    now_ms = int(t0.timestamp() * 1000) + 60_000
    overspeed = 1 << 1

    async def report(running, *reports: tuple[int, datetime, int]) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        await exchange(stream, buffer, AUTH_2013)
        for serial, t, alarm in reports:
            await exchange(stream, buffer, location(serial, t, alarm).hex())
        await stream.aclose()

    async def events(store) -> list[tuple]:
        rows = await store.fetch("SELECT kind, raised, t FROM alarm_events ORDER BY id")
        return [(r["kind"], r["raised"], r["t"]) for r in rows]

    async with trio.open_nursery() as before:
        store, running = await start_service(before, settings, clock_ms=lambda: now_ms)
        await report(running, (10, t0, 0), (11, t0 + timedelta(seconds=10), overspeed), (12, t0 + timedelta(seconds=20), overspeed))
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 3)
        with trio.fail_after(10):
            while not await events(store):
                await trio.sleep(0.05)
        before.cancel_scope.cancel()  # a crash

    async with trio.open_nursery() as after:
        store, running = await start_service(after, settings, clock_ms=lambda: now_ms)
        # the terminal reconnects still speeding, resends a report whose answer the crash lost, then slows down
        await report(running, (13, t0 + timedelta(seconds=30), overspeed), (12, t0 + timedelta(seconds=20), overspeed),
                     (14, t0 + timedelta(seconds=40), 0))
        await running.stop()
        stored = await events(store)
        after.cancel_scope.cancel()
    assert stored == [("overspeed", True, t0 + timedelta(seconds=10)), ("overspeed", False, t0 + timedelta(seconds=40))]


async def test_every_report_answered_is_already_in_the_database(settings, broker):
    settings = settings.replace("jt808", auth_codes="any")
    now = datetime.now(UTC).replace(microsecond=0)
    seen = []
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        await exchange(stream, buffer, AUTH_2013)
        for serial in range(10, 20):
            alarm = 1 if serial >= 15 else 0  # the SOS edge rides with report 15
            answer = await exchange(stream, buffer, location(serial, now + timedelta(seconds=serial), alarm).hex())
            # looked up the moment the answer arrives, no waiting: answered means stored
            counts = await store.fetch("SELECT (SELECT count(*) FROM pings WHERE device = 'jt013912345678') AS pings,"
                                       " (SELECT count(*) FROM alarm_events WHERE device = 'jt013912345678') AS alarms")
            seen.append((answer[-14:-4], counts[0]["pings"], counts[0]["alarms"]))
        await stream.aclose()
        nursery.cancel_scope.cancel()  # a crash right after the last answer: nothing answered is lost
    assert seen == [(f"{serial:04x}020000", serial - 9, int(serial >= 15)) for serial in range(10, 20)]
