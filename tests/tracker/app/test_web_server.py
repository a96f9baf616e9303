"""An error while serving one web connection ends that connection, never the service."""

from __future__ import annotations

import functools

import httpx
import trio
from hypercorn.events import Event, RawData
from hypercorn.trio.tcp_server import TCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from tests.harness import auth_headers, start_service
from tests.web.raw_wire import client_frame, open_websocket
from tracker.app.web_server import serve_web, web_config
from tracker.metrics import Metrics

PING, PONG, TEXT, CONTINUATION = 0x9, 0xA, 0x1, 0x0


class PongCollides(TCPServer):
    """hypercorn's connection, failing the way its keepalive ping was seen to: writing a
    pong while another write holds the stream."""

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, RawData) and event.data[:1] == bytes([0x80 | PONG]):
            raise trio.BusyResourceError("another task is already sending on this stream")
        await super().protocol_send(event)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def chatter(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text("x" * 4096)
        await trio.sleep(0.001)


APP = Starlette(routes=[Route("/", hello), WebSocketRoute("/ws", chatter)])


async def test_a_connection_that_raises_is_closed_and_the_server_goes_on():
    metrics = Metrics()
    async with trio.open_nursery() as nursery:
        (url,) = await nursery.start(functools.partial(serve_web, connection=PongCollides), APP,
                                     web_config("127.0.0.1", 0), metrics)
        stream = await open_websocket(url)
        await stream.send_all(client_frame(PING, b"are you there"))
        with trio.fail_after(5):
            while await stream.receive_some(65536):
                pass  # the server closes this connection
        await stream.aclose()
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            answer = await http.get("/")
        nursery.cancel_scope.cancel()
    assert (answer.status_code, answer.text) == (200, "hello")
    assert metrics.get("gridwatch_web_connection_errors_total") == 1


async def test_misbehaving_websocket_clients_leave_the_service_serving(settings, broker):
    """Pings, garbage, frames cut short, a close in the middle of a fragmented message and a
    client that hangs up mid-frame, all while the server is sending."""
    settings = settings.replace("jt808", enabled=False)
    abuse = [client_frame(PING, b"p") * 50,
             bytes(range(256)) * 4,
             client_frame(TEXT, b'{"type":"ping"}')[:5],
             client_frame(TEXT, b"[", fin=False) + client_frame(PING, b"") + client_frame(0x8, b"\x03\xe8"),
             client_frame(CONTINUATION, b"no start"),
             client_frame(0x3, b"reserved opcode"),
             client_frame(PING, b"x" * 200),  # a control frame over 125 bytes
             ]
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        for _round in range(3):
            for frames in abuse:
                stream = await open_websocket(running.url, await auth_headers(store))
                try:
                    await stream.send_all(frames)
                    with trio.move_on_after(0.2):
                        await stream.receive_some(10)  # read next to nothing of what the server sends
                except trio.BrokenResourceError:
                    pass
                await stream.aclose()
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            health = (await http.get("/healthz")).status_code
            devices = (await http.get("/api/devices")).status_code
        nursery.cancel_scope.cancel()
    assert (health, devices) == (200, 200)
