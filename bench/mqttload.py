"""A minimal MQTT 3.1.1 QoS 0 and QoS 1 publisher for load generation.

paho spends tens of microseconds per publish; a load generator must outrun the system
under test on the same two cores, so this one pre-encodes PUBLISH packets and writes them
in large chunks straight to the socket. CONNECT/CONNACK is all the protocol it needs.
"""

from __future__ import annotations

import socket
import struct
import threading
import time


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def publish_packet(topic: str, payload: bytes, qos: int = 0, mid: int = 0, dup: bool = False) -> bytes:
    """A PUBLISH; with QoS 1, ``mid`` is its packet id (1..65535); ``dup`` marks a resend."""
    body = mqtt_string(topic) + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | qos << 1 | (0x08 if dup else 0)]) + varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, keepalive_s: int = 60) -> bytes:
    """A CONNECT with a clean session, user name and password (MQTT 3.1.1)."""
    body = mqtt_string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", keepalive_s)
    body += mqtt_string(client_id) + mqtt_string(username) + mqtt_string(password)
    return b"\x10" + varint(len(body)) + body


class RawPublisher:
    def __init__(self, host: str, port: int, username: str, password: str, client_id: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id, username, password))
        connack = self.sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")
        self.received = 0  # bytes the broker sent back (PUBACKs of QoS 1 publishes)
        self._drain: threading.Thread | None = None

    def drain_acks(self) -> None:
        """Read what the broker sends back (QoS 1: a PUBACK per publish) in a thread, so
        it never waits on a full socket buffer."""

        def run() -> None:
            try:
                while chunk := self.sock.recv(262144):
                    self.received += len(chunk)
            except OSError:
                pass

        self._drain = threading.Thread(target=run, daemon=True)
        self._drain.start()

    def send(self, packets: bytes) -> None:
        self.sock.sendall(packets)

    def close(self, timeout: float = 30.0) -> None:
        """DISCONNECT, then wait for the broker to close its side: by then it has read
        every packet sent before (closing at once could reset the connection first)."""
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
            self.sock.shutdown(socket.SHUT_WR)
            if self._drain is not None:
                self._drain.join(timeout)
            else:
                self.sock.settimeout(timeout)
                while self.sock.recv(4096):
                    pass
        finally:
            self.sock.close()


def blast(host: str, port: int, username: str, password: str, packets: list[bytes], chunk: int = 200) -> float:
    """Send every packet as fast as the socket takes them; return seconds spent."""
    pub = RawPublisher(host, port, username, password, f"bench-blast-{time.time_ns()}")
    pub.drain_acks()
    start = time.perf_counter()
    for i in range(0, len(packets), chunk):
        pub.send(b"".join(packets[i:i + chunk]))
    elapsed = time.perf_counter() - start
    pub.close()
    return elapsed
