"""JT/T 808 terminals against the registry, on the running service: an unknown terminal
is turned away as the standard has it (0x8100 result 4, "no such terminal in the
database"), a registered one gets its auth code and reports as its registered device,
and a second connection claiming an authenticated terminal's identity does not take
over its command link."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
import trio

from protocols.jt808.messages import encode_message
from tests.harness import auth_headers, start_service
from tests.helpers import wait_for
from tests.jt808_wire import REGISTER_2013, exchange, read_frame
from tracker import config
from tracker.registry.model import RegisteredDevice
from tracker.registry.provisioning import Provisioning, control_account

PHONE = "013912345678"
BEIJING = timezone(timedelta(hours=8))


@pytest.fixture
def refusing(settings):
    return settings.replace("registry", unregistered=config.Unregistered.REFUSE)


def register_result(answer_hex: str) -> tuple[str, int, str]:
    """(message id, result, auth code) of a 0x8100 answer."""
    frame = bytes.fromhex(answer_hex)[1:-2]  # no flags, no checksum
    body = frame[12:]
    return frame[:2].hex(), body[2], body[3:].decode()


def general_result(answer_hex: str) -> int:
    return bytes.fromhex(answer_hex)[-3]


def authenticate(code: str, serial: int = 3) -> str:
    return encode_message(0x0102, code.encode(), PHONE, serial).hex()


def location(serial: int, t: datetime) -> str:
    bcd = bytes.fromhex(t.astimezone(BEIJING).strftime("%y%m%d%H%M%S"))
    body = struct.pack(">IIIIhHH", 0, 0b11, 36_105_000, 103_720_000, 1520, 360, 90) + bcd
    return encode_message(0x0200, body, PHONE, serial).hex()


async def register(settings, store, running, **fields) -> None:
    device = RegisteredDevice.new("v-lz-001", "vehicle", "620105", phone=PHONE, **fields)
    await Provisioning(store, control_account(settings), running.registry).add(device)


async def test_an_unregistered_terminal_is_refused_registration_and_authentication(refusing, broker):
    async with trio.open_nursery() as nursery:
        _store, running = await start_service(nursery, refusing)
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        assert register_result(await exchange(stream, buffer, REGISTER_2013)) == ("8100", 4, "")
        assert general_result(await exchange(stream, buffer, authenticate("ANYCODE"))) == 1  # failure
        assert general_result(await exchange(stream, buffer, location(4, datetime.now(UTC)))) == 1
        assert running.pipeline.metrics.get("gridwatch_rejected_total", protocol="jt808", reason="unregistered_terminal") == 2
        assert running.gateway.sessions == {} and running.pipeline.live.devices == {}
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_terminal_must_say_it_is_the_registered_one(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        await register(refusing, store, running, terminal_id="T000002", plate="甘A12345")
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        assert register_result(await exchange(stream, buffer, REGISTER_2013))[:2] == ("8100", 4)  # terminal T000001
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_registered_terminal_gets_its_code_and_keeps_its_command_link_against_a_second_claim(refusing, broker):
    now = datetime.now(UTC).replace(microsecond=0)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        await register(refusing, store, running, terminal_id="T000001", plate="甘A12345")
        first = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        first_buffer = bytearray()
        _, result, code = register_result(await exchange(first, first_buffer, REGISTER_2013))
        assert (result, len(code)) == (0, 16)
        assert general_result(await exchange(first, first_buffer, authenticate(code))) == 0
        assert general_result(await exchange(first, first_buffer, location(4, now))) == 0
        await wait_for(lambda: "v-lz-001" in running.pipeline.live.devices)  # reports as its registered device

        # same phone, same terminal id, same code: registration is answered, but
        # authentication is refused while the first connection lives
        second = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        second_buffer = bytearray()
        assert register_result(await exchange(second, second_buffer, REGISTER_2013))[1:] == (0, code)
        assert general_result(await exchange(second, second_buffer, authenticate(code, serial=9))) == 1
        assert running.pipeline.metrics.get("gridwatch_rejected_total", protocol="jt808", reason="identity_in_use") == 1

        async with httpx.AsyncClient(base_url=running.url, headers=await auth_headers(store)) as http:
            asked = await http.post("/api/devices/v-lz-001/locate")
        assert asked.status_code == 202
        query = (await read_frame(first, first_buffer)).hex()
        assert query[2:6] == "8201"  # the downlink went to the first connection
        with trio.move_on_after(0.5):
            stolen = await read_frame(second, second_buffer)
            raise AssertionError(f"the second connection got {stolen.hex()}")

        # once the first is gone, the terminal may come back on a new connection
        await first.aclose()
        await wait_for(lambda: "v-lz-001" not in running.gateway.sessions)
        assert general_result(await exchange(second, second_buffer, authenticate(code, serial=10))) == 0
        await second.aclose()
        nursery.cancel_scope.cancel()


async def test_a_terminal_disabled_while_connected_is_hung_up_on_and_its_report_not_stored(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        await register(refusing, store, running)
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        _, _, code = register_result(await exchange(stream, buffer, REGISTER_2013))
        assert general_result(await exchange(stream, buffer, authenticate(code))) == 0
        await Provisioning(store, control_account(refusing), running.registry).set_enabled("v-lz-001", False)
        await stream.send_all(bytes.fromhex(location(4, datetime.now(UTC))))
        with pytest.raises(EOFError):
            await read_frame(stream, buffer)
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_rejected_total", protocol="jt808", reason="terminal_disabled") == 1)
        assert "v-lz-001" not in running.pipeline.live.devices and "v-lz-001" not in running.gateway.sessions
        await stream.aclose()
        nursery.cancel_scope.cancel()


async def test_a_disabled_terminal_can_no_longer_authenticate(refusing, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, refusing)
        await register(refusing, store, running)
        stream = await trio.open_tcp_stream("127.0.0.1", running.jt808_port)
        buffer = bytearray()
        _, _, code = register_result(await exchange(stream, buffer, REGISTER_2013))
        await Provisioning(store, control_account(refusing), running.registry).set_enabled("v-lz-001", False)
        assert general_result(await exchange(stream, buffer, authenticate(code))) == 1
        assert register_result(await exchange(stream, buffer, REGISTER_2013))[:2] == ("8100", 4)
        await stream.aclose()
        nursery.cancel_scope.cancel()
