"""A JT/T 808 vehicle terminal reports to the running service over TCP: its fixes reach the
database and the live map like any handset's, and an alarm bit's 0→1 edge is one event."""

from __future__ import annotations

import struct
import time
from datetime import datetime, timedelta, timezone

import trio

from protocols.jt808.messages import encode_message
from tests.helpers import wait_for
from tests.test_jt808_gateway import AUTH_2013, exchange
from tests.test_spine_e2e import _start
from tracker.store import datetime_to_ms

PHONE = "013912345678"
BEIJING = timezone(timedelta(hours=8))


def location(serial: int, t: datetime, alarm: int = 0, north_m: float = 0.0) -> bytes:
    lat = round((36.1050 + north_m / 111_195) * 1e6)
    bcd = bytes.fromhex(t.astimezone(BEIJING).strftime("%y%m%d%H%M%S"))
    body = struct.pack(">IIIIhHH", alarm, 0b11, lat, round(103.7200 * 1e6), 1520, 360, 90) + bcd
    return encode_message(0x0200, body, PHONE, serial)


async def test_terminal_fixes_and_alarm_edges_flow_through_the_service(settings, broker):
    settings = settings.replace("jt808", auth_codes="any")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    async with trio.open_nursery() as nursery:
        store, running = await _start(nursery, settings)
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        answer = await exchange(stream, buffer, AUTH_2013)
        # 0x8001 answering serial 3, message 0x0102, result 0 (success)
        assert (answer[2:6], answer[-14:-4]) == ("8001", "0003010200")
        for serial, (seconds, alarm) in enumerate([(-20, 0), (-10, 1), (0, 1)], start=10):
            await exchange(stream, buffer, location(serial, now + timedelta(seconds=seconds), alarm, north_m=-seconds).hex())
        await stream.aclose()
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 3)
        with trio.fail_after(10):
            while not (alarms := await store.fetch("SELECT source, device, kind, raised FROM alarm_events")):
                await trio.sleep(0.05)
        pings = await store.fetch("SELECT device, t, grid, spd FROM pings ORDER BY t")
        live = running.pipeline.live.devices["jt013912345678"]
        nursery.cancel_scope.cancel()
    assert [(r["device"], datetime_to_ms(r["t"]), r["grid"], round(r["spd"], 2)) for r in pings] == [
        ("jt013912345678", int((now + timedelta(seconds=s)).timestamp() * 1000), "620105003003010", 10.0) for s in (-20, -10, 0)]
    assert (live.fix.device_class.value, live.grid) == ("vehicle", "620105003003010")
    assert [tuple(r) for r in alarms] == [("vehicle", "jt013912345678", "sos", True)]
