"""Coverage of a time the service did not observe is unknown, not zero: a service that
started at 14:30 on a day it had run only from 01:00 to its crash at 02:30 reports the
slots between as "no_data", leaves them out of the day's rate, and the live API, the day
report and the CLI give the same figure."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import trio

from protocols.epoch import datetime_to_ms
from tests.harness import REPO, auth_headers, store_task
from tests.helpers import apublish, wait_for
from tests.web.districts import ANNING, QILIHE, city_of, moves, plan
from tracker.app.service import import_grids, run_service

NOW = datetime(2026, 12, 1, 6, 30, tzinfo=UTC)  # 14:30 in Beijing
CRASHED_RUN = (datetime(2026, 11, 30, 17, 0, tzinfo=UTC), datetime(2026, 11, 30, 18, 30, tzinfo=UTC))  # 01:00–02:30
SUMMARY_LINE = re.compile(r"(\d+)/(\d+) grids covered \((\d+%|no data)\) over (\d+) slots with data, (\d+) without")


async def cli(dsn: str, *args: str, cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    env.update(TRACKER_DATABASE__DSN=dsn, PYTHONPATH=str(REPO))
    done = await trio.run_process([sys.executable, "-m", "tracker", *args], cwd=cwd, env=env,
                                  capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_slots_the_service_did_not_observe_are_no_data_and_every_figure_agrees(settings, broker, tmp_path):
    settings = settings.replace("jt808", enabled=False)
    now_ms = datetime_to_ms(NOW)
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, settings.database.dsn)
        for district in (ANNING, QILIHE):
            path = city_of(district).write(tmp_path / f"{district}.geojson")
            assert not (await import_grids(store, str(path), settings.grid.h3_resolution)).errors
        doc = plan()
        # a grid counts as covered once visited: two fixes then cover two grids of the slot in progress
        doc["rules"] = {"areas": {code: {"min_cell_share": 0.01, "passes_required": 1} for code in doc["areas"]}}
        await store.save_plan(doc, "two districts")
        crashed = await store.run_started(CRASHED_RUN[0])
        await store.run_heartbeat(crashed, CRASHED_RUN[1])  # and then nothing: no clean stop
        running = await nursery.start(lambda task_status: run_service(settings, store, clock_ms=lambda: now_ms,
                                                                     task_status=task_status))
        await apublish(broker, moves(0, now_ms - 20 * 60_000) + moves(1, now_ms - 10 * 60_000))
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 8)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            report = (await http.get("/api/reports/coverage", params={"date": "2026-12-01"})).json()
            live = (await http.get("/api/coverage/live")).json()
        code, out, err = await cli(settings.database.dsn, "report", "coverage", "--date", "2026-12-01",
                                   "--as-of", str(now_ms), "--csv", str(tmp_path / "c.csv"), cwd=tmp_path)
        runs = await store.fetch("SELECT started_at, stopped_at FROM service_runs ORDER BY id")
        nursery.cancel_scope.cancel()

    rows = report["collectors"]
    by_local_hour: dict[int, list[str]] = {}
    for r in rows:
        hour = (datetime.fromtimestamp(r["start"] / 1000, UTC).hour + 8) % 24
        by_local_hour.setdefault(hour, []).append(r["status"])
    # both collectors: observed 01:00–02:30 and since 14:30; nothing of 04:00–14:00
    assert by_local_hour[0] == by_local_hour[2] == ["complete", "complete"]
    for hour in (4, 6, 8, 10, 12):
        assert by_local_hour[hour] == ["no_data", "no_data"], hour
    assert by_local_hour[14] == ["in_progress", "in_progress"]
    assert {s for h in (16, 18, 20, 22) for s in by_local_hour[h]} == {"scheduled"}
    for r in rows:
        if r["status"] == "no_data":
            assert (r["share"], r["grids_covered"], r["complete"]) == (None, None, False)

    summary = report["summary"]
    assert (summary["slots"], summary["slots_no_data"]) == (6, 10)
    with_data = [r for r in rows if r["status"] in ("complete", "in_progress")]
    assert summary["grids_total"] == sum(r["grids_total"] for r in with_data)
    assert summary["grids_covered"] == sum(r["grids_covered"] for r in with_data) > 0  # the fixes of 14:10 and 14:20
    assert summary["share"] == round(summary["grids_covered"] / summary["grids_total"], 3)
    assert live["today"] == summary  # the legend's figure is the chart's

    first = report["timeline"][0]
    assert (first["status"], first["share"]) == ("no_data", None)  # 00:15: the crashed run began at 01:00
    assert report["timeline"][-1]["share"] == summary["share"]  # 14:45 (as of 14:30): the figure now

    assert code == 0, err
    match = SUMMARY_LINE.search(out)
    assert match is not None, out
    covered, total, share, slots, no_data = match.groups()
    assert (int(covered), int(total), int(slots), int(no_data)) == \
        (summary["grids_covered"], summary["grids_total"], summary["slots"], summary["slots_no_data"])
    assert share == f"{summary['share']:.0%}"
    assert [r["stopped_at"] for r in runs] == [None, None]  # the crash, and this run still going
