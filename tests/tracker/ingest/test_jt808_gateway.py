"""The JT/T 808 TCP gateway: real sockets on 127.0.0.1, and in-memory streams on trio's
MockClock where a test needs minutes to pass in no time."""

from __future__ import annotations

import functools
import random
import struct

import pytest
import trio
import trio.testing

from geofence.index import GridIndex
from protocols.jt808.framing import FrameReader
from protocols.jt808.messages import encode_message
from protocols.model import Fix
from tests.fakes import RecordingSink, RecordingStore
from tests.jt808_wire import (
    ANSWER_AUTH_2013,
    ANSWER_AUTH_2019,
    ANSWER_HEARTBEAT_2013,
    ANSWER_LOCATION_2013,
    ANSWER_LOCATION_2019,
    ANSWER_REGISTER_2013,
    ANSWER_REGISTER_2019,
    ANSWER_UPLINK_0900_UNSUPPORTED,
    AUTH_2013,
    AUTH_2019,
    HEARTBEAT_2013,
    LOCATION_2013,
    LOCATION_2019,
    LOCATION_CUT_EXTRAS_2013,
    LOCATION_HEX_PHONE,
    LOGOUT_2013,
    REGISTER_2013,
    REGISTER_2019,
    REGISTER_HEX_PHONE,
    UPLINK_0900_2013,
    exchange,
    read_frame,
)
from tracker import config
from tracker.ingest.jt808_gateway import Jt808Gateway, Jt808Settings, serve_jt808
from tracker.ingest.pipeline import Pipeline

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


async def log_in(client: trio.abc.Stream, buffer: bytearray) -> None:
    assert [await exchange(client, buffer, f) for f in (REGISTER_2013, AUTH_2013)] == [ANSWER_REGISTER_2013, ANSWER_AUTH_2013]


async def beat_until_hung_up(client: trio.abc.Stream, buffer: bytearray, every_s: float, for_s: float = 3600) -> float | None:
    """Send a heartbeat every ``every_s``; the trio time the gateway hung up, None if it never did."""
    with trio.move_on_after(for_s):
        while True:
            await trio.sleep(every_s)
            try:
                await exchange(client, buffer, HEARTBEAT_2013)
            except (EOFError, trio.BrokenResourceError):
                return trio.current_time()
    return None


async def test_a_half_frame_then_silence_is_hung_up_after_the_idle_timeout(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(idle_timeout_s=300.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        await log_in(client, bytearray())
        await client.send_all(bytes.fromhex(LOCATION_2013)[:20])
        started = trio.current_time()
        assert await client.receive_some(100) == b""
        elapsed = trio.current_time() - started
    assert (round(elapsed), sink.rejects["idle_timeout"]) == (300, 1)


async def test_whole_frames_restart_the_idle_timer(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(idle_timeout_s=300.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        buffer = bytearray()
        await log_in(client, buffer)
        hung_up = await beat_until_hung_up(client, buffer, every_s=299, for_s=5 * 299 + 1)
        await client.aclose()
    assert (hung_up, sink.rejects["idle_timeout"]) == (None, 0)


async def test_stray_bytes_do_not_restart_the_idle_timer(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(idle_timeout_s=300.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    dribble = bytes.fromhex(LOCATION_2013)  # one byte every 10 s: a whole frame only after 10 minutes

    async def one_byte_at_a_time() -> None:
        for i in range(len(dribble)):
            await trio.sleep(10)
            try:
                await client.send_all(dribble[i:i + 1])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        await log_in(client, bytearray())
        last_frame = trio.current_time()
        nursery.start_soon(one_byte_at_a_time)
        assert await client.receive_some(100) == b""
        elapsed = trio.current_time() - last_frame
    assert (round(elapsed), sink.rejects["idle_timeout"]) == (300, 1)


async def test_time_the_pipeline_takes_is_not_the_terminals_idleness(autojump_clock):
    sink = RecordingSink()
    sink.hold = trio.Event()
    gateway = Jt808Gateway(settings(idle_timeout_s=300.0, require_auth=False), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        buffer = bytearray()
        await client.send_all(bytes.fromhex(LOCATION_2013))
        await trio.sleep(400)  # the pipeline pushes back longer than the idle timeout
        sink.hold.set()
        await read_frame(client, buffer)
        await trio.sleep(299)
        beat = await exchange(client, buffer, HEARTBEAT_2013)
        await client.aclose()
    assert (beat[-6:-4], sink.rejects["idle_timeout"]) == ("00", 0)


async def test_a_connection_that_never_authenticates_is_hung_up_at_the_deadline(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(auth_timeout_s=60.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        started = trio.current_time()
        hung_up = await beat_until_hung_up(client, bytearray(), every_s=10)
    assert (round(hung_up - started), sink.rejects["auth_timeout"]) == (60, 1)


async def test_an_authenticated_terminal_outlives_the_authentication_deadline(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(auth_timeout_s=60.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        buffer = bytearray()
        await log_in(client, buffer)
        hung_up = await beat_until_hung_up(client, buffer, every_s=50, for_s=600)
        await client.aclose()
    assert (hung_up, sink.rejects["auth_timeout"]) == (None, 0)


async def test_without_required_authentication_there_is_no_deadline(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(auth_timeout_s=60.0, require_auth=False), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        hung_up = await beat_until_hung_up(client, bytearray(), every_s=50, for_s=600)
        await client.aclose()
    assert (hung_up, sink.rejects["auth_timeout"]) == (None, 0)


async def test_a_logout_starts_the_authentication_deadline_again(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(auth_timeout_s=60.0), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        buffer = bytearray()
        await log_in(client, buffer)
        await trio.sleep(200)
        await exchange(client, buffer, LOGOUT_2013)
        logged_out = trio.current_time()
        hung_up = await beat_until_hung_up(client, buffer, every_s=10)
    assert (round(hung_up - logged_out), sink.rejects["auth_timeout"]) == (60, 1)


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


async def test_a_report_with_a_damaged_extras_tail_reaches_the_sink_and_is_counted(autojump_clock):
    sink = RecordingSink()
    gateway = Jt808Gateway(settings(require_auth=False), sink, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(gateway.handle, server)
        answer = await exchange(client, bytearray(), LOCATION_CUT_EXTRAS_2013)
        await client.aclose()
    assert (answer, [f.lat for f in sink.got_fixes], dict(sink.tolerated_counts)) == (
        "7e8001000501391234567800000004020000b27e", [36.061089], {"extras_damaged": 1})


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


async def test_a_message_the_gateway_does_not_handle_is_answered_not_supported(nursery):
    port = await nursery.start(gateway(settings(), RecordingSink()))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = await exchange(stream, bytearray(), UPLINK_0900_2013)
    await stream.aclose()
    assert answer == ANSWER_UPLINK_0900_UNSUPPORTED


async def test_a_terminal_whose_phone_is_hex_not_bcd_is_served_under_that_identity(nursery):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(), sink))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    buffer = bytearray()
    registered = FrameReader().feed(bytes.fromhex(await exchange(stream, buffer, REGISTER_HEX_PHONE)))[0]
    code = registered[-16:]  # the issued auth code ends the 0x8100 body
    await exchange(stream, buffer, encode_message(0x0102, code, "0a1b2c3d4e5f", 3).hex())
    answer = await exchange(stream, buffer, LOCATION_HEX_PHONE)
    await stream.aclose()
    assert (answer, [f.device for f in sink.got_fixes], dict(sink.tolerated_counts)) == (
        "7e800100050a1b2c3d4e5f00020004020000917e", ["jt0a1b2c3d4e5f"], {"phone_not_bcd": 1})


async def test_one_client_holding_many_connections_does_not_lock_out_a_terminal(nursery):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(max_connections=100, max_connections_per_address=10), sink))
    hog = [await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.1") for _ in range(100)]
    with trio.fail_after(10):
        while sink.rejects["too_many_from_address"] < 90:
            await trio.sleep(0.01)
    terminal = await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.2")
    buffer = bytearray()
    answers = [await exchange(terminal, buffer, f) for f in (REGISTER_2013, AUTH_2013, LOCATION_2013)]
    for stream in [*hog, terminal]:
        await stream.aclose()
    assert (answers, sink.rejects["too_many_from_address"], sink.rejects["too_many_connections"]) == (
        [ANSWER_REGISTER_2013, ANSWER_AUTH_2013, ANSWER_LOCATION_2013], 90, 0)


async def test_a_closed_connection_gives_its_slot_back_to_its_address(nursery):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(max_connections_per_address=1), sink))
    first = await trio.open_tcp_stream("127.0.0.1", port)
    assert await exchange(first, bytearray(), HEARTBEAT_2013)
    await first.aclose()
    with trio.fail_after(5):
        while True:  # until the gateway has seen the close
            second = await trio.open_tcp_stream("127.0.0.1", port)
            try:
                answer = await exchange(second, bytearray(), HEARTBEAT_2013)
                break
            except (EOFError, trio.BrokenResourceError):
                await second.aclose()
                await trio.sleep(0.01)
    await second.aclose()
    assert answer == "7e8001000501391234567800000001000200b77e"  # the first answer of a new connection


class FailingSink(RecordingSink):
    """A pipeline with a bug: it raises on fixes north of 40°."""

    async def fixes(self, fixes: list[Fix]) -> None:
        if any(f.lat > 40.0 for f in fixes):
            raise RuntimeError("the sink cannot take this fix")
        await super().fixes(fixes)


async def test_an_exception_in_one_connection_ends_that_connection_only(nursery):
    sink = FailingSink()
    port = await nursery.start(gateway(settings(require_auth=False), sink))
    good = await trio.open_tcp_stream("127.0.0.1", port)
    bad = await trio.open_tcp_stream("127.0.0.1", port)
    good_buffer = bytearray()
    first = await exchange(good, good_buffer, report(1, 1).hex())
    north = struct.pack(">IIIIhHH", 0, 3, 45_000_000, 103834303, 1520, 456, 90) + bytes.fromhex("251123101531")
    await bad.send_all(encode_message(0x0200, north, "013912345678", 2))
    with trio.fail_after(5):
        hung_up = await bad.receive_some(100)
    second = await exchange(good, good_buffer, report(3, 3).hex())
    late = await trio.open_tcp_stream("127.0.0.1", port)
    third = await exchange(late, bytearray(), report(4, 4).hex())
    for stream in (good, bad, late):
        await stream.aclose()
    assert (hung_up, [a[-14:-4] for a in (first, second, third)], [f.seq for f in sink.got_fixes],
            sink.rejects["internal_error"]) == (b"", ["0001020000", "0003020000", "0004020000"], [1, 3, 4], 1)


async def garbage_terminal(port: int, data: bytes, outcome: dict, key: str) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    sent = 0
    try:
        for start in range(0, len(data), 65536):
            chunk = data[start:start + 65536]
            await stream.send_all(chunk)
            sent += len(chunk)
        await stream.send_eof()  # done: the gateway sees the end rather than waiting for idleness
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


# A stream of junk is not a frame: it no longer keeps a connection open past the idle
# timeout. The "swallowed" variant gives its 10 MiB of junk the time to be read whole (a
# long idle timeout), so the half-frame terminal, whose fate is the idle timeout whatever
# max_bad_frames says, is checked in the "cut_off" variant with its 2 s timeout.
@pytest.mark.parametrize("max_bad_frames, idle_timeout_s", [(32, 2.0), (10**9, 60.0)], ids=["cut_off", "swallowed"])
async def test_misbehaving_terminals_never_stop_a_good_one(nursery, max_bad_frames, idle_timeout_s):
    sink = RecordingSink()
    port = await nursery.start(gateway(settings(idle_timeout_s=idle_timeout_s, max_bad_frames=max_bad_frames), sink))
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
            if max_bad_frames == 32:
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
        assert outcome["half_frame"][0] == b"" and 1.9 < outcome["half_frame"][1] < 10
    else:
        assert outcome["no_flags"] == outcome["random"] == len(noise)
        assert sink.rejects["junk"] >= len(noise) // Jt808Settings().max_frame_bytes


def _pipeline_and_store(**pipeline):
    """A real pipeline on a store that records (and can hold) its writes, on trio's clock."""
    store = RecordingStore()
    app = config.load(None, environ={}).replace("pipeline", **pipeline)
    return Pipeline(app, store, GridIndex(12), clock_ms=lambda: RX), store


async def test_a_location_report_is_answered_only_once_its_rows_are_committed(autojump_clock):
    pipeline, store = _pipeline_and_store(persist_flush_ms=200)
    store.hold = trio.Event()
    gateway = Jt808Gateway(settings(require_auth=False), pipeline, now_ms=lambda: RX)
    client, server = trio.testing.memory_stream_pair()
    sos = struct.pack(">IIIIhHH", 1, 3, 36061089, 103834303, 1520, 0, 0) + bytes.fromhex("251123101530")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        nursery.start_soon(gateway.handle, server)
        await client.send_all(encode_message(0x0200, sos, "013912345678", 7))
        with trio.move_on_after(60):
            early = await client.receive_some(100)
            raise AssertionError(f"answered before the commit: {early!r}")
        assert store.writes == []  # the pipeline took the fix long ago; the write is held
        store.hold.set()
        answer = await read_frame(client, bytearray())
        stored_when_answered = (sum(n for _, n in store.writes), [a[3] for batch in store.alarm_batches for a in batch])
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert (answer[-3], stored_when_answered) == (0, (1, ["sos"]))


async def test_terminals_wait_for_the_same_flush_not_for_one_another(autojump_clock):
    pipeline, store = _pipeline_and_store(persist_flush_ms=200)
    gateway = Jt808Gateway(settings(require_auth=False), pipeline, now_ms=lambda: RX)
    answered: dict[str, float] = {}

    async def terminal(phone: str) -> None:
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(gateway.handle, server)
        body = struct.pack(">IIIIhHH", 0, 3, 36061089, 103834303, 1520, 456, 90) + bytes.fromhex("251123101530")
        for serial in (1, 2):
            sent = trio.current_time()
            await client.send_all(encode_message(0x0200, body[:-1] + bytes([0x30 + serial]), phone, serial))
            await read_frame(client, bytearray())
            answered[f"{phone}/{serial}"] = round(trio.current_time() - sent, 3)
        await client.aclose()

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        async with trio.open_nursery() as terminals:
            for n in range(50):
                terminals.start_soon(terminal, f"0139{n:08d}")
        nursery.cancel_scope.cancel()
    # every report waits one flush window (its own commit), whatever the others do
    assert (set(answered.values()), len(answered), sum(n for _, n in store.writes)) == ({0.2}, 100, 100)
