"""A minimal MQTT 3.1.1 QoS 0 publisher for load generation.

paho spends tens of microseconds per publish; a load generator must outrun the system
under test on the same two cores, so this one pre-encodes PUBLISH packets and writes them
in large chunks straight to the socket. CONNECT/CONNACK is all the protocol it needs.
"""

from __future__ import annotations

import socket
import struct
import time


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def publish_packet(topic: str, payload: bytes) -> bytes:
    body = _string(topic) + payload
    return b"\x30" + _varint(len(body)) + body


class RawPublisher:
    def __init__(self, host: str, port: int, username: str, password: str, client_id: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        variable = _string("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
        payload = _string(client_id) + _string(username) + _string(password)
        body = variable + payload
        self.sock.sendall(b"\x10" + _varint(len(body)) + body)
        connack = self.sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")

    def send(self, packets: bytes) -> None:
        self.sock.sendall(packets)

    def close(self, timeout: float = 30.0) -> None:
        """DISCONNECT, then wait for the broker to close its side: by then it has read
        every packet sent before (closing at once could reset the connection first)."""
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(timeout)
            while self.sock.recv(4096):
                pass
        finally:
            self.sock.close()


def blast(host: str, port: int, username: str, password: str, packets: list[bytes], chunk: int = 200) -> float:
    """Send every packet as fast as the socket takes them; return seconds spent."""
    pub = RawPublisher(host, port, username, password, f"bench-blast-{time.time_ns()}")
    start = time.perf_counter()
    for i in range(0, len(packets), chunk):
        pub.send(b"".join(packets[i:i + chunk]))
    elapsed = time.perf_counter() - start
    pub.close()
    return elapsed
