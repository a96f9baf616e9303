"""The JT/T 808 TCP gateway: real sockets on 127.0.0.1, and in-memory streams on trio's
MockClock where a test needs minutes to pass in no time."""

from __future__ import annotations

import functools
import random
import struct

import pytest
import trio
import trio.testing

from protocols.jt808.framing import FrameReader
from protocols.jt808.messages import encode_message
from tests.fakes import RecordingSink
from tests.jt808_wire import (
    ANSWER_AUTH_2013,
    ANSWER_AUTH_2019,
    ANSWER_HEARTBEAT_2013,
    ANSWER_LOCATION_2013,
    ANSWER_LOCATION_2019,
    ANSWER_REGISTER_2013,
    ANSWER_REGISTER_2019,
    AUTH_2013,
    AUTH_2019,
    HEARTBEAT_2013,
    LOCATION_2013,
    LOCATION_2019,
    REGISTER_2013,
    REGISTER_2019,
    exchange,
    read_frame,
)
from tracker.ingest.jt808_gateway import Jt808Gateway, Jt808Settings, serve_jt808

SECRET = b"gridwatch-test-secret"
RX = 1763864135000

def settings(**overrides) -> Jt808Settings:
    return Jt808Settings(auth_secret=SECRET, **overrides)


def gateway(settings: Jt808Settings, sink: RecordingSink):
    """serve_jt808 for nursery.start, stamping every fix as received at RX."""
    return functools.partial(serve_jt808, settings, sink, now_ms=lambda: RX)


def report(serial: int, second: int) -> bytes:
    """A fixed 0x0200 report from 013912345678, one second of 2025-11-23 10:xx:xx each."""
    minute, sec = divmod(second, 60)
    t_bcd = bytes.fromhex(f"25112310{minute % 60:02d}{sec:02d}")
    body = struct.pack(">IIIIhHH", 0, 3, 36061089, 103834303, 1520, 456, 90) + t_bcd
    return encode_message(0x0200, body, "013912345678", serial)


async def test_a_2013_terminal_registers_authenticates_reports_and_beats_over_tcp(nursery):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(), sink))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = bytearray()
    answers = [await exchange(stream, buffer, f) for f in (REGISTER_2013, AUTH_2013, LOCATION_2013, HEARTBEAT_2013)]
    await stream.aclose()
    assert answers == [ANSWER_REGISTER_2013, ANSWER_AUTH_2013, ANSWER_LOCATION_2013, ANSWER_HEARTBEAT_2013]
    assert [(f.device, f.t_ms, f.lat, f.lon, f.seq) for f in sink.got_fixes] == [
        ("jt013912345678", 1763864130000, 36.061089, 103.834303, 4)
    ]


async def test_a_2019_terminal_is_answered_in_its_own_header_over_tcp(nursery):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(), sink))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = bytearray()
    answers = [await exchange(stream, buffer, f) for f in (REGISTER_2019, AUTH_2019, LOCATION_2019)]
    await stream.aclose()
    assert answers == [ANSWER_REGISTER_2019, ANSWER_AUTH_2019, ANSWER_LOCATION_2019]


async def test_frames_split_and_glued_across_writes_are_all_answered(nursery):
    port = await nursery.start(gateway(settings(), RecordingSink()))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    wire = bytes.fromhex(REGISTER_2013 + AUTH_2013 + LOCATION_2013 + HEARTBEAT_2013)
    for cut in range(0, len(wire), 7):
        await stream.send_all(wire[cut:cut + 7])
        await trio.sleep(0)
    buffer = bytearray()
    answers = [(await read_frame(stream, buffer)).hex() for _ in range(4)]
    await stream.aclose()
    assert answers == [ANSWER_REGISTER_2013, ANSWER_AUTH_2013, ANSWER_LOCATION_2013, ANSWER_HEARTBEAT_2013]


async def test_connections_past_the_limit_are_turned_away(nursery):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(max_connections=2), sink))
    held = []
    for _ in range(2):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        assert await exchange(stream, bytearray(), HEARTBEAT_2013)  # the gateway is serving it
        held.append(stream)
    extra = await trio.open_tcp_stream("127.0.0.1", port)
    with trio.fail_after(5):
        assert await extra.receive_some(100) == b""
    assert sink.rejects["too_many_connections"] == 1
    for stream in [*held, extra]:
        await stream.aclose()


async def test_a_half_frame_then_silence_is_hung_up_after_the_idle_timeout(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(idle_timeout_s=300.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        await client.send_all(bytes.fromhex(LOCATION_2013)[:20])
        started = trio.current_time()
        assert await client.receive_some(100) == b""
        elapsed = trio.current_time() - started
    assert (round(elapsed), sink.rejects["idle_timeout"]) == (300, 1)


async def test_every_byte_restarts_the_idle_timer(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(idle_timeout_s=300.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        buffer = bytearray()
        for _ in range(5):
            await trio.sleep(299)
            assert await exchange(client, buffer, HEARTBEAT_2013)
        await client.aclose()
    assert sink.rejects["idle_timeout"] == 0


async def test_a_report_is_acknowledged_only_once_the_sink_took_it(autojump_clock):
    sink = RecordingSink()
    sink.hold = trio.Event()
    gateway = Jt808Gateway(settings(require_auth=False), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        await client.send_all(bytes.fromhex(LOCATION_2013))
        with trio.move_on_after(60):
            early = await client.receive_some(100)
            raise AssertionError(f"answered before the sink took the fix: {early!r}")
        sink.hold.set()
        answer = await read_frame(client, bytearray())
        await client.aclose()
    assert (answer[-3], len(sink.got_fixes)) == (0, 1)


async def test_an_alarm_edge_reaches_the_sink_once(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(require_auth=False), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    sos = struct.pack(">IIIIhHH", 1, 3, 36061089, 103834303, 1520, 0, 0) + bytes.fromhex("251123101530")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        buffer = bytearray()
        for serial in (1, 2):
            await client.send_all(encode_message(0x0200, sos, "013912345678", serial))
            await read_frame(client, buffer)
        await client.aclose()
    assert [(a.device, a.name, a.raised) for a in sink.got_alarms] == [("jt013912345678", "sos", True)]


def test_settings_refuse_an_unknown_auth_code_policy():
    with pytest.raises(ValueError):
        Jt808Settings(auth_codes="whatever")


async def test_an_unauthenticated_terminal_gets_result_1_and_no_fix(nursery):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(), sink))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = await exchange(stream, bytearray(), LOCATION_2013)
    await stream.aclose()
    assert (answer, sink.got_fixes) == ("7e8001000501391234567800000004020001b37e", [])


async def garbage_terminal(port: int, data: bytes, outcome: dict, key: str) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    sent = 0
    try:
        for start in range(0, len(data), 65536):
            chunk = data[start:start + 65536]
            await stream.send_all(chunk)
            sent += len(chunk)
        with trio.fail_after(10):
            while await stream.receive_some(65536):
                pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()
    outcome[key] = sent


async def half_frame_terminal(port: int, outcome: dict) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(bytes.fromhex(LOCATION_2013)[:20])
    started = trio.current_time()
    with trio.fail_after(10):
        data = await stream.receive_some(100)
    outcome["half_frame"] = (data, trio.current_time() - started)
    await stream.aclose()


async def churn(port: int, count: int, outcome: dict) -> None:
    rng = random.Random(1000)
    limiter = trio.CapacityLimiter(50)

    async def one(i: int) -> None:
        async with limiter:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            if i % 3 == 1:
                await stream.send_all(bytes.fromhex(LOCATION_2013)[: rng.randrange(1, 40)])
            elif i % 3 == 2:
                await stream.send_all(bytes.fromhex(HEARTBEAT_2013))
            await trio.aclose_forcefully(stream)
            outcome["churned"] = outcome.get("churned", 0) + 1

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)


@pytest.mark.parametrize("max_bad_frames", [32, 10**9], ids=["cut_off", "swallowed"])
async def test_misbehaving_terminals_never_stop_a_good_one(nursery, max_bad_frames):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(idle_timeout_s=2.0, max_bad_frames=max_bad_frames), sink))
    good = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = bytearray()
    await exchange(good, buffer, REGISTER_2013)
    await exchange(good, buffer, AUTH_2013)
    noise = random.Random(808).randbytes(10 * 1024 * 1024)
    outcome: dict = {}
    done = trio.Event()

    async def misbehave() -> None:
        async with trio.open_nursery() as bad:
            bad.start_soon(garbage_terminal, port, noise.replace(b"\x7e", b"\x00"), outcome, "no_flags")
            bad.start_soon(garbage_terminal, port, noise, outcome, "random")
            bad.start_soon(half_frame_terminal, port, outcome)
            bad.start_soon(churn, port, 1000, outcome)
        done.set()

    nursery.start_soon(misbehave)
    acknowledged = []
    serial = 100
    while not done.is_set() or serial < 120:
        serial += 1
        await good.send_all(report(serial, serial))
        (answer,) = FrameReader().feed(await read_frame(good, buffer))
        acknowledged.append(answer[-5:] == struct.pack(">HHB", serial, 0x0200, 0))
        await trio.sleep(0.05)
    await good.aclose()
    assert acknowledged == [True] * (serial - 100)
    assert [f.seq for f in sink.got_fixes] == list(range(101, serial + 1))
    assert outcome["churned"] == 1000
    if max_bad_frames == 32:
        assert outcome["no_flags"] < len(noise) and outcome["random"] < len(noise)
        assert sink.rejects["too_many_bad_frames"] == 2
    else:
        assert outcome["no_flags"] == outcome["random"] == len(noise)
        assert sink.rejects["junk"] >= len(noise) // Jt808Settings().max_frame_bytes
    assert outcome["half_frame"][0] == b"" and 1.9 < outcome["half_frame"][1] < 10
