"""ASGI middleware in front of every route: who may ask (Host, and the Origin of a
WebSocket or of a request that changes something) and how much they may send.

Both act before an endpoint runs and neither buffers a body: a request whose
``Content-Length`` is over the limit is answered 413 unread, and a body of no declared
length (chunked) is counted as it streams in and cut off at the limit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.context import Counters

LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def default_allowed_hosts(bind_host: str, public_name: str = "") -> tuple[str, ...]:
    """The names a service bound to ``bind_host`` answers to when none are configured."""
    names = [bind_host]
    if bind_host in LOOPBACK_NAMES or bind_host in ("0.0.0.0", "::", ""):
        names.extend(LOOPBACK_NAMES)
    if public_name:
        names.append(public_name)
    return tuple(dict.fromkeys(n.lower() for n in names if n not in ("0.0.0.0", "::", "")))


class HostNames:
    """Exact names, ``*.domain`` (its subdomains) and ``*`` (any name)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        names = [a.lower().strip("[]") for a in allowed]
        self.any = "*" in names
        self.exact = frozenset(n for n in names if not n.startswith("*"))
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def allows(self, name: str) -> bool:
        name = name.lower()
        return self.any or name in self.exact or (bool(name) and name.endswith(self.suffixes))


def host_of(authority: str) -> str | None:
    """The name in a ``Host`` header (``name``, ``name:port``, ``[v6]:port``); None if malformed."""
    if authority.startswith("["):
        if "]" not in authority:
            return None
        name, _, rest = authority[1:].partition("]")
    else:
        name, sep, port = authority.partition(":")
        rest = sep + port
    if rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit() and len(rest) <= 6):
        return None
    return name


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class CheckHost:
    """400 for a ``Host`` not in the allowed names; 403 for a WebSocket handshake, or a
    request that is not a GET/HEAD/OPTIONS, whose ``Origin`` names another host (a page of
    another site driving the browser of someone on the map)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str], metrics: Counters) -> None:
        self.app = app
        self.names = HostNames(allowed)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.names.any:
            await self.app(scope, receive, send)
            return
        host = host_of(_header(scope, b"host") or "")
        if host is None or not self.names.allows(host):
            self.metrics.inc("gridwatch_http_refused_total", reason="bad_host")
            await _refuse(scope, send, 400, "'Host' is not a name this service answers to")
            return
        origin = _header(scope, b"origin")
        if origin is not None and (scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS):
            try:
                origin_host = urlsplit(origin).hostname
            except ValueError:
                origin_host = None
            if origin_host is None or not self.names.allows(origin_host):
                self.metrics.inc("gridwatch_http_refused_total", reason="cross_origin")
                await _refuse(scope, send, 403, "'Origin' is not a site of this service")
                return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    pass


class LimitBody:
    """413 for a request body over ``max_bytes``: refused unread when its ``Content-Length``
    says so, otherwise cut off as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, metrics: Counters) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            declared = declared.strip()
            if not (declared.isascii() and declared.isdigit()) or len(declared) > 20:
                await _refuse(scope, send, 400, "'Content-Length' must be a number of bytes")
                return
            if int(declared) > self.max_bytes:
                self._refused()
                await _refuse(scope, send, 413, f"body larger than {self.max_bytes} bytes")
                return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            self._refused()
            if not started:
                await _refuse(scope, send, 413, f"body larger than {self.max_bytes} bytes")

    def _refused(self) -> None:
        self.metrics.inc("gridwatch_http_refused_total", reason="body_too_large")


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """Answer with ``{"error": message}`` (over HTTP, or as the WebSocket handshake's
    rejection) and close the connection."""
    body = json.dumps({"error": message}).encode()
    prefix = "websocket.http" if scope["type"] == "websocket" else "http"  # the handshake's denial response
    await send({"type": f"{prefix}.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": f"{prefix}.response.body", "body": body})
