"""Everything this project takes from paho-mqtt's private members, in one place.

Written against paho-mqtt 2.2.0 (``PAHO_VERSION``, the pin in pyproject.toml). The MQTT
client (``tracker.ingest.broker``) touches paho only through ``IngestClient``'s public
methods, ``Inbox`` and ``BufferedSocket``; no other module reaches past paho's public API.
An upgrade of paho must come through here: importing this module fails if a private
method it overrides or calls is gone, and tests/tracker/ingest/test_paho_adapter.py checks
the version, the private attributes of a connected client and every branch below.

Why each private member, and what for:

``_handle_publish`` (overridden)
    paho's handler for an incoming PUBLISH builds an ``MQTTMessage``, formats a debug
    line, decodes the topic twice and walks its per-topic callback matcher: over half of
    a subscriber's CPU at ingest rates (py-spy under bench/ingest.py). The override does
    the same wire work for MQTT 3.1.1 QoS 0 and 1 and appends straight to an ``Inbox``;
    it is why the service keeps up with a bare paho subscriber on single pings (README,
    Performance). QoS 2, MQTT 5 and a client without an inbox take paho's own path.
``_in_packet`` (read)
    the packet being handled: its fixed-header byte (``"command"``) and its body
    (``"packet"``, a bytearray), which paho's handler receives the same way.
``_protocol`` (read)
    the protocol of the connection, read per packet: paho may change it at CONNACK.
``_send_puback`` (called)
    queues the PUBACK of a QoS 1 message, as paho's own handler does (an inbox that
    does not defer its acknowledgements).
``_packet_queue`` (called)
    queues the PUBACKs of many QoS 1 messages as one write (``send_acks``): an inbox
    that defers them has them sent once what the messages produced is stored.
``_sock`` (replaced)
    paho reads a packet with three or more ``recv`` calls (command byte, length, body);
    its socket is replaced by a ``BufferedSocket`` after connecting so one ``recv``
    syscall serves many packets: most of paho's per-message cost under load.
``_sockpairR``, ``_sockpairW`` (closed, cleared)
    paho's socketpair that wakes its own threaded loop; paho writes a byte to it on
    every publish. With an external loop nobody reads it, so it is dropped.
``_sock_close`` (called)
    closes the connection the way paho does itself (socket-close callback first), with
    no DISCONNECT packet: used when a connection is given up.
"""

from __future__ import annotations

import socket
import struct

import paho.mqtt.client as paho

PAHO_VERSION = "2.2.0"

# what this module reaches for; tests check the attributes on a connected client
PRIVATE_METHODS = ("_handle_publish", "_packet_queue", "_send_puback", "_sock_close")
PRIVATE_ATTRIBUTES = ("_in_packet", "_protocol", "_sock", "_sockpairR", "_sockpairW")

_missing = [name for name in PRIVATE_METHODS if not callable(getattr(paho.Client, name, None))]
if _missing:
    raise ImportError(f"paho-mqtt {getattr(paho, '__version__', '?')} lacks {', '.join(_missing)}; "
                      f"{__name__} is written against paho-mqtt {PAHO_VERSION}")

Message = tuple[str, bytes, int]  # topic, payload, receive time (epoch ms)

_MQTTv5 = paho.MQTTv5
_PUBACK = 0x40
_SUCCESS = paho.MQTTErrorCode.MQTT_ERR_SUCCESS
_PROTOCOL_ERROR = paho.MQTTErrorCode.MQTT_ERR_PROTOCOL


class Inbox:
    """Where incoming messages go: ``messages`` gets (topic, payload, rx_ms) tuples.

    The owner sets ``rx_ms`` before each read and takes ``messages`` away (replacing the
    list) when it hands a batch on. ``bad_topics`` counts PUBLISH packets dropped for a
    topic that is not UTF-8.

    ``defer_acks``: a QoS 1 message is not acknowledged when it is read; its packet id
    goes to ``acks`` instead (a message dropped for its topic too, in arrival order), for
    the owner to take away with ``messages`` and acknowledge with
    ``IngestClient.send_acks`` once what they produced is stored.
    """

    __slots__ = ("messages", "rx_ms", "bad_topics", "defer_acks", "acks")

    def __init__(self, defer_acks: bool = False) -> None:
        self.messages: list[Message] = []
        self.rx_ms = 0
        self.bad_topics = 0
        self.defer_acks = defer_acks
        self.acks: list[int] = []


class BufferedSocket:
    """Serves paho's small reads from one large ``recv``; everything else passes through."""

    __slots__ = ("buf", "half_close", "pos", "sock", "starved")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.pos = 0
        self.starved = False  # the last real recv found nothing: the drain is complete
        # paho closes the socket as soon as DISCONNECT is written. Closing a TCP socket
        # with unread bytes in it (the broker keeps sending while a clean stop reads
        # nothing) makes the kernel answer with a reset, and a broker that sees the reset
        # first drops the PUBACKs still unread on its side. With ``half_close`` set, close
        # only shuts the sending side (a FIN after everything written); the owner reads
        # until the broker closes, then closes the socket itself.
        self.half_close = False

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

    def send(self, data: bytes) -> int:
        return self.sock.send(data)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        if not self.half_close:
            self.sock.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.sock.close()  # already reset by the peer: nothing left to deliver

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)


class IngestClient(paho.Client):
    """paho's client with a lean path for incoming PUBLISH packets into ``inbox``.

    ``inbox`` None leaves every PUBLISH to paho's own path (``on_message``). Other
    arguments are paho's; the callback API is version 2.
    """

    def __init__(self, inbox: Inbox | None, *, client_id: str = "", protocol: paho.MQTTProtocolVersion = paho.MQTTv311,
                 clean_session: bool | None = None) -> None:
        super().__init__(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                         clean_session=clean_session)
        self.inbox = inbox

    def take_socket(self) -> BufferedSocket:
        """After ``connect``: drop paho's wake-up socketpair and buffer the connection's
        reads. Returns the buffered socket; wait on its ``fileno()``."""
        for pair in (self._sockpairR, self._sockpairW):
            if pair is not None:
                pair.close()
        self._sockpairR = self._sockpairW = None
        sock = self.socket()
        if not isinstance(sock, socket.socket):
            raise ConnectionError("not connected over TCP")
        wrapped = BufferedSocket(sock)
        self._sock = wrapped  # type: ignore[assignment]  # paho calls its recv, send, fileno, close, setblocking
        return wrapped

    def send_acks(self, mids: list[int]) -> None:
        """Queue the PUBACKs of these QoS 1 packet ids, in this order, as one write."""
        if mids:
            packet = struct.pack(f"!{len(mids)}I", *[0x40020000 | mid for mid in mids])  # 0x40 0x02 mid: a PUBACK each
            self._packet_queue(_PUBACK, packet, 0, 0)

    def close_socket(self) -> None:
        """Drop the connection without a DISCONNECT (``on_socket_close`` runs first)."""
        self._sock_close()

    def _handle_publish(self) -> paho.MQTTErrorCode:
        inbox = self.inbox
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if qos > 1 or self._protocol == _MQTTv5 or inbox is None:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        if len(packet) < 2 + 2 * qos:
            return _PROTOCOL_ERROR
        slen = (packet[0] << 8) | packet[1]
        start = 2 + slen
        if slen == 0 or len(packet) < start + 2 * qos:
            return _PROTOCOL_ERROR
        try:
            topic = packet[2:start].decode("utf-8")
        except UnicodeDecodeError:
            topic = None
        if qos:
            mid = (packet[start] << 8) | packet[start + 1]
            start += 2
        if topic is not None:
            inbox.messages.append((topic, bytes(packet[start:]), inbox.rx_ms))
        else:
            inbox.bad_topics += 1  # MQTT requires UTF-8 topics; the broker should have refused it
        if not qos:
            return _SUCCESS
        if inbox.defer_acks:
            inbox.acks.append(mid)
            return _SUCCESS
        return self._send_puback(mid)
