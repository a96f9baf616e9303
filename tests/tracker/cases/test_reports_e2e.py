"""Handset reports on the test broker (dynamic security plugin) and a real database: a
provisioned collector publishes reports on its own report topic as itself; a retried
report is one case, one with a category the taxonomy lacks is refused and counted; a
vehicle's account may not publish reports at all (the broker drops them)."""

from __future__ import annotations

import json
import time

import trio

from tests.harness import LAT, LON, start_service
from tests.helpers import wait_for
from tests.tracker.registry.devices import Connected
from tracker import config
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY
from tracker.registry.model import RegisteredDevice
from tracker.registry.provisioning import Provisioning, control_account


async def test_a_collector_reports_as_itself_once_per_report_id_and_unknown_categories_are_counted(settings, broker,
                                                                                                    nursery):
    settings = (settings.replace("registry", unregistered=config.Unregistered.REFUSE)
                .replace("cases", taxonomy=str(DEMO_TAXONOMY)).replace("jt808", enabled=False))
    store, running = await start_service(nursery, settings)
    collector, vehicle = await Provisioning(store, control_account(settings), running.registry).add_all([
        RegisteredDevice.new("c9201", "collector", "620105"), RegisteredDevice.new("v9201", "vehicle", "620105")])
    handset = await trio.to_thread.run_sync(Connected, broker, "c9201", collector)
    truck = await trio.to_thread.run_sync(Connected, broker, "v9201", vehicle)
    assert handset.refused is None and truck.refused is None
    t = int(time.time() * 1000)
    problem = {"id": "r-1", "t": t, "cat": "E0102", "desc": "垃圾堆在路边", "lat": LAT, "lon": LON, "acc": 6}
    topic = "gw/v1/620105/collector/c9201/report"
    for doc in (problem, problem, {**problem, "id": "r-2", "cat": "E9999"}):
        await trio.to_thread.run_sync(handset.publish, topic, json.dumps(doc).encode())
    # a vehicle has no report kind: neither on its own topic nor as a collector
    for wrong in ("gw/v1/620105/vehicle/v9201/report", "gw/v1/620105/collector/v9201/report"):
        await trio.to_thread.run_sync(truck.publish, wrong, json.dumps({**problem, "id": "r-3"}).encode())
    metrics = running.pipeline.metrics
    await wait_for(lambda: metrics.get("gridwatch_reports_total", kind="problem", outcome="unknown_category") == 1)
    await trio.sleep(0.3)  # time for anything the broker let through after it
    handset.close()
    truck.close()
    rows = await store.fetch("SELECT external_id, category, reporter, grid, state FROM cases")
    assert [tuple(r) for r in rows] == [("c9201:r-1", "E0102", "c9201", "620105003003010", "reported")]
    assert metrics.get("gridwatch_reports_total", kind="problem", outcome="created") == 1
    assert metrics.get("gridwatch_reports_total", kind="problem", outcome="repeated") == 1
    assert metrics.get("gridwatch_messages_total") == 3  # the vehicle's never reached the service
