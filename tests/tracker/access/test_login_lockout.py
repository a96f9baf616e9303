"""The lockout through the login endpoint, on the real store, with the lockout's and the
lookup cache's clock injected: 401s, then 429 with Retry-After, then locked, then a login
once the lock has run out. And the cache: a verified token is trusted for cache_s, a
logout in this process is not."""

from __future__ import annotations

import dataclasses

import httpx
import trio

from tests.harness import new_account, start_service
from tracker.app import accounts
from tracker.app.web_edge import StoreAccounts
from web.app import create_app


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def test_failed_logins_are_slowed_then_locked_and_the_lock_runs_out(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("auth", slow_after=2, slow_s=5.0, lock_after=4, lock_s=600.0)
    clock = Clock()
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        web = dataclasses.replace(running.web, accounts=StoreAccounts(store, settings.auth, running.web.clock_ms, now=clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(web)), base_url="http://127.0.0.1") as http:
            async def attempt(secret: str) -> tuple[int, str | None]:
                response = await http.post("/api/session", json={"name": name, "password": secret})
                return response.status_code, response.headers.get("retry-after")

            first = [await attempt("wrong"), await attempt("wrong")]
            slowed = await attempt(password)  # even the right password waits its turn
            clock.now += 5
            third = await attempt("wrong")
            clock.now += 10
            fourth = await attempt("wrong")  # the fourth failure: locked
            clock.now += 599
            locked = await attempt(password)
            clock.now += 1
            after_lock = await attempt(password)
            reset = [await attempt("wrong"), await attempt("wrong")]
        audit = await store.audit_entries(actor=name, limit=20)
        nursery.cancel_scope.cancel()
    assert first == [(401, None), (401, None)]
    assert slowed == (429, "5")
    assert third == (401, None)
    assert fourth == (401, None)
    assert locked == (429, "1")
    assert after_lock == (200, None)
    assert reset == [(401, None), (401, None)]  # the success started the count again
    details = [r["detail"] for r in reversed(audit) if r["action"] == "login_failed"]
    assert details[2] == "too many failed logins: slowed down, try again in 5 s"
    assert details[5] == "too many failed logins: locked, try again in 1 s"


async def test_verified_tokens_are_trusted_for_cache_s_and_a_logout_at_once(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("auth", cache_s=5.0)
    clock = Clock()
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        issued = await accounts.create_token(store, name, "", actor="test")
        cached = StoreAccounts(store, settings.auth, running.web.clock_ms, now=clock)
        assert await cached.token(issued.token) is not None
        await accounts.revoke_token(store, issued.token_id, actor="test")  # as the CLI does, from elsewhere
        clock.now += 4.9
        still = await cached.token(issued.token)
        clock.now += 0.2
        gone = await cached.token(issued.token)
        opened = await cached.login(name, password, "test")
        assert await cached.session(opened.secret) is not None
        await cached.logout(opened.secret)
        after_logout = await cached.session(opened.secret)
        nursery.cancel_scope.cancel()
    assert still is not None and still.principal.account == name
    assert gone is None
    assert after_logout is None
