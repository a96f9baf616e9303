"""A raw TCP client of the web edge, for tests of clients that break the rules: requests
written byte by byte, WebSocket frames built by hand, and the process's resident memory."""

from __future__ import annotations

import base64
import os
import struct
from urllib.parse import urlsplit

import trio


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def connect(url: str) -> trio.SocketStream:
    host, port = address(url)
    return await trio.open_tcp_stream(host, port)


async def read_head(stream: trio.SocketStream, limit: int = 65536) -> bytes:
    """Read until the end of a response head (the bytes after it are left unread or dropped)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
        assert len(data) < limit
    return data


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def header_lines(headers: dict[str, str] | None) -> str:
    """``headers`` as request head lines, each ending in CRLF."""
    return "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())


def upgrade_request(host: str, origin: str | None = None, path: str = "/ws", headers: dict[str, str] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def open_websocket(url: str, headers: dict[str, str] | None = None) -> trio.SocketStream:
    """A WebSocket handshake done by hand; the stream is left right after the 101 head."""
    stream = await connect(url)
    host, port = address(url)
    await stream.send_all(upgrade_request(f"{host}:{port}", headers=headers))
    head = await read_head(stream)
    assert status_of(head) == 101, head
    return stream


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame."""
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, 0x80 | n])
    elif n < 65536:
        head = bytes([first, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack(">Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def rss_bytes() -> int:
    """This process's resident memory."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")
