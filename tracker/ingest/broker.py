"""The MQTT connection: paho-mqtt driven from trio through its external-loop hooks.

One reader, one writer and one housekeeping task per connection, in a nursery; when the
connection drops they are cancelled and the client reconnects: at once, then with
jittered exponential backoff while it keeps failing, capped at ``reconnect_max_s``.
Incoming messages are handed over in batches (everything one socket read yielded), so
the consumer pays per read, not per message, and a full consumer pushes back: the
reader stops reading and the broker queues.

Durable delivery: the session is persistent (``clean_session`` False, a fixed client
id), so the broker keeps the subscriptions and queues QoS 1 messages while the client
is away. A QoS 1 message is not acknowledged when it is read: each batch comes with a
``Receipt`` of its packet ids, which the consumer settles once what the batch produced
is stored; the writer task then sends the PUBACKs. A message not acknowledged when the
connection drops (or the process dies) is sent again by the broker, so the consumer's
writes must absorb a second copy. A receipt of an earlier connection is void: its
packet ids mean nothing to the next one, whose broker resends those messages anyway.

A clean stop: ``pause()`` (nothing more is read; a batch being handed over still is),
let the consumer store and settle what it has, then ``close()``: the PUBACKs settled so
far go out, then a DISCONNECT, and the client stays away. The broker keeps the session
and sends the next run only what was never acknowledged.

paho's private members (the lean PUBLISH path, the buffered socket) are all in
``tracker.ingest.paho_adapter``; this module uses paho's public API and that adapter's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import paho.mqtt.client as paho
import trio

from tracker.clock import wall_clock_ms
from tracker.config import BrokerParams
from tracker.ingest.paho_adapter import BufferedSocket, Inbox, IngestClient, Message

log = logging.getLogger(__name__)

MAX_BATCH_MESSAGES = 512
# A connection that lasted this long was a good one: when it drops, reconnect at once and
# start the backoff afresh. One that drops sooner backs off (a broker refusing us in a loop).
STEADY_S = 5.0


async def _read_until_closed(sock) -> None:
    """Read and drop what the broker still sends (messages it will send again, since
    they are not acknowledged) until it closes its side, so our close is an orderly one."""
    while sock.fileno() != -1:
        try:
            await trio.lowlevel.wait_readable(sock)
            if not sock.recv(262144):
                return
        except BlockingIOError:
            continue
        except OSError:
            return  # reset or closed: nothing more to read


class BrokerError(RuntimeError):
    """The broker refused us (bad credentials, not authorised); retrying will not help."""


class Receipt:
    """The QoS 1 packet ids of one delivered batch, on the connection that read them.

    ``settle()`` once the batch's outcome is stored: the PUBACKs go out on that
    connection, or nowhere if it is gone (the broker then delivers the messages again).
    """

    __slots__ = ("_client", "_connection", "mids")

    def __init__(self, client: BrokerClient, connection: int, mids: list[int]) -> None:
        self._client = client
        self._connection = connection
        self.mids = mids

    def settle(self) -> None:
        self._client._acknowledge(self._connection, self.mids)


class BrokerClient:
    """A long-lived MQTT 3.1.1 connection for trio code.

    ``deliver`` (optional) receives each batch of incoming messages and its ``Receipt``,
    to settle once the batch is dealt with (no QoS 1 message is acknowledged before); it
    may block, which pushes back on the broker. ``publish`` queues a message and never
    blocks.
    """

    def __init__(self, params: BrokerParams, deliver: Callable[[list[Message], Receipt], Awaitable[None]] | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.params = params
        self._deliver = deliver
        # receive times come from the service's clock, so a test can run the service "on"
        # any day (a fix is judged stale or future against its receive time)
        self._clock_ms = clock_ms or wall_clock_ms
        self._inbox = Inbox(defer_acks=deliver is not None)
        self._client = IngestClient(self._inbox, client_id=params.client_id, protocol=paho.MQTTv311,
                                    clean_session=params.clean_session)
        self._acks_due: list[int] = []  # settled packet ids of this connection, for the writer
        self._conn: BufferedSocket | None = None  # the connection's socket while paho has it open
        self._client.username_pw_set(params.username, params.password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_socket_close = self._on_socket_close
        self._client.max_queued_messages_set(0)
        self._want_write = trio.Event()
        self._connack: tuple[bool, str] | None = None
        self._connack_event = trio.Event()
        self.session_present = False  # the broker kept our session (and what it queued) from before
        self.connected = False
        self.subscribed = False  # the broker acknowledged this connection's subscriptions
        self.connects = 0
        self._paused = False  # a clean stop under way: read nothing more
        self._delivering = False  # the reader is handing a batch to the consumer
        self._delivered = trio.Event()  # set when a hand-over ends (for pause)
        self._closing = False
        self._socket_closed = trio.Event()
        self._connection_scope: trio.CancelScope | None = None

    @property
    def bad_topics(self) -> int:
        """PUBLISH packets dropped because their topic was not UTF-8."""
        return self._inbox.bad_topics

    # --- paho callbacks (run synchronously inside loop_read/loop_write) -------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        ok = not reason_code.is_failure
        self._connack = (ok, str(reason_code))
        self.session_present = bool(ok and flags.session_present)
        if ok and self.params.subscriptions:
            client.subscribe([(topic, self.params.qos) for topic in self.params.subscriptions])
        self._connack_event.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.subscribed = True

    def _on_message(self, client, userdata, msg: paho.MQTTMessage) -> None:
        self._inbox.messages.append((msg.topic, bytes(msg.payload), self._inbox.rx_ms))  # no copy when it is bytes already

    def _on_socket_close(self, client, userdata, sock) -> None:
        self._conn = None
        self._socket_closed.set()
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

    def _acknowledge(self, connection: int, mids: list[int]) -> None:
        if mids and connection == self.connects and self.connected:
            self._acks_due.extend(mids)
            self._want_write.set()

    async def pause(self) -> None:
        """Stop reading from the broker; returns once no batch is being handed over, so
        everything read so far is with the consumer. For a clean stop, before ``close``."""
        self._paused = True
        while self._delivering:
            await self._delivered.wait()

    async def close(self) -> None:
        """Send the PUBACKs settled so far, then DISCONNECT, and do not reconnect.

        Call after ``pause`` and after settling what the consumer stored; returns once the
        connection is closed. Bound it with a timeout: a stalled broker may never take
        the bytes.
        """
        self._closing = True
        client, scope, conn = self._client, self._connection_scope, self._conn
        if self.connected and conn is not None:
            if self._acks_due:  # ahead of the DISCONNECT, in the order settled
                acks, self._acks_due = self._acks_due, []
                client.send_acks(acks)
            conn.half_close = True  # see BufferedSocket: no reset that would void the PUBACKs
            try:
                client.disconnect()  # queued after them; paho half-closes once it is written
                self._want_write.set()
                await self._socket_closed.wait()
                await _read_until_closed(conn.sock)  # the broker closes once it has read DISCONNECT
            finally:
                conn.sock.close()
        if scope is not None:
            scope.cancel()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Connect, stay connected, reconnect; returns only after ``close``.

        A lost connection is retried at once; attempts that keep failing wait
        ``reconnect_min_s``, doubling up to ``reconnect_max_s`` (with jitter), so the
        client is back within seconds of a broker restart.
        ``task_status.started()`` fires after the first CONNACK and SUBACK-bound
        subscriptions were sent. A refused login raises BrokerError.
        """
        delay = self.params.reconnect_min_s
        started = False
        while not self._closing:
            try:
                await self._connect()
            except OSError as exc:
                log.warning("MQTT connect to %s:%d failed: %s; retry in %.1f s", self.params.host, self.params.port, exc, delay)
            else:
                since = trio.current_time()
                self._acks_due = []
                self.connected = True
                self.connects += 1
                try:
                    async with trio.open_nursery() as nursery:
                        self._connection_scope = nursery.cancel_scope
                        nursery.start_soon(self._reader, nursery.cancel_scope)
                        nursery.start_soon(self._writer)
                        nursery.start_soon(self._housekeeping, nursery.cancel_scope)
                        if not started:
                            started = True
                            task_status.started()
                finally:
                    self.connected = self.subscribed = False
                    self._acks_due = []
                    self._connection_scope = None
                    self._client.close_socket()
                if self._closing:  # asked for: not news (a command's stderr keeps to its answer)
                    log.debug("MQTT connection to %s:%d closed", self.params.host, self.params.port)
                    return
                log.warning("MQTT connection to %s:%d lost; reconnecting", self.params.host, self.params.port)
                if trio.current_time() - since >= STEADY_S:
                    delay = self.params.reconnect_min_s
                    continue  # at once: a broker that went away for a restart is usually back
            await trio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.params.reconnect_max_s)

    # --- connection internals -------------------------------------------------------

    async def _connect(self) -> None:
        self._connack = None
        self._connack_event = trio.Event()
        self._socket_closed = trio.Event()
        client = self._client
        # connect() blocks on the TCP handshake: run it in a thread, with the write hooks
        # unset so paho writes CONNECT itself instead of signalling a trio Event from there
        client.on_socket_register_write = client.on_socket_unregister_write = None
        await trio.to_thread.run_sync(client.connect, self.params.host, self.params.port, self.params.keepalive_s)
        sock = self._conn = client.take_socket()
        self._want_write = trio.Event()
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        while client.want_write():
            await trio.lowlevel.wait_writable(sock.fileno())
            client.loop_write()
        with trio.move_on_after(10):
            while self._connack is None:
                await trio.lowlevel.wait_readable(sock.fileno())
                self._inbox.rx_ms = self._clock_ms()
                if client.loop_read() != paho.MQTT_ERR_SUCCESS:
                    break
        if self._connack is None:
            client.close_socket()
            raise ConnectionError("no CONNACK from the broker")
        ok, reason = self._connack
        if not ok:
            client.close_socket()
            if "not authori" in reason.lower() or "bad user" in reason.lower():
                raise BrokerError(f"broker refused {self.params.username!r}: {reason}")
            raise ConnectionError(f"broker refused the connection: {reason}")
        while client.want_write():
            await trio.lowlevel.wait_writable(sock.fileno())
            client.loop_write()

    async def _reader(self, cancel_scope: trio.CancelScope) -> None:
        client, inbox = self._client, self._inbox
        wrapped = self._conn
        if wrapped is None:  # closed while connecting
            cancel_scope.cancel()
            return
        fd = wrapped.fileno()
        while True:
            if self._paused:
                await trio.sleep_forever()  # until close() ends the connection
            if not wrapped.buffered():
                try:
                    await trio.lowlevel.wait_readable(fd)
                except trio.ClosedResourceError:
                    break
                if self._paused:
                    continue
            inbox.rx_ms = self._clock_ms()
            wrapped.starved = False
            rc = paho.MQTT_ERR_SUCCESS
            # drain until the socket is empty, but yield after a bounded batch so a
            # broker that never pauses cannot starve the other tasks
            while len(inbox.messages) < MAX_BATCH_MESSAGES:
                rc = client.loop_read()
                if rc != paho.MQTT_ERR_SUCCESS or self._conn is None:
                    break
                if wrapped.starved and not wrapped.buffered():
                    break
            if inbox.messages or inbox.acks:
                batch, inbox.messages = inbox.messages, []
                receipt = Receipt(self, self.connects, inbox.acks)
                inbox.acks = []
                if self._deliver is not None:
                    self._delivering = True
                    try:
                        await self._deliver(batch, receipt)
                    finally:
                        self._delivering = False
                        self._delivered.set()
                        self._delivered = trio.Event()
            if rc != paho.MQTT_ERR_SUCCESS or self._conn is None:
                break
            await trio.lowlevel.checkpoint()
        cancel_scope.cancel()

    async def _writer(self) -> None:
        client = self._client
        while True:
            await self._want_write.wait()
            sock = self._conn
            if sock is None:
                return
            if self._acks_due:
                acks, self._acks_due = self._acks_due, []
                client.send_acks(acks)
            await trio.lowlevel.wait_writable(sock.fileno())
            client.loop_write()
            if self._acks_due:  # settled meanwhile (paho may have reset the event)
                self._want_write.set()
            elif not client.want_write() and self._want_write.is_set():
                self._want_write = trio.Event()

    async def _housekeeping(self, cancel_scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(1)
            if self._client.loop_misc() != paho.MQTT_ERR_SUCCESS or self._conn is None:
                cancel_scope.cancel()
                return
