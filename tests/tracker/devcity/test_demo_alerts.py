"""The demo's first alerts come within five minutes of its start: the simulated collectors
walk their communities (the simulator's own walkers, on an injected clock), the patrol
rules judge them on the plan the demo lays out at that start, and a coverage warning is
raised because grids really are not covered yet, not because anything was faked."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

from alerts.patrol import AlertKind, Change, PatrolState, evaluate
from geofence.importer import cover, read_geojson
from geofence.plan import PatrolPlan
from protocols.epoch import datetime_to_ms
from protocols.model import DeviceClass, Fix
from tests.harness import DEMO_CITY
from tracker.app.demo import is_demo_plan
from tracker.config import PatrolSettings
from tracker.devcity.city import demo_plan
from tracker.devcity.simulator import build_fleet
from tracker.live.patrol import default_rule

COLLECTORS = 8
MINUTE = 60_000


def run_demo(plan_doc: dict, start_ms: int, minutes: int) -> list[tuple[int, Change, AlertKind, str, dict]]:
    """The collectors walk from ``start_ms``, a fix every 10 s; the rules are evaluated
    every 30 s as the service's watchdog does. Returns (time, change, kind, collector, detail)."""
    plan = PatrolPlan.from_dict(plan_doc)
    owner, problems = cover(read_geojson(DEMO_CITY).grids, 12)
    assert problems == []
    state = PatrolState(plan.schedule(), plan.territory(owner))
    rules = plan.rules(default_rule(PatrolSettings()))
    fleet = build_fleet(DEMO_CITY, collectors=COLLECTORS, vehicles=0, sensors=0)
    rng = random.Random(3)
    log = []
    for step in range(minutes * 6 + 1):
        now_ms = start_ms + step * 10_000
        for walker in fleet.collectors:
            if walker.behaviour == "silent":
                continue  # its handset holds fixes back: the feed of the others decides
            walker.step(10.0, now_ms / 1000, rng)
            doc = walker.fix(now_ms, rng)
            state.coverage.observe(Fix(walker.device, DeviceClass.COLLECTOR, walker.district, now_ms, doc["lat"], doc["lon"],
                                       now_ms, doc["acc"], None, None, None, doc["bat"]))
        if step % 3 == 0:
            log += [(now_ms, c.change, c.alert.kind, c.alert.collector, c.alert.detail)
                    for c in evaluate(state, now_ms, rules)]
    return log


def test_the_demo_plan_laid_out_at_the_start_raises_a_real_coverage_warning_within_five_minutes():
    started = datetime(2025, 9, 29, 1, 1, 17, tzinfo=UTC)  # 09:01:17 in Lanzhou
    start_ms = datetime_to_ms(started)
    doc = json.loads(DEMO_CITY.read_text(encoding="utf-8"))
    log = run_demo(demo_plan(doc, COLLECTORS, started), start_ms, minutes=12)

    raised = [(t, kind, who, detail) for t, change, kind, who, detail in log if change is Change.RAISED]
    assert raised, "no alert in the demo's first twelve minutes"
    first_t, kind, who, detail = raised[0]
    assert first_t - start_ms <= 5 * MINUTE
    assert (kind, who) == (AlertKind.COVERAGE_WARNING, "c0001")
    # real: the grids it names belong to the collector's community and were not yet covered
    area = next(s["area"] for s in doc_shifts(doc) if s["collector"] == who)
    assert detail["grids"] and all(g.startswith(area) for g in detail["grids"])
    assert detail["minutes_left"] == 30
    # collectors' warnings are staggered, not all in one minute
    firsts = {w: t for t, k, w, _ in reversed(raised) if k is AlertKind.COVERAGE_WARNING}
    assert sorted(firsts) == ["c0001", "c0002", "c0003"]  # three minutes apart
    assert firsts["c0002"] - firsts["c0001"] == firsts["c0003"] - firsts["c0002"] == 3 * MINUTE


def test_the_plan_without_a_start_ends_slots_on_even_hours_and_warns_half_an_hour_in():
    started = datetime(2025, 9, 29, 1, 1, 17, tzinfo=UTC)
    doc = json.loads(DEMO_CITY.read_text(encoding="utf-8"))
    log = run_demo(demo_plan(doc, COLLECTORS), datetime_to_ms(started), minutes=6)
    assert [entry for entry in log if entry[1] is Change.RAISED] == []  # the 10:00 slot end is 59 min away


def test_the_demo_lays_its_plan_out_afresh_only_while_nobody_has_changed_it():
    doc = json.loads(DEMO_CITY.read_text(encoding="utf-8"))
    laid = PatrolPlan.from_dict(demo_plan(doc, COLLECTORS, datetime(2025, 9, 29, 1, 1, tzinfo=UTC))).to_dict()
    assert is_demo_plan(laid, doc, COLLECTORS)
    changed = PatrolPlan.from_dict(laid).with_exception({"type": "holiday", "day": "2025-10-02", "name": "国庆节"}).to_dict()
    assert not is_demo_plan(changed, doc, COLLECTORS)
    assert not is_demo_plan(laid, doc, COLLECTORS + 1)


def doc_shifts(doc: dict) -> list[dict]:
    return demo_plan(doc, COLLECTORS)["shifts"]
