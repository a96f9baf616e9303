"""/metrics answers the configured metrics token and city admins, from the service's first
moment (while it still waits for its database) and once it runs."""

from __future__ import annotations

import httpx
import trio

from tests.harness import auth_headers, start_service
from tracker.app.service import Front
from tracker.metrics import Metrics

TOKEN = "prometheus-" + "t" * 20


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_while_starting_only_the_metrics_token_reads_metrics():
    front = Front(lambda: (False, "database unavailable since 10:00"), Metrics(), TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=front), base_url="http://127.0.0.1") as http:
        answers = [(await http.get("/metrics", headers=h)).status_code for h in (bearer(TOKEN), bearer(TOKEN + "x"), {})]
        health = (await http.get("/healthz")).status_code
    assert answers == [200, 401, 401]
    assert health == 503
    unset = Front(lambda: (False, "starting"), Metrics())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=unset), base_url="http://127.0.0.1") as http:
        assert (await http.get("/metrics", headers=bearer(TOKEN))).status_code == 401


async def test_once_running_the_metrics_token_and_city_admins_read_metrics(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("auth", metrics_token=TOKEN)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        callers = {"token": bearer(TOKEN), "wrong token": bearer("gwt_" + TOKEN), "nobody": {},
                   "city admin": await auth_headers(store, role="admin"),
                   "district admin": await auth_headers(store, role="admin", district="620105"),
                   "city viewer": await auth_headers(store, role="viewer")}
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            answers = {who: (await http.get("/metrics", headers=h)).status_code for who, h in callers.items()}
            elsewhere = (await http.get("/api/devices", headers=bearer(TOKEN))).status_code
        nursery.cancel_scope.cancel()
    assert answers == {"token": 200, "wrong token": 401, "nobody": 401, "city admin": 200, "district admin": 403,
                       "city viewer": 403}
    assert elsewhere == 401  # the metrics token opens /metrics and nothing else
