"""Access benchmark: what authentication adds to a request.

The web application is called in process (ASGI, no sockets: what is measured is the
application's own work) on a cheap authenticated route, ``GET /api/config``, over a real
PostgreSQL holding the accounts:
1. the same endpoint declared public and called without credentials (the floor: the
   edge's middleware and the endpoint);
2. with a session cookie, and with a bearer API token, the verified lookup cached
   (``[auth] cache_s``, the default): a SHA-256 and a dictionary lookup per request;
3. the same two with the cache off (``cache_s = 0``): one PostgreSQL round trip per request;
4. one login (Argon2 verification of the password, the session stored), for scale.
Prints a table and writes bench/results/access.json.

    python -m bench.access [--requests 20000] [--uncached-requests 2000] [--logins 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from starlette.routing import Route

from bench.machine import describe
from geofence.index import GridIndex
from tracker.app import accounts
from tracker.app.web_edge import HubFeed, StoreAccounts, StoreRecords, auth_settings, map_settings
from tracker.config import Settings
from tracker.devcity.credentials import kept_passwords
from tracker.devcity.starters import start_postgres
from tracker.live.fanout import Hub
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from tracker.storage.store import Store, open_store
from web.app import ROUTES, create_app
from web.context import WebContext
from web.policy import PUBLIC, guard
from web.principal import Role
from web.routes import commandmap

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PATH = "/api/config"
PASSES = 5


async def call(app: Any, headers: list[tuple[bytes, bytes]]) -> int:
    """One GET of PATH through the ASGI application; its status."""
    status = 0
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": PATH, "raw_path": PATH.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def per_request_us(variants: dict[str, tuple[Any, list[tuple[bytes, bytes]], int]]) -> dict[str, dict]:
    """For each variant (app, headers, requests a pass): best and median over PASSES of the
    mean µs per request. The passes of the variants take turns, so that what else the
    machine does falls on all of them alike."""
    for name, (app, headers, _) in variants.items():
        assert await call(app, headers) == 200, f"{name}: the request is refused, nothing to measure"
    passes: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(PASSES):
        for name, (app, headers, requests) in variants.items():
            t0 = time.perf_counter()
            for _ in range(requests):
                await call(app, headers)
            passes[name].append((time.perf_counter() - t0) / requests * 1e6)
    return {name: {"best_us": min(p), "median_us": statistics.median(p), "requests": variants[name][2]}
            for name, p in passes.items()}


def context(settings: Settings, store: Store, cache_s: float) -> WebContext:
    live, metrics = LiveState(), Metrics()
    hub = Hub(live, metrics, settings.pipeline.broadcast_tick_ms, settings.pipeline.client_queue_devices)
    return WebContext(map_settings(settings), lambda: int(time.time() * 1000), StoreRecords(store), GridIndex(12), live,
                      HubFeed(hub, live), metrics, {"type": "FeatureCollection", "features": []},
                      accounts=StoreAccounts(store, dataclasses.replace(settings.auth, cache_s=cache_s),
                                             lambda: int(time.time() * 1000)),
                      auth=auth_settings(settings))


async def measure(dsn: str, args: argparse.Namespace) -> dict:
    settings = Settings()
    async with open_store(dsn) as store:
        await store.migrate()
        await accounts.add_account(store, "bench", Role.VIEWER, None, "bench password 1234", actor="bench", source="bench")
        issued = await accounts.create_token(store, "bench", "bench", actor="bench", source="bench")
        cached = context(settings, store, settings.auth.cache_s)
        uncached = context(settings, store, 0.0)
        assert cached.accounts is not None
        logins = []
        for _ in range(args.logins):
            t0 = time.perf_counter()
            opened = await cached.accounts.login("bench", "bench password 1234", "bench")
            logins.append((time.perf_counter() - t0) * 1e3)
        cookie = [(b"cookie", f"gw_session={opened.secret}".encode())]
        bearer = [(b"authorization", f"Bearer {issued.token}".encode())]
        public = create_app(cached, [guard(Route(PATH, commandmap.config), PUBLIC)])
        results: dict[str, Any] = await per_request_us({
            "public_no_credentials": (public, [], args.requests),
            "session_cookie_cached": (create_app(cached, ROUTES), cookie, args.requests),
            "bearer_token_cached": (create_app(cached, ROUTES), bearer, args.requests),
            "session_cookie_uncached": (create_app(uncached, ROUTES), cookie, args.uncached_requests),
            "bearer_token_uncached": (create_app(uncached, ROUTES), bearer, args.uncached_requests),
        })
        results["login_ms"] = {"best": min(logins), "median": statistics.median(logins), "logins": len(logins)}
        results["cache_s"] = settings.auth.cache_s
    floor = results["public_no_credentials"]["best_us"]
    for key in ("session_cookie_cached", "bearer_token_cached", "session_cookie_uncached", "bearer_token_uncached"):
        results[key]["added_us"] = results[key]["best_us"] - floor
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per pass, cached and public")
    parser.add_argument("--uncached-requests", type=int, default=2_000, help="requests per pass with the cache off")
    parser.add_argument("--logins", type=int, default=20)
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="gridwatch-bench-access-"))
    passwords = kept_passwords(state / "secrets", ("postgres", "gridwatch"))
    print("starting PostgreSQL …", file=sys.stderr)
    pg = start_postgres(state, durable=False, superuser_password=passwords["postgres"], role_password=passwords["gridwatch"])
    try:
        results: dict = {**describe(), **trio.run(measure, pg.dsn, args)}
    finally:
        pg.discard()
    _print(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "access.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def _print(r: dict) -> None:
    m = r["machine"]
    print(f"\nAccess benchmark — {m['cpus']} cores, {m['cpu']}, Python {m['python']}; GET {PATH} in process, "
          f"best of {PASSES} passes (median in brackets)")
    rows = [("public route, no credentials (the floor)", r["public_no_credentials"], False)]
    rows += [(f"session cookie, lookup cached ({r['cache_s']:g} s)", r["session_cookie_cached"], True),
             (f"bearer API token, lookup cached ({r['cache_s']:g} s)", r["bearer_token_cached"], True),
             ("session cookie, cache off (PostgreSQL each time)", r["session_cookie_uncached"], True),
             ("bearer API token, cache off (PostgreSQL each time)", r["bearer_token_uncached"], True)]
    for label, figures, added in rows:
        extra = f"  +{figures['added_us']:.1f} µs for authentication" if added else ""
        print(f"  {label:<52} {figures['best_us']:8.1f} µs  ({figures['median_us']:.1f}){extra}")
    login = r["login_ms"]
    print(f"  {'one login (Argon2 verify + session stored)':<52} {login['best'] * 1000:8.0f} µs  ({login['median'] * 1000:.0f})")


if __name__ == "__main__":
    main()
