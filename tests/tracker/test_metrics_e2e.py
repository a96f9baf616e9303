"""Pings through the real service on Mosquitto and PostgreSQL show on ``GET /metrics``: the
counters under their names, and both latency histograms counting every fix."""

from __future__ import annotations

import json
import time

import httpx
import msgpack
import trio
from prometheus_client.parser import text_string_to_metric_families
from websockets.trio.client import connect as ws_connect

from tests.harness import LAT, LON, auth_headers, start_service, ws_url
from tests.helpers import apublish, wait_for, ws_until

TOPIC = "gw/v1/620105/collector/{}/pos"


METRICS_TOKEN = "scrape-" + "x" * 24  # [auth] metrics_token, as Prometheus' bearer_token


async def scrape(url: str) -> tuple[str, dict[str, dict[tuple[tuple[str, str], ...], float]]]:
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    response = await trio.to_thread.run_sync(lambda: httpx.get(url + "/metrics", headers=headers, timeout=10))
    assert response.status_code == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return response.headers["content-type"], samples


async def test_pings_through_the_service_show_in_both_latency_histograms(settings, broker):
    settings = settings.replace("auth", metrics_token=METRICS_TOKEN)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        async with ws_connect(ws_url(running), additional_headers=await auth_headers(store)) as ws:
            await ws.recv()  # snapshot
            base = int(time.time() * 1000) - 60_000
            fixes = [{"t": base + i * 1000, "lat": LAT + i * 1e-5, "lon": LON, "acc": 5, "seq": i} for i in range(20)]
            await apublish(broker, [(TOPIC.format("c0007"), msgpack.packb(fixes))])
            await ws_until(ws, lambda f: f["type"] == "delta" and f["devices"][0]["t"] == base + 19_000)
            await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 20)
            content_type, samples = await scrape(running.url)
        nursery.cancel_scope.cancel()
    assert content_type.startswith("text/plain")
    assert samples["gridwatch_messages_total"] == {(): 1}
    assert samples["gridwatch_fixes_ingested_total"] == {(): 20}
    assert samples["gridwatch_persisted_total"] == {(): 20}
    assert samples["gridwatch_ws_clients"] == {(): 1}
    for histogram in ("gridwatch_persist_latency_seconds", "gridwatch_ws_delta_latency_seconds"):
        assert samples[histogram + "_count"] == {(): 20}, histogram
        buckets = samples[histogram + "_bucket"]
        assert buckets[(("le", "+Inf"),)] == 20
        assert buckets[(("le", "10.0"),)] == 20, json.dumps(list(buckets.items()))  # on this machine, well under 10 s
        assert 0 <= samples[histogram + "_sum"][()] < 20 * 10
    # persistence waits out the flush window ([pipeline] persist_flush_ms) from the first fix
    window_s = settings.pipeline.persist_flush_ms / 1000
    assert window_s > 0.1
    assert samples["gridwatch_persist_latency_seconds_sum"][()] >= 20 * window_s
    assert samples["gridwatch_persist_latency_seconds_bucket"][(("le", "0.1"),)] == 0
