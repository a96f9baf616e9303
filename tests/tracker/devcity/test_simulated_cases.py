"""The demo's collectors take part in the case loop: they report problems they find, and a
collector sent a verification task on its cmd topic walks to the case, answers with a
verification report and goes back to its round. The walking and the reports on a hand-run
clock with a seeded generator; the loop end to end on the test broker (each handset on its
own registered account) and a real database."""

from __future__ import annotations

import functools
import itertools
import random
from pathlib import Path

import msgpack
import trio

from alerts.cases.taxonomy import load_taxonomy
from protocols.coords import distance_m
from protocols.handset.report import ProblemReport, Verdict, VerificationReport, decode_report
from protocols.model import DeviceClass, DeviceRef
from tests.harness import DEMO_CITY, new_account, start_service
from tests.helpers import wait_for
from tracker.cases.engine import Actor, NewCase
from tracker.devcity.devices import Walker
from tracker.devcity.simulator import build_fleet, fleet_registrations, run_fleet
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY
from tracker.ingest.broker import BrokerParams
from tracker.registry.provisioning import Provisioning, control_account

START = 1_790_000_000.0  # epoch s: the hand-run clock's start
HOME = (36.1050, 103.7200)
CASE = (36.1059, 103.7200)  # 100 m north of HOME


def _walker(**kw) -> Walker:
    return Walker("c0042", "collector", "620105", [HOME, (36.1050, 103.7230)], 1.25, 0.0, **kw)


def _decode(doc: dict, now: float) -> ProblemReport | VerificationReport:
    return decode_report(msgpack.packb(doc), DeviceRef("c0042", DeviceClass.COLLECTOR, "620105"), int(now * 1000))


def test_a_collector_given_a_task_walks_to_the_case_answers_and_goes_back_to_its_round():
    rng = random.Random(3)
    w = _walker(on_site_s=(30.0, 30.0), not_done_p=0.0)
    now = START
    w.step(10, now, rng)
    assert w.pos != HOME  # on its round, eastwards
    w.send_to(77, *CASE)
    distances, parked, answers = [], [], []
    while not answers:
        now += 1
        w.step(1, now, rng)
        distances.append(distance_m(*w.pos, *CASE))
        parked.append(w.parked(now))
        answers = w.due_reports(now, rng, every_s=0, dt=1)
    # at walking pace all the way there, then 30 s on site before the answer
    assert all(b < a for a, b in itertools.pairwise(distances) if a > 0)
    arrived = distances.index(0.0)
    assert all(abs((a - b) - 1.25) < 1e-6 for a, b in itertools.pairwise(distances[:arrived]))
    assert len(distances) - 1 - arrived == 30
    assert parked == [False] * arrived + [True] * (len(distances) - arrived)
    [answer] = answers
    report = _decode(answer, now)
    assert isinstance(report, VerificationReport)
    assert (report.case, report.verdict, report.note) == (77, Verdict.DONE, answer["note"])
    assert distance_m(report.place.lat, report.place.lon, *CASE) < 1 if report.place else False
    # back to its round: away from the case, towards its next waypoint
    w.step(10, now + 10, rng)
    assert w.errand is None and abs(distance_m(*w.pos, *CASE) - 12.5) < 2


def test_a_verification_finds_the_problem_still_there_as_often_as_the_walker_is_told():
    rng = random.Random(5)
    w = _walker(on_site_s=(1.0, 1.0), not_done_p=1.0)
    w.send_to(8, *HOME)
    w.step(1, START, rng)
    [answer] = w.due_reports(START + 2, rng, every_s=0, dt=1)
    assert answer["verify"] == {"case": 8, "result": "not_done"} and answer["note"]


def test_collectors_report_problems_of_the_demo_taxonomy_about_as_often_as_asked():
    taxonomy = load_taxonomy(Path(DEMO_TAXONOMY).read_text(encoding="utf-8"))
    rng = random.Random(11)
    fleet = build_fleet(DEMO_CITY, collectors=48, vehicles=0, sensors=0)
    now, reports = START, []
    for _ in range(600):  # ten minutes, a step a second
        now += 1
        for w in fleet.collectors:
            w.step(1, now, rng)
            reports += [(w, w.pos, doc) for doc in w.due_reports(now, rng, every_s=3600, dt=1)]
    # 48 collectors, each one report an hour on average: about eight in ten minutes
    assert 3 <= len(reports) <= 16
    assert len({doc["id"] for _, _, doc in reports}) == len(reports)
    for w, pos, doc in reports:
        report = decode_report(msgpack.packb(doc), DeviceRef(w.device, DeviceClass.COLLECTOR, w.district), int(now * 1000))
        assert isinstance(report, ProblemReport)
        assert report.category in taxonomy.categories and report.description
        assert (report.device, report.district) == (w.device, w.district)
        assert distance_m(report.place.lat, report.place.lon, *pos) < 60  # where it stood (GPS noise, GCJ-02 undone)


async def _registered_fleet(settings, broker, store, running, collectors: int):
    fleet = build_fleet(DEMO_CITY, collectors=collectors, vehicles=0, sensors=0)
    accounts = await Provisioning(store, control_account(settings), running.registry).ensure_all(fleet_registrations(fleet))
    params = BrokerParams("127.0.0.1", broker.port, "", "", "sim-cases")
    return fleet, accounts, params


async def test_a_simulated_collectors_report_becomes_a_case_of_the_running_service(settings, broker):
    settings = settings.replace("jt808", enabled=False).replace("cases", taxonomy=str(DEMO_TAXONOMY))
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        fleet, accounts, params = await _registered_fleet(settings, broker, store, running, 2)
        await nursery.start(functools.partial(run_fleet, params, fleet, 0.25, None, accounts=accounts,
                                              report_every_s=1.0))

        async def cases():
            return [tuple(r) for r in await store.fetch("SELECT source, reporter, category, district FROM cases")]

        with trio.fail_after(20):
            while not (rows := await cases()):
                await trio.sleep(0.1)
        rejected = dict(running.pipeline.metrics.labelled.get("gridwatch_rejected_total", {}))
        nursery.cancel_scope.cancel()
    districts = {w.device: w.district for w in fleet.collectors}
    assert rows and all(source == "handset" and districts[reporter] == district and category in
                        {"E0102", "E0104", "E0201", "E0501"} for source, reporter, category, district in rows), rows
    assert rejected == {}


async def test_a_simulated_collector_sent_to_verify_walks_there_and_its_report_closes_the_case(settings, broker):
    # the walker goes faster than a person may (so the test runs in seconds): no speed filter
    settings = (settings.replace("jt808", enabled=False).replace("cases", taxonomy=str(DEMO_TAXONOMY))
                .replace("filters", max_speed_collector_kmh=400.0))
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        fleet, accounts, params = await _registered_fleet(settings, broker, store, running, 1)
        [w] = fleet.collectors
        # a very brisk walker and a short look
        w.speed, w.on_site_s, w.not_done_p = 60.0, (0.5, 0.5), 0.0
        await nursery.start(functools.partial(run_fleet, params, fleet, 0.25, None, accounts=accounts,
                                              report_every_s=0))
        live = running.pipeline.live.devices
        await wait_for(lambda: w.device in live)
        here = live[w.device].fix
        # the middle of a grid of its community some 150–300 m from where it stands
        spot = max((p for p in w.route if distance_m(here.lat, here.lon, *p) < 300),
                   key=lambda p: distance_m(here.lat, here.lon, *p))
        commander = Actor((await new_account(store, role="commander", district="620105"))[0], "commander", "620105")
        worker = Actor((await new_account(store, role="viewer", district="620105"))[0], "viewer", "620105")
        await store.add_department_member("620105-HW", worker.account)
        case, _ = await running.cases.create(NewCase("dispatcher", "E0102", "路边堆放生活垃圾", lat=spot[0], lon=spot[1]),
                                             commander)
        cid = case["id"]
        await running.cases.transition(cid, "file", commander)
        await running.cases.transition(cid, "dispatch", commander, {"department": "620105-HW"})
        await running.cases.transition(cid, "handle", worker, {"feedback": "已清运"})
        await running.cases.transition(cid, "verify", commander, {"collector": w.device})

        distances: list[float] = []
        with trio.fail_after(40):
            while (await store.case(cid))["state"] != "closed":
                fix = live[w.device].fix
                d = distance_m(fix.lat, fix.lon, *spot)
                if not distances or distances[-1] != d:
                    distances.append(d)
                await trio.sleep(0.25)
        timeline = [(e["action"], e["actor"]) for e in await store.case_timeline(cid)]
        nursery.cancel_scope.cancel()
    assert distances[0] > 120 and min(distances) < 30, distances
    # its fixes approach the spot: each second on the way is closer than the one before (GPS noise aside)
    approach = distances[:distances.index(min(distances)) + 1]
    assert all(b < a + 15 for a, b in itertools.pairwise(approach)) and len(approach) >= 4, approach
    assert timeline[-3:] == [("verify", commander.account), ("arrived", w.device), ("close", w.device)]
    assert w.errand is None
