"""The MQTT connection: paho-mqtt driven from trio through its external-loop hooks.

One reader, one writer and one housekeeping task per connection, in a nursery; when the
connection drops they are cancelled and the client reconnects with jittered exponential
backoff. Incoming messages are handed over in batches (everything one socket read
yielded), so the consumer pays per read, not per message, and a full consumer pushes
back: the reader stops reading and the broker queues.

paho reads a packet with three or more ``recv`` calls (command byte, length, body). Its
socket is wrapped in a read buffer so one ``recv`` syscall serves many packets; that is
most of paho's per-message cost under load.
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import paho.mqtt.client as paho
import trio

from tracker.clock import wall_clock_ms

log = logging.getLogger(__name__)

Message = tuple[str, bytes, int]  # topic, payload, receive time (epoch ms)
MAX_BATCH_MESSAGES = 512


class BrokerError(RuntimeError):
    """The broker refused us (bad credentials, not authorised); retrying will not help."""


@dataclass(frozen=True, slots=True)
class BrokerParams:
    host: str
    port: int
    username: str
    password: str
    client_id: str
    keepalive_s: int = 30
    subscriptions: tuple[str, ...] = ()
    qos: int = 0
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 30.0


class _BufferedSocket:
    """Serves paho's small reads from one large ``recv``; everything else passes through."""

    __slots__ = ("sock", "buf", "pos", "starved")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0
        self.starved = False  # the last real recv found nothing: the drain is complete

    def recv(self, n: int) -> bytes:
        buf, pos = self.buf, self.pos
        if pos >= len(buf):
            try:
                buf = self.sock.recv(262144)
            except BlockingIOError:
                self.starved = True
                raise
            if not buf:
                return b""
            pos = 0
        chunk = buf[pos : pos + n]
        self.buf, self.pos = buf, pos + len(chunk)
        return chunk

    def buffered(self) -> int:
        return len(self.buf) - self.pos

    def send(self, data) -> int:
        return self.sock.send(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)


class _IngestClient(paho.Client):
    """paho's client with a lean path for incoming PUBLISH packets.

    For every message paho builds an ``MQTTMessage``, formats a debug log line, decodes
    the topic twice and walks its per-topic callback matcher: over half of a subscriber's
    CPU at ingest rates (measured with py-spy under bench.ingest). For MQTT 3.1.1 QoS 0
    and 1 this does the same wire work (decode, PUBACK for QoS 1) and appends
    (topic, payload, rx_ms) straight to the owner's inbox; QoS 2 and MQTT 5 take paho's
    own path. The override is of a private method of the pinned paho version, covered
    by tests/tracker/ingest/test_broker_client.py.
    """

    def _handle_publish(self) -> paho.MQTTErrorCode:
        owner = self._userdata
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if qos > 1 or self._protocol == paho.MQTTv5 or owner is None:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        if len(packet) < 2 + 2 * qos:
            return paho.MQTTErrorCode.MQTT_ERR_PROTOCOL
        slen = (packet[0] << 8) | packet[1]
        start = 2 + slen
        if slen == 0 or len(packet) < start + 2 * qos:
            return paho.MQTTErrorCode.MQTT_ERR_PROTOCOL
        try:
            topic = packet[2:start].decode("utf-8")
        except UnicodeDecodeError:
            topic = None
        if qos:
            mid = (packet[start] << 8) | packet[start + 1]
            start += 2
        if topic is not None:
            owner._inbox.append((topic, bytes(packet[start:]), owner._rx_ms))
        else:
            owner.bad_topics += 1  # MQTT requires UTF-8 topics; the broker should have refused it
        return self._send_puback(mid) if qos else paho.MQTTErrorCode.MQTT_ERR_SUCCESS


class BrokerClient:
    """A long-lived MQTT 3.1.1 connection for trio code.

    ``deliver`` (optional) receives each batch of incoming messages; it may block, which
    pushes back on the broker. ``publish`` queues a message and never blocks.
    """

    def __init__(self, params: BrokerParams, deliver: Callable[[list[Message]], Awaitable[None]] | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.params = params
        self._deliver = deliver
        # receive times come from the service's clock, so a test can run the service "on"
        # any day (a fix is judged stale or future against its receive time)
        self._clock_ms = clock_ms or wall_clock_ms
        self._inbox: list[Message] = []
        self._client = _IngestClient(
            paho.CallbackAPIVersion.VERSION2,
            client_id=params.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
            userdata=self,
        )
        self.bad_topics = 0
        self._rx_ms = 0
        self._client.username_pw_set(params.username, params.password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_socket_close = self._on_socket_close
        self._client.max_queued_messages_set(0)
        self._want_write = trio.Event()
        self._connack: tuple[bool, str] | None = None
        self._connack_event = trio.Event()
        self.connected = False
        self.subscribed = False  # the broker acknowledged this connection's subscriptions
        self.connects = 0

    # --- paho callbacks (run synchronously inside loop_read/loop_write) -------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        ok = not reason_code.is_failure
        self._connack = (ok, str(reason_code))
        if ok and self.params.subscriptions:
            client.subscribe([(topic, self.params.qos) for topic in self.params.subscriptions])
        self._connack_event.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subscribed = True

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        self._inbox.append((msg.topic, bytes(msg.payload), self._rx_ms))  # no copy when it is bytes already

    def _on_socket_close(self, client, userdata, sock) -> None:
        try:
            trio.lowlevel.notify_closing(sock.fileno())
        except RuntimeError:
            pass  # closed outside trio (interpreter shutdown): nobody is waiting on it

    def _on_register_write(self, client, userdata, sock) -> None:
        self._want_write.set()

    def _on_unregister_write(self, client, userdata, sock) -> None:
        if self._want_write.is_set():
            self._want_write = trio.Event()

    # --- public API -----------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Queue one message; the writer task sends what the socket could not take now."""
        if not self.connected:
            raise trio.BrokenResourceError(f"not connected to {self.params.host}:{self.params.port}")
        self._client.publish(topic, payload, qos=qos, retain=retain)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Connect, stay connected, reconnect with backoff; never returns.

        ``task_status.started()`` fires after the first CONNACK and SUBACK-bound
        subscriptions were sent. A refused login raises BrokerError.
        """
        delay = self.params.reconnect_min_s
        started = False
        while True:
            try:
                await self._connect()
            except OSError as exc:
                log.warning("MQTT connect to %s:%d failed: %s; retry in %.1f s", self.params.host, self.params.port, exc, delay)
            else:
                delay = self.params.reconnect_min_s
                self.connected = True
                self.connects += 1
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._reader, nursery.cancel_scope)
                        nursery.start_soon(self._writer)
                        nursery.start_soon(self._housekeeping, nursery.cancel_scope)
                        if not started:
                            started = True
                            task_status.started()
                finally:
                    self.connected = self.subscribed = False
                    self._client._sock_close()
                log.warning("MQTT connection to %s:%d lost; reconnecting", self.params.host, self.params.port)
            await trio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.params.reconnect_max_s)

    # --- connection internals -------------------------------------------------------

    async def _connect(self) -> None:
        self._connack = None
        self._connack_event = trio.Event()
        client = self._client
        # connect() blocks on the TCP handshake: run it in a thread, with the write hooks
        # unset so paho writes CONNECT itself instead of signalling a trio Event from there
        client.on_socket_register_write = client.on_socket_unregister_write = None
        await trio.to_thread.run_sync(client.connect, self.params.host, self.params.port, self.params.keepalive_s)
        # paho keeps a socketpair to wake its own threaded loop and writes a byte to it on
        # every publish; with an external loop nobody reads it: drop it
        for pair in (client._sockpairR, client._sockpairW):
            if pair is not None:
                pair.close()
        client._sockpairR = client._sockpairW = None
        sock = client.socket()
        assert isinstance(sock, socket.socket)  # plain TCP: no TLS or WebSocket transport is ever set up
        client._sock = _BufferedSocket(sock)  # see module docstring
        self._want_write = trio.Event()
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        while client.want_write():
            await trio.lowlevel.wait_writable(sock)
            client.loop_write()
        with trio.move_on_after(10):
            while self._connack is None:
                await trio.lowlevel.wait_readable(sock)
                self._rx_ms = self._clock_ms()
                if client.loop_read() != paho.MQTT_ERR_SUCCESS:
                    break
        if self._connack is None:
            client._sock_close()
            raise ConnectionError("no CONNACK from the broker")
        ok, reason = self._connack
        if not ok:
            client._sock_close()
            if "not authori" in reason.lower() or "bad user" in reason.lower():
                raise BrokerError(f"broker refused {self.params.username!r}: {reason}")
            raise ConnectionError(f"broker refused the connection: {reason}")
        while client.want_write():
            await trio.lowlevel.wait_writable(sock)
            client.loop_write()

    async def _reader(self, cancel_scope: trio.CancelScope) -> None:
        client = self._client
        wrapped = client._sock
        assert isinstance(wrapped, _BufferedSocket)  # put there by _connect
        fd = wrapped.fileno()
        while True:
            if not wrapped.buffered():
                try:
                    await trio.lowlevel.wait_readable(fd)
                except trio.ClosedResourceError:
                    break
            self._rx_ms = self._clock_ms()
            wrapped.starved = False
            rc = paho.MQTT_ERR_SUCCESS
            # drain until the socket is empty, but yield after a bounded batch so a
            # broker that never pauses cannot starve the other tasks
            while len(self._inbox) < MAX_BATCH_MESSAGES:
                rc = client.loop_read()
                if rc != paho.MQTT_ERR_SUCCESS or client._sock is None:
                    break
                if wrapped.starved and not wrapped.buffered():
                    break
            if self._inbox:
                batch, self._inbox = self._inbox, []
                if self._deliver is not None:
                    await self._deliver(batch)
            if rc != paho.MQTT_ERR_SUCCESS or client._sock is None:
                break
            await trio.lowlevel.checkpoint()
        cancel_scope.cancel()

    async def _writer(self) -> None:
        client = self._client
        while True:
            await self._want_write.wait()
            sock = client._sock
            if sock is None:
                return
            await trio.lowlevel.wait_writable(sock.fileno())
            client.loop_write()
            if not client.want_write() and self._want_write.is_set():
                self._want_write = trio.Event()

    async def _housekeeping(self, cancel_scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(1)
            if self._client.loop_misc() != paho.MQTT_ERR_SUCCESS or self._client._sock is None:
                cancel_scope.cancel()
                return
