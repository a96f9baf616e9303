"""Logging in, sessions, CSRF, API tokens and the audit trail, on the real service over
HTTP and WebSocket, with accounts in a real PostgreSQL."""

from __future__ import annotations

import json
import time

import httpx
import msgpack
import pytest
import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import connect as ws_connect

from tests.harness import LAT, LON, auth_headers, new_account, start_service, ws_url
from tests.helpers import apublish, wait_for
from tracker.app import accounts


async def log_in(http: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await http.post("/api/session", json={"name": name, "password": password})


def no_cache(settings):
    """Every request asks the database: what the CLI does in another process shows at once."""
    return settings.replace("jt808", enabled=False).replace("auth", cache_s=0.0)


async def test_a_login_sets_a_session_cookie_that_authenticates_and_says_who_is_logged_in(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="commander", district="620105")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            wrong = await log_in(http, name, password + "x")
            nobody = await log_in(http, "nobody-at-all", password)
            garbled = await log_in(http, "zhang\x00wei 张", password)
            ok = await log_in(http, name, password)
            me = (await http.get("/api/session")).json()
            login_page = await http.get("/login")
            devices = await http.get("/api/devices")
        nursery.cancel_scope.cancel()
    assert (wrong.status_code, wrong.json()) == (401, {"error": "wrong name or password"})
    assert (nobody.status_code, nobody.json()) == (401, {"error": "wrong name or password"})  # which one is not said
    assert (garbled.status_code, garbled.json()) == (401, {"error": "wrong name or password"})
    assert ok.status_code == 200
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("gw_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie and "Path=/" in cookie and "Secure" not in cookie
    assert {k: me[k] for k in ("account", "role", "scope", "district", "via")} == {
        "account": name, "role": "commander", "scope": "620105", "district": "620105", "via": "session"}
    assert len(me["csrf"]) >= 20
    assert devices.status_code == 200
    assert (login_page.status_code, login_page.headers["location"]) == (303, "/")  # logged in: to the map


async def test_a_change_with_the_cookie_needs_the_csrf_token_and_one_with_a_bearer_token_does_not(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="supervisor")
        token = await auth_headers(store, role="supervisor")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            csrf = (await log_in(http, name, password)).json()["csrf"]
            without = await http.put("/api/patrol/plan", content=b"{}")
            wrong = await http.put("/api/patrol/plan", content=b"{}", headers={"X-CSRF-Token": csrf[::-1]})
            exception_without = await http.post("/api/patrol/exceptions", content=b"{}")
            logout_without = await http.delete("/api/session")
            right = await http.put("/api/patrol/plan", content=b"{}", headers={"X-CSRF-Token": csrf})
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=token) as http:
            bearer = await http.put("/api/patrol/plan", content=b"{}")
        nursery.cancel_scope.cancel()
    assert (without.status_code, without.json()) == (403, {"error": "missing or wrong 'X-CSRF-Token' (GET /api/session gives it)"})
    assert (wrong.status_code, exception_without.status_code, logout_without.status_code) == (403, 403, 403)
    assert right.status_code == 200
    assert bearer.status_code == 200


async def test_logout_ends_the_session_and_the_old_cookie_no_longer_works(settings, broker):
    settings = settings.replace("jt808", enabled=False)  # with the lookup cache on: logout clears it
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            csrf = (await log_in(http, name, password)).json()["csrf"]
            cookie = http.cookies["gw_session"]
            assert (await http.get("/api/devices")).status_code == 200
            out = await http.delete("/api/session", headers={"X-CSRF-Token": csrf})
        async with httpx.AsyncClient(base_url=running.url, timeout=10, cookies={"gw_session": cookie}) as replay:
            after = await replay.get("/api/devices")
            page = await replay.get("/")
        nursery.cancel_scope.cancel()
    assert out.status_code == 200 and 'gw_session=""' in out.headers["set-cookie"]
    assert after.status_code == 401
    assert (page.status_code, page.headers["location"]) == (303, "/login")


async def test_api_tokens_work_until_revoked(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, no_cache(settings))
        name, _ = await new_account(store, role="viewer")
        first = await accounts.create_token(store, name, "grafana", actor="cli:ops")
        second = await accounts.create_token(store, name, "etl", actor="cli:ops")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            def bearer(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            before = (await http.get("/api/devices", headers=bearer(first.token))).status_code
            me = (await http.get("/api/session", headers=bearer(first.token))).json()
            await accounts.revoke_token(store, first.token_id, actor="cli:ops")
            revoked = await http.get("/api/devices", headers=bearer(first.token))
            other = (await http.get("/api/devices", headers=bearer(second.token))).status_code
            forged = (await http.get("/api/devices", headers=bearer(first.token[:-2] + "xx"))).status_code
        stored = await store.fetch("SELECT secret_hash FROM api_tokens")
        nursery.cancel_scope.cancel()
    assert before == 200 and me["via"] == "token" and "csrf" not in me
    assert revoked.status_code == 401 and revoked.headers["www-authenticate"].startswith("Bearer")
    assert (other, forged) == (200, 401)
    assert all(first.token.encode() not in bytes(r["secret_hash"]) and len(r["secret_hash"]) == 32 for r in stored)


async def test_a_disabled_account_loses_its_sessions_and_tokens_and_cannot_log_in(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, no_cache(settings))
        name, password = await new_account(store, role="commander")
        issued = await accounts.create_token(store, name, "", actor="cli:ops")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            assert (await log_in(http, name, password)).status_code == 200
            assert (await http.get("/api/devices")).status_code == 200
            await accounts.set_enabled(store, name, False, actor="cli:ops")
            session = (await http.get("/api/devices")).status_code
            token = (await http.get("/api/devices", headers={"Authorization": f"Bearer {issued.token}"})).status_code
            again = (await log_in(http, name, password)).status_code
            await accounts.set_enabled(store, name, True, actor="cli:ops")
            token_back = (await http.get("/api/devices", headers={"Authorization": f"Bearer {issued.token}"})).status_code
            session_back = (await http.get("/api/devices")).status_code  # disabling ended it for good
        nursery.cancel_scope.cancel()
    assert (session, token, again) == (401, 401, 401)
    assert (token_back, session_back) == (200, 401)


async def test_a_changed_password_ends_the_sessions_and_only_the_new_one_logs_in(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, no_cache(settings))
        name, password = await new_account(store, role="viewer")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            await log_in(http, name, password)
            await accounts.set_password(store, name, "a new password 密码", actor="cli:ops")
            session = (await http.get("/api/devices")).status_code
            old = (await log_in(http, name, password)).status_code
            new = (await log_in(http, name, "a new password 密码")).status_code
        nursery.cancel_scope.cancel()
    assert (session, old, new) == (401, 401, 200)


async def test_an_account_changes_its_own_password_with_the_current_one_and_logs_in_again(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            csrf = (await log_in(http, name, password)).json()["csrf"]
            cookie = http.cookies["gw_session"]
            headers = {"X-CSRF-Token": csrf}
            wrong = await http.post("/api/session/password", json={"current": "guess", "new": "a new password 12"},
                                    headers=headers)
            short = await http.post("/api/session/password", json={"current": password, "new": "short"}, headers=headers)
            ok = await http.post("/api/session/password", json={"current": password, "new": "a new password 12"},
                                 headers=headers)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, cookies={"gw_session": cookie}) as old:
            ended = (await old.get("/api/devices")).status_code
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            new = (await log_in(http, name, "a new password 12")).status_code
        trail = [(r["action"], r["outcome"]) for r in await store.audit_entries(actor=name, action="account.")]
        nursery.cancel_scope.cancel()
    assert (wrong.status_code, wrong.json()) == (403, {"error": "'current' is not the account's password"})
    assert (short.status_code, short.json()) == (422, {"error": "'new': a password needs at least 10 characters"})
    assert ok.status_code == 200 and 'gw_session=""' in ok.headers["set-cookie"]
    assert (ended, new) == (401, 200)
    assert trail == [("account.password", "ok"), ("account.password", "refused"), ("account.password", "refused")]


async def test_the_live_feed_takes_a_cookie_or_a_token_and_closes_1008_without(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            await log_in(http, name, password)
            cookie = http.cookies["gw_session"]
        frames = []
        for headers in ({"Cookie": f"gw_session={cookie}"}, await auth_headers(store, role="viewer")):
            async with ws_connect(ws_url(running), additional_headers=headers) as ws:
                frames.append(json.loads(await ws.recv())["type"])
        closes = []
        collector = await auth_headers(store, role="collector")
        for headers in ({}, {"Cookie": "gw_session=forged"}, {"Authorization": "Bearer gwt_forged"}, collector):
            async with ws_connect(ws_url(running), additional_headers=headers) as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                closes.append((closed.value.rcvd.code, closed.value.rcvd.reason.split(":")[0]))
        nursery.cancel_scope.cancel()
    assert frames == ["snapshot", "snapshot"]
    assert closes == [(1008, "authentication required")] * 3 + [(1008, "role 'collector' may not use this route")]


async def test_logins_plan_changes_and_commands_are_in_the_audit_trail_which_only_admins_read(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="commander")
        admin = await auth_headers(store, role="admin")
        viewer = await auth_headers(store, role="viewer")
        await apublish(broker, [("gw/v1/620105/collector/c0501/pos",
                                 msgpack.packb({"t": int(time.time() * 1000), "lat": LAT, "lon": LON, "acc": 5.0}))])
        await wait_for(lambda: running.pipeline.live.view("c0501") is not None)
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            assert (await log_in(http, name, "not the password")).status_code == 401
            csrf = (await log_in(http, name, password)).json()["csrf"]
            assert (await http.post("/api/devices/c0501/locate", headers={"X-CSRF-Token": csrf})).status_code == 202
            assert (await http.delete("/api/session", headers={"X-CSRF-Token": csrf})).status_code == 200
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=admin) as http:
            assert (await http.put("/api/patrol/plan", content=b"{}")).status_code == 200
            assert (await http.put("/api/patrol/plan", content=b"{}")).status_code == 200
            mine = (await http.get("/api/audit", params={"actor": name})).json()
            plans = (await http.get("/api/audit", params={"action": "plan."})).json()
            page1 = (await http.get("/api/audit", params={"limit": 2})).json()
            page2 = (await http.get("/api/audit", params={"limit": 2, "before": page1["next"]})).json()
            bad = await http.get("/api/audit", params={"before": "x"})
            nul = await http.get("/api/audit", params={"actor": "li\x00"})
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=viewer) as http:
            refused = (await http.get("/api/audit")).status_code
        nursery.cancel_scope.cancel()
    entries = mine["entries"]
    assert [e["action"] for e in entries] == ["logout", "device.locate", "login", "login_failed"]
    logout, locate, login, failed = entries
    assert failed["outcome"] == "refused" and failed["detail"] == "wrong name or password" and failed["role"] is None
    assert login["role"] == "commander" and login["scope"] == "city" and login["after"] == {"role": "commander", "scope": "city"}
    assert locate["target"] == "c0501" and locate["after"]["via"] == "mqtt" and locate["role"] == "commander"
    assert logout["before"] == {"session": "open"} and logout["after"] == {"session": "ended"}
    assert all(e["source"].startswith("127.0.0.1:") for e in entries)
    assert [(e["action"], e["before"], e["after"]) for e in plans["entries"]] == [
        ("plan.replace", {"version": 1}, {"version": 2}), ("plan.replace", {"version": None}, {"version": 1})]
    assert len(page1["entries"]) == 2 and page2["entries"][0]["id"] < page1["entries"][-1]["id"]
    assert bad.status_code == 400
    assert (nul.status_code, nul.json()) == (400, {"error": "'actor' must be 1..200 characters, none of them NUL"})
    assert refused == 403
