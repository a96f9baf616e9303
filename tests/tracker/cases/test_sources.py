"""Case sources on a real PostgreSQL: the alarm outbox consumed into cases exactly once
(one open case per component and kind; repeats and flapping attached, a recovery noted),
handset reports (a retry is one case; an unknown category refused and counted; a
verification report closes or reopens what its collector was sent to), the candidates
for a verification, the task sent to the collector and its arrival from its own fixes."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import trio

from alerts.cases.intake import AlarmRule
from geofence.placed import Placed, PlacedSlice
from protocols.epoch import datetime_to_ms
from protocols.handset.report import decode_report
from protocols.model import DeviceClass, DeviceRef, Fix
from tests.tracker.cases.conftest import ANNING, COMMANDER, WORKER
from tracker.cases.dispatch import Verification
from tracker.cases.engine import NewCase
from tracker.cases.handset import HandsetReports
from tracker.cases.intake_task import AlarmIntake
from tracker.config import CasesSettings
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from tracker.storage.store import OPEN_ALARM_CASES

COVER = "6201050101000007"  # a manhole cover in Anning: its component code files it under C0101
BIN = "6201050306000011"


def intake_of(world, metrics: Metrics | None = None, batch: int = 100) -> AlarmIntake:
    return AlarmIntake(world.engine, CasesSettings().rules(), metrics or Metrics(), batch=batch)


async def alarm(world, device: str, component: str | None, kind: str, raised: bool, seconds: int,
                source: str = "sensor") -> None:
    t = world.instant[0] + timedelta(seconds=seconds)
    await world.store.record_alarms([(source, device, component, kind, raised, t, 35.0, "", ANNING[0], ANNING[1],
                                      "620105003003010")])


async def alarm_cases(world) -> list:
    return await world.store.fetch("SELECT * FROM cases WHERE source IN ('sensor', 'vehicle') ORDER BY id")


async def test_a_tilt_alarm_opens_one_case_on_its_component_placed_on_its_grid(world):
    await alarm(world, "mh-7", COVER, "tilt", True, 0)
    assert await intake_of(world).consume_once() == 1
    [case] = await alarm_cases(world)
    assert (case["category"], case["source"], case["reporter"], case["grid"], case["district"], case["state"]) == (
        "C0101", "sensor", "mh-7", "620105003003010", "620105", "reported")
    assert case["external_id"].startswith(f"{COVER}:tilt:")
    [entry] = await world.engine.timeline(case["id"], COMMANDER)
    assert (entry["action"], entry["actor"], entry["fields"]["kind"], entry["fields"]["raised"]) == (
        "create", "system", "tilt", True)
    assert world.published[-1][0] == "case" and world.published[-1][1]["event"] == "created"
    assert await world.store.pending_alarm_events() == 0


async def test_a_flapping_alarm_is_one_case_with_every_edge_on_its_timeline(world):
    edges = [True, False, True, False, True]
    for n, raised in enumerate(edges):
        await alarm(world, "mh-7", COVER, "tilt", raised, n * 10)
    await alarm(world, "mh-7", COVER, "flapping", True, 60)
    await alarm(world, "mh-7", COVER, "tilt", False, 70)
    metrics = Metrics()
    await intake_of(world, metrics).consume_once()
    [case] = await alarm_cases(world)
    actions = [(e["action"], e["fields"].get("kind"), e["fields"].get("raised"))
               for e in await world.engine.timeline(case["id"], COMMANDER)]
    assert actions == [("create", "tilt", True), ("alarm_cleared", "tilt", False), ("alarm", "tilt", True),
                       ("alarm_cleared", "tilt", False), ("alarm", "tilt", True), ("alarm", "flapping", True),
                       ("alarm_cleared", "tilt", False)]
    # the recovery is recorded, the case stays for its on-site check
    assert case["state"] == "reported"
    assert metrics.get("gridwatch_alarm_intake_total", decision="open") == 1
    assert metrics.get("gridwatch_alarm_intake_total", decision="clear") == 3


async def test_configured_rules_choose_kinds_categories_and_urgency(world):
    await alarm(world, "bin-11", BIN, "full", True, 0)
    await alarm(world, "bus-3", None, "overspeed", True, 1, source="vehicle")
    await alarm(world, "mh-7", COVER, "gas", True, 2)  # no rule: no case
    await alarm(world, "mh-8", None, "tilt", False, 3)  # a recovery with nothing open
    intake = AlarmIntake(world.engine, [*CasesSettings().rules(), AlarmRule("sensor", "smoke", "C0101", True)],
                         Metrics())
    await intake.consume_once()
    cases = await alarm_cases(world)
    assert [(c["reporter"], c["category"], c["source"]) for c in cases] == [("bin-11", "C0306", "sensor"),
                                                                          ("bus-3", "E0406", "vehicle")]
    assert await world.store.pending_alarm_events() == 0  # consumed, whatever they decided
    await alarm(world, "mh-9", COVER[:-1] + "9", "smoke", True, 4)
    await intake.consume_once()
    assert (await alarm_cases(world))[-1]["urgent"] is True


async def test_a_closed_case_leaves_the_next_alarm_of_its_component_a_new_case(world):
    await alarm(world, "mh-7", COVER, "tilt", True, 0)
    await intake_of(world).consume_once()
    [case] = await alarm_cases(world)
    await world.engine.transition(case["id"], "reject", COMMANDER, {"reason": "a test of the sensor"})
    await alarm(world, "mh-7", COVER, "tilt", True, 100)
    await intake_of(world).consume_once()
    assert len(await alarm_cases(world)) == 2


async def test_consumers_side_by_side_open_each_case_once(world):
    for n in range(40):
        await alarm(world, f"mh-{n}", f"62010501010{n:05d}", "tilt", True, n)
        await alarm(world, f"mh-{n}", f"62010501010{n:05d}", "tilt", True, n + 100)  # a repeat of each
    intakes = [intake_of(world, batch=7) for _ in range(3)]

    async def drain(intake: AlarmIntake) -> None:
        while await world.store.pending_alarm_events():
            await intake.consume_once()

    async with trio.open_nursery() as nursery:
        for intake in intakes:
            nursery.start_soon(drain, intake)
    cases = await alarm_cases(world)
    assert sorted(c["reporter"] for c in cases) == sorted(f"mh-{n}" for n in range(40))
    entries = await world.store.fetch("SELECT count(*) FROM case_timeline WHERE action = 'alarm'")
    assert entries[0][0] == 40  # each repeat attached once



async def test_originators_that_share_a_prefix_or_hold_wildcards_keep_their_own_cases(world, database):
    vehicles = ("veh_1", "veh%1", "veh_10", "vehX1", "veh\\1")
    for n, device in enumerate(vehicles):
        await alarm(world, device, None, "overspeed", True, n, source="vehicle")
    await intake_of(world).consume_once()
    for n, device in enumerate(vehicles):  # a repeat each, attached to its own case only
        await alarm(world, device, None, "overspeed", True, 100 + n, source="vehicle")
    await intake_of(world).consume_once()
    cases = await alarm_cases(world)
    assert sorted(c["reporter"] for c in cases) == sorted(vehicles)
    for case in cases:
        entries = await world.engine.timeline(case["id"], COMMANDER)
        assert [e["action"] for e in entries] == ["create", "alarm"], case["reporter"]
    # the lookup can use the open alarm cases' index (its expression and predicate match)
    explain = "EXPLAIN " + OPEN_ALARM_CASES.replace("$1::text[]", "'{veh_1}'::text[]")
    plan = (await trio.run_process([shutil.which("psql") or "psql", "-X", database, "-c", "SET enable_seqscan = off",
                                    "-c", explain], capture_stdout=True)).stdout.decode()
    assert "cases_open_alarm_originator" in plan, plan


# --- handset reports ------------------------------------------------------------------

COLLECTOR_REF = DeviceRef("c0007", DeviceClass.COLLECTOR, "620105")


def report(world, **doc) -> object:
    rx = datetime_to_ms(world.instant[0])
    return decode_report(json.dumps({"t": rx, **doc}).encode(), COLLECTOR_REF, rx)


async def test_a_retried_problem_report_is_one_case_and_an_unknown_category_is_refused_and_counted(world):
    metrics = Metrics()
    reports = HandsetReports(world.engine, metrics)
    problem = {"id": "r-1", "cat": "E0102", "desc": "垃圾堆在路边", "lat": ANNING[0], "lon": ANNING[1]}
    await reports([report(world, **problem)])
    await reports([report(world, **problem), report(world, **problem)])
    await reports([report(world, **{**problem, "id": "r-2", "cat": "E9999"})])
    cases = await world.store.fetch("SELECT * FROM cases WHERE source = 'handset'")
    assert [(c["external_id"], c["category"], c["reporter"], c["grid"]) for c in cases] == [
        ("c0007:r-1", "E0102", "c0007", "620105003003010")]
    assert metrics.get("gridwatch_reports_total", kind="problem", outcome="created") == 1
    assert metrics.get("gridwatch_reports_total", kind="problem", outcome="repeated") == 2
    assert metrics.get("gridwatch_reports_total", kind="problem", outcome="unknown_category") == 1


async def verifying(world, collector: str = "c0007") -> dict:
    case, _ = await world.engine.create(NewCase("dispatcher", "E0102", "垃圾", lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    await world.engine.transition(case["id"], "file", COMMANDER)
    await world.engine.transition(case["id"], "dispatch", COMMANDER, {"department": "620105-HW"})
    await world.engine.transition(case["id"], "handle", WORKER, {"feedback": "cleared"})
    return await world.engine.transition(case["id"], "verify", COMMANDER, {"collector": collector})


async def test_verification_reports_close_or_reopen_only_what_their_collector_was_sent_to(world):
    metrics = Metrics()
    reports = HandsetReports(world.engine, metrics)
    other = await verifying(world, collector="c0099")
    await reports([report(world, id="v-0", verify={"case": other["id"], "result": "done"})])
    assert (await world.engine.get(other["id"], COMMANDER))["state"] == "verifying"
    assert metrics.get("gridwatch_reports_total", kind="verification", outcome="not_verifier") == 1

    reopened = await verifying(world)
    await reports([report(world, id="v-1", verify={"case": reopened["id"], "result": "not_done"}, note="still there")])
    assert (await world.engine.get(reopened["id"], COMMANDER))["state"] == "dispatched"

    closed = await verifying(world)
    await reports([report(world, id="v-2", verify={"case": closed["id"], "result": "done"})])
    await reports([report(world, id="v-2", verify={"case": closed["id"], "result": "done"})])  # a retry
    assert (await world.engine.get(closed["id"], COMMANDER))["state"] == "closed"
    last = (await world.engine.timeline(closed["id"], COMMANDER))[-1]
    assert (last["action"], last["actor"]) == ("close", "c0007")
    assert metrics.get("gridwatch_reports_total", kind="verification", outcome="closed") == 1
    assert metrics.get("gridwatch_reports_total", kind="verification", outcome="not_verifying") == 1


# --- verification dispatch ------------------------------------------------------------


def placed(device: str, lat: float, lon: float, t_ms: int, district: str = "620105", grid: str | None = None) -> Placed:
    return Placed(Fix(device, DeviceClass.COLLECTOR, district, t_ms, lat, lon, rx_ms=t_ms), 0, grid)


async def test_candidates_are_the_nearest_collectors_in_the_callers_scope(world):
    live = LiveState()
    now = datetime_to_ms(world.instant[0])
    for device, dlat, district in (("c-near", 0.0005, "620105"), ("c-far", 0.005, "620105"),
                                   ("c-mid", 0.002, "620105"), ("c-qilihe", 0.0001, "620103")):
        live.devices[device] = placed(device, ANNING[0] + dlat, ANNING[1], now, district)
    live.devices["v-1"] = Placed(Fix("v-1", DeviceClass.VEHICLE, "620105", now, ANNING[0], ANNING[1], rx_ms=now), 0, None)
    verification = Verification(world.engine, live, lambda topic, payload: None)
    case, _ = await world.engine.create(NewCase("dispatcher", "E0102", "垃圾", lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    found = await verification.candidates(case["id"], COMMANDER, k=2)
    assert [c["device"] for c in found["candidates"]] == ["c-near", "c-mid"]
    assert 50 < found["candidates"][0]["distance_m"] < 60 and found["plan"] is False
    # where each is, to draw them on the map, and by name (no registry here: the id)
    near = found["candidates"][0]
    assert (near["lat"], near["lon"], near["name"]) == (ANNING[0] + 0.0005, ANNING[1], "c-near")


async def test_with_a_patrol_plan_only_collectors_on_duty_now_are_proposed_their_own_grid_marked(world):
    from geofence.plan import PatrolPlan

    # Wednesday 2025-09-24 09:00 in the city: c-early's shift is over, c-own patrols the
    # case's grid, c-other another area, c-off has no shift at all
    plan = PatrolPlan.from_dict({"zone": "Asia/Shanghai", "areas": {
        "620105003003": {"grids": ["620105003003010"]}, "620105003002": {"grids": ["620105003002001"]}},
        "shifts": [{"collector": "c-early", "area": "620105003003", "start": "06:00", "end": "08:00"},
                   {"collector": "c-own", "area": "620105003003", "start": "08:00", "end": "12:00"},
                   {"collector": "c-other", "area": "620105003002", "start": "08:00", "end": "12:00"}]})
    live = LiveState()
    now = datetime_to_ms(world.instant[0])
    for device, dlat in (("c-early", 0.0001), ("c-off", 0.0002), ("c-other", 0.0003), ("c-own", 0.0006)):
        live.devices[device] = placed(device, ANNING[0] + dlat, ANNING[1], now)
    verification = Verification(world.engine, live, lambda topic, payload: None, plan=lambda: plan)
    case, _ = await world.engine.create(NewCase("dispatcher", "E0102", "垃圾", lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    found = await verification.candidates(case["id"], COMMANDER)
    assert [(c["device"], c["in_grid"], c["area"]) for c in found["candidates"]] == [
        ("c-other", False, "620105003002"), ("c-own", True, "620105003003")]


async def test_the_verifier_gets_its_task_and_its_fixes_at_the_case_mark_its_arrival(world):
    sent: list[tuple[str, bytes]] = []
    live = LiveState()
    now = datetime_to_ms(world.instant[0])
    live.devices["c0007"] = placed("c0007", ANNING[0] + 0.01, ANNING[1], now)
    verification = Verification(world.engine, live, lambda topic, payload: sent.append((topic, payload)), radius_m=50)
    hub = world.engine.publish
    world.engine.publish = lambda kind, payload, district: (verification.on_case(kind, payload, district),
                                                             hub(kind, payload, district))
    async with trio.open_nursery() as nursery:
        await nursery.start(verification.run)
        case = await verifying(world)
        await wait_until(lambda: sent)
        [(topic, payload)] = sent
        task = json.loads(payload)
        assert topic == "gw/v1/620105/collector/c0007/cmd"
        assert (task["type"], task["case"], task["grid"], task["category"]) == ("verify", case["id"], case["grid"], "E0102")
        assert task["lat"] == ANNING[0] and task["deadline"] is not None
        # far away, then in the case's grid
        verification.observe(PlacedSlice([live.devices["c0007"].fix], [0], ["620105003003001"]))
        near = placed("c0007", ANNING[0] + 0.0001, ANNING[1], now + 60_000).fix
        verification.observe(PlacedSlice([near], [0], [case["grid"]]))
        verification.observe(PlacedSlice([near], [0], [case["grid"]]))  # there still: arrived once
        await wait_until(lambda: verification.tasks == {} and world.published[-1][1].get("action") == "arrived")
        nursery.cancel_scope.cancel()
    arrivals = [e for e in await world.engine.timeline(case["id"], COMMANDER) if e["action"] == "arrived"]
    assert [(e["actor"], e["state"], e["fields"]["fix_t"]) for e in arrivals] == [("c0007", "verifying", now + 60_000)]
    # after a restart the arrived task is not watched again, an unarrived one is
    again = Verification(world.engine, live, lambda topic, payload: None)
    await again.load()
    assert again.tasks == {}
    other = await verifying(world, collector="c0042")
    await again.load()
    assert list(again.tasks) == ["c0042"] and again.tasks["c0042"].case == other["id"]


async def wait_until(condition, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


async def test_an_owntracks_phone_gets_a_waypoint_at_the_case_and_a_message(world):
    sent: list[tuple[str, bytes]] = []
    verification = Verification(world.engine, LiveState(), lambda topic, payload: sent.append((topic, payload)),
                                radius_m=40, owntracks={"c0007": ("alice", "phone")})
    hub = world.engine.publish
    world.engine.publish = lambda kind, payload, district: (verification.on_case(kind, payload, district),
                                                             hub(kind, payload, district))
    async with trio.open_nursery() as nursery:
        await nursery.start(verification.run)
        case = await verifying(world)
        await wait_until(lambda: len(sent) == 2)
        nursery.cancel_scope.cancel()
    assert {topic for topic, _ in sent} == {"owntracks/alice/phone/cmd"}
    waypoints, message = (json.loads(payload) for _, payload in sent)
    assert (waypoints["_type"], waypoints["action"], waypoints["waypoints"]["_type"]) == ("cmd", "setWaypoints", "waypoints")
    [point] = waypoints["waypoints"]["waypoints"]
    assert (point["_type"], point["lat"], point["lon"], point["rad"]) == ("waypoint", ANNING[0], ANNING[1], 40)
    assert isinstance(point["tst"], int) and str(case["id"]) in point["desc"]
    assert (message["_type"], message["action"]) == ("cmd", "action") and f"case {case['id']}" in message["content"]
