"""Serving the web edge over HTTP/1.1 and WebSocket with hypercorn, one connection at a time
contained.

``hypercorn.trio.serve`` runs every connection in one nursery and lets anything a
connection raises other than ``OSError`` end that nursery, and with it the service (a
``trio.BusyResourceError`` from its WebSocket keepalive ping while a client sends pings
and garbage frames was seen to do exactly that). Here each connection runs hypercorn's
own connection handler inside a guard: what it raises is logged with its traceback,
counted in ``gridwatch_web_connection_errors_total``, and ends that connection only.

A peer that stops reading would hold a connection forever: hypercorn writes under a
shield, so no cancellation reaches a write the peer never takes. Each connection's stream
is wrapped so that a write that makes no progress for ``send_stall_s`` breaks the
connection (counted in ``gridwatch_web_send_stalled_total``).

Every private member of hypercorn this needs is used in this module and nowhere else.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app

from web.context import Counters

log = logging.getLogger(__name__)

WEBSOCKET_PING_INTERVAL_S = 20.0


def web_config(host: str, port: int, ping_interval_s: float | None = WEBSOCKET_PING_INTERVAL_S) -> Config:
    """hypercorn's settings for the web edge."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2
    config.websocket_ping_interval = ping_interval_s
    return config


# What serves one accepted connection: hypercorn's TCPServer, or a stand-in in tests.
Connection = Callable[..., Any]


class StallGuard:
    """A socket stream whose writes break the connection when the peer takes no byte for
    ``stall_s``; hypercorn's connection handler uses it in place of the stream."""

    def __init__(self, stream: trio.SocketStream, stall_s: float, metrics: Counters) -> None:
        self._stream = stream
        self._stall_s = stall_s
        self._metrics = metrics
        self.socket = stream.socket

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with trio.move_on_after(self._stall_s) as stalled:
            await self._stream.send_all(data)
        if stalled.cancelled_caught:
            self._metrics.inc("gridwatch_web_send_stalled_total")
            await self._stream.aclose()
            raise trio.BrokenResourceError(f"the peer read nothing for {self._stall_s} s")

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self._stream.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


async def serve_web(app: Any, config: Config, metrics: Counters, *, send_stall_s: float = 30.0,
                    connection: Connection = TCPServer, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on ``config.bind`` until cancelled; ``task_status.started(urls)``."""
    wrapped = wrap_app(app, config.wsgi_max_body_size, "asgi")
    state: dict[str, Any] = {}
    lifespan = Lifespan(wrapped, config, state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        sockets = config.create_sockets()
        listeners = []
        for sock in sockets.insecure_sockets:
            sock.listen(config.backlog)
            listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
        urls = [f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets.insecure_sockets]
        serve_one = functools.partial(_contained, connection, wrapped, config, context, state, metrics, send_stall_s)
        async with trio.open_nursery() as connections:
            await connections.start(trio.serve_listeners, serve_one, listeners)
            task_status.started(urls)
        lifespan_nursery.cancel_scope.cancel()


async def _contained(connection: Connection, app: Any, config: Config, context: WorkerContext, state: dict[str, Any],
                     metrics: Counters, send_stall_s: float, stream: trio.SocketStream) -> None:
    """One connection; whatever it raises ends it and nothing else."""
    try:
        await connection(app, config, context, ConnectionState(state.copy()), StallGuard(stream, send_stall_s, metrics))
    except Exception as exc:  # also a group of nothing but errors
        await _failed(exc, metrics, stream)
    except BaseExceptionGroup as group:  # errors beside a cancellation: the cancellation goes on
        errors, cancelled = group.split(Exception)
        if errors is not None:
            await _failed(errors, metrics, stream)
        if cancelled is not None:
            raise cancelled from None


async def _failed(exc: BaseException, metrics: Counters, stream: trio.SocketStream) -> None:
    metrics.inc("gridwatch_web_connection_errors_total")
    log.error("error while serving a web connection; closed it", exc_info=exc)
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        await stream.aclose()
