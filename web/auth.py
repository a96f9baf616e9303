"""Authentication: who a request or WebSocket is, from its session cookie or its bearer
token, put in the ASGI scope as a ``Principal`` for the routes' policies
(``web.policy``) and the endpoints (``web.principal.principal``).

This middleware refuses nothing: a request without valid credentials goes on without a
principal and its route's policy answers 401 (or lets it through, for a public route).
The lookups are the service's (``WebContext.accounts``), cached there for a few seconds,
so a request costs a hash and a dictionary lookup, not a database round trip.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from web.context import Unavailable, Verified, WebContext
from web.policy import CSRF_KEY, METRICS_KEY, UNAVAILABLE_KEY, bearer_matches, bearer_of
from web.principal import PRINCIPAL_KEY

SESSION_COOKIE = "gw_session"
TOKEN_PREFIX = "gwt_"  # API tokens; anything else after "Bearer" is not looked up


def session_cookie(scope: Scope) -> str | None:
    """The session cookie's value. Split by hand: ``http.cookies`` parses every cookie of
    the header with regular expressions, which cost more than the rest of authentication."""
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            for pair in bytes(value).decode("latin-1").split(";"):
                name, sep, secret = pair.partition("=")
                if sep and name.strip() == SESSION_COOKIE:
                    secret = secret.strip().strip('"')
                    if secret:
                        return secret
    return None


class Authenticate:
    def __init__(self, app: ASGIApp, context: WebContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # A principal already in the scope was put there by server-side code wrapping this
        # application (tests, an embedding process): no client can write into the ASGI
        # scope, only send headers, so it is kept and no credentials are looked at.
        if scope.get(PRINCIPAL_KEY) is not None:
            await self.app(scope, receive, send)
            return
        extra: dict[str, Any] = {}
        if self.context.auth.metrics_token and bearer_matches(scope, self.context.auth.metrics_token):
            extra[METRICS_KEY] = True
        else:
            try:
                found = await self._verify(scope)
            except Unavailable as exc:
                # public routes (/healthz) still answer; the others say why they cannot
                extra[UNAVAILABLE_KEY] = str(exc)
            else:
                if found is not None:
                    extra = {PRINCIPAL_KEY: found.principal}
                    if found.csrf:  # a session cookie: what changes state must repeat its token
                        extra[CSRF_KEY] = found.csrf
        await self.app({**scope, **extra} if extra else scope, receive, send)

    async def _verify(self, scope: Scope) -> Verified | None:
        accounts = self.context.accounts
        if accounts is None:
            return None
        token = bearer_of(scope)
        if token is not None:
            # a bearer header decides alone: a bad token is not rescued by a cookie
            return await accounts.token(token) if token.startswith(TOKEN_PREFIX) else None
        cookie = session_cookie(scope)
        return await accounts.session(cookie) if cookie is not None else None
