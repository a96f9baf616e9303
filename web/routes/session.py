"""Logging in and out: the login page, and ``/api/session`` (POST logs in and sets the
session cookie, GET says who is logged in and gives the anti-forgery token, DELETE logs
out), and ``/api/session/password`` (an account's own password). Every login, failed
login, logout and password change is written to the audit trail."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from web.audit import audited, client_address
from web.auth import SESSION_COOKIE, session_cookie
from web.context import LoginRefused, Verified, context
from web.params import accepts, error, json_body, page_params
from web.policy import CSRF_KEY
from web.principal import PRINCIPAL_KEY, Principal, principal
from web.routes.commandmap import STATIC

MAX_NAME_CHARS = 64
MAX_PASSWORD_CHARS = 1024  # Argon2 over a megabyte of "password" is work an attacker chooses


@page_params
async def login_page(request: Request) -> Response:
    """The login form; someone logged in already (a bookmark, the back button) goes to the map."""
    if isinstance(request.scope.get(PRINCIPAL_KEY), Principal):
        return RedirectResponse("/", status_code=303)
    return FileResponse(STATIC / "login.html")


def _described(verified: Verified) -> dict[str, object]:
    who = verified.principal
    body: dict[str, object] = {"account": who.account, "role": who.role.value, "scope": who.scope_label,
                               "district": who.district, "device": who.device, "via": who.via}
    if verified.csrf:
        body["csrf"] = verified.csrf
    if verified.expires_at_ms is not None:
        body["expires_at"] = verified.expires_at_ms
    return body


@accepts()
async def login(request: Request) -> Response:
    """``{"name": ..., "password": ...}`` → 200 and the session cookie; 401 for a wrong
    name or password (which of the two is not said); 429 with ``Retry-After`` while the
    name is slowed down or locked after failed attempts."""
    ctx = context(request)
    doc = await json_body(request)
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("password"), str):
        return error(400, "body must be {\"name\": string, \"password\": string}")
    name, password = doc["name"].strip(), doc["password"]
    if not name or len(name) > MAX_NAME_CHARS or len(password) > MAX_PASSWORD_CHARS:
        return error(400, f"'name' must be 1..{MAX_NAME_CHARS} characters and 'password' at most {MAX_PASSWORD_CHARS}")
    if ctx.accounts is None:
        return error(503, "this service keeps no accounts")
    try:
        opened = await ctx.accounts.login(name, password, client_address(request))
    except LoginRefused as refused:
        await audited(request, "login_failed", name, outcome="refused", detail=refused.reason, actor=name)
        if refused.retry_after_s > 0:
            wait = math.ceil(refused.retry_after_s)
            return JSONResponse({"error": refused.reason, "retry_after": wait}, status_code=429,
                                headers={"Retry-After": str(wait)})
        return error(401, refused.reason)
    request.scope[PRINCIPAL_KEY] = opened.verified.principal  # who the audit entry is of
    who = opened.verified.principal
    await audited(request, "login", who.account, after={"role": who.role.value, "scope": who.scope_label})
    response = JSONResponse(_described(opened.verified))
    response.set_cookie(SESSION_COOKIE, opened.secret, max_age=int(ctx.auth.session_s), path="/", httponly=True,
                        samesite="strict", secure=ctx.auth.cookie_secure)
    return response


@accepts()
async def whoami(request: Request) -> Response:
    who = principal(request)
    csrf = request.scope.get(CSRF_KEY) or ""
    return JSONResponse(_described(Verified(who, str(csrf) if who.via == "session" else "")))


@accepts()
async def logout(request: Request) -> Response:
    """End the session of this cookie (its CSRF token is asked for, as for any change)."""
    ctx = context(request)
    who = principal(request)
    secret = session_cookie(request.scope)
    if who.via != "session" or secret is None or ctx.accounts is None:
        return error(400, "'Authorization': an API token is no session to log out of (revoke it with "
                          "`tracker accounts token revoke`)")
    ended = await ctx.accounts.logout(secret)
    await audited(request, "logout", who.account, before={"session": "open"}, after={"session": "ended" if ended else "gone"})
    response = JSONResponse({"logged_out": True})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=ctx.auth.cookie_secure)
    return response


@accepts()
async def change_password(request: Request) -> Response:
    """``{"current": ..., "new": ...}``: the logged-in account's own password. Every session
    of the account ends, this one too: the browser logs in again with the new password."""
    ctx = context(request)
    who = principal(request)
    doc = await json_body(request)
    if not isinstance(doc, dict) or not isinstance(doc.get("current"), str) or not isinstance(doc.get("new"), str):
        return error(400, "body must be {\"current\": string, \"new\": string}")
    if len(doc["current"]) > MAX_PASSWORD_CHARS or len(doc["new"]) > MAX_PASSWORD_CHARS:
        return error(400, f"a password has at most {MAX_PASSWORD_CHARS} characters")
    if ctx.accounts is None:
        return error(503, "this service keeps no accounts")
    try:
        await ctx.accounts.change_password(who.account, doc["current"], doc["new"])
    except LoginRefused as refused:
        await audited(request, "account.password", who.account, outcome="refused", detail=refused.reason)
        return error(403, refused.reason)
    except ValueError as exc:
        await audited(request, "account.password", who.account, outcome="refused", detail=str(exc))
        return error(422, f"'new': {exc}")
    await audited(request, "account.password", who.account, detail="changed by its owner; its sessions ended")
    response = JSONResponse({"changed": True, "sessions_ended": True})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=ctx.auth.cookie_secure)
    return response

