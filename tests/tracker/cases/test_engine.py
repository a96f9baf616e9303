"""The case engine on a real PostgreSQL: every step of the lifecycle table taken and every
other refused (nothing changed), who may act (role, district, department, the collector
sent), the timeline with who and when for every step, idempotent creation."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from alerts.cases.lifecycle import TRANSITIONS, Action, CaseState, IllegalTransition
from tests.tracker.cases.conftest import (
    ANNING,
    CITY_COMMANDER,
    COLLECTOR,
    COMMANDER,
    OUTSIDER,
    QILIHE_COMMANDER,
    SUPERVISOR,
    WORKER,
    local,
)
from tracker.cases.engine import CaseError, CaseNotFound, NewCase, NotAllowed
from tracker.cases.roles import DEPARTMENT_ACTIONS

REFUSE = "E0102"  # exposed refuse: 环卫, 30min to file, 4h to handle, in working time
FIELDS = {"reason": "not ours", "department": "620105-HW", "feedback": "cleared", "collector": "c0007",
          "hours": 2, "grade": "satisfied", "photos": ["p/1.jpg"]}
# how to bring a new case to each state: the actions from "reported"
PATHS: dict[CaseState, list[Action]] = {
    CaseState.REPORTED: [],
    CaseState.REJECTED: [Action.REJECT],
    CaseState.FILED: [Action.FILE],
    CaseState.DISPATCHED: [Action.FILE, Action.DISPATCH],
    CaseState.RETURNED: [Action.FILE, Action.DISPATCH, Action.RETURN],
    CaseState.PARKED: [Action.FILE, Action.DISPATCH, Action.PARK],
    CaseState.HANDLED: [Action.FILE, Action.DISPATCH, Action.HANDLE],
    CaseState.VERIFYING: [Action.FILE, Action.DISPATCH, Action.HANDLE, Action.VERIFY],
    CaseState.CLOSED: [Action.FILE, Action.DISPATCH, Action.HANDLE, Action.VERIFY, Action.CLOSE],
}


def actor_for(action: Action):
    return WORKER if action in DEPARTMENT_ACTIONS else COMMANDER


async def new_case(world, **given):
    fields = {"source": "dispatcher", "category": REFUSE, "description": "垃圾堆在路边", "lat": ANNING[0],
              "lon": ANNING[1], **given}
    case, created = await world.engine.create(NewCase(**fields), COMMANDER)
    assert created
    return case


async def case_in(world, state: CaseState, extension_pending: bool = False):
    case = await new_case(world)
    for action in PATHS[state]:
        case = await world.engine.transition(case["id"], action, actor_for(action), FIELDS)
    if extension_pending:
        case = await world.engine.transition(case["id"], Action.REQUEST_EXTENSION, WORKER, FIELDS)
    assert case["state"] == state
    return case


async def test_a_case_is_placed_on_its_grid_and_its_filing_clock_runs_in_working_time(world):
    world.at(local(2025, 9, 24, 11, 50))  # a Wednesday, ten minutes before lunch
    case = await new_case(world)
    assert (case["district"], case["street"], case["grid"]) == ("620105", "620105003", "620105003003010")
    assert case["state"] == "reported" and case["category_name"] == "暴露垃圾" and not case["urgent"]
    # 30 working minutes: 10 before lunch, 20 after 14:00
    assert case["stage"]["name"] == "file"
    assert case["stage"]["due"] == local(2025, 9, 24, 14, 20).isoformat()
    assert case["stage"]["warn_at"] == local(2025, 9, 24, 14, 14).isoformat()
    assert world.published[-1][0] == "case" and world.published[-1][1]["event"] == "created"
    assert world.published[-1][2] == "620105"
    (audit,) = await world.store.audit_entries(action="case.create")
    assert (audit["target"], audit["actor"], audit["scope"]) == (f"case:{case['id']}", COMMANDER.account, "620105")


@pytest.mark.parametrize(("state", "action"), sorted(TRANSITIONS))
async def test_every_step_of_the_table_is_taken_and_written_to_the_timeline(world, state, action):
    case = await case_in(world, state, extension_pending=action in (Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION))
    world.at(local(2025, 9, 24, 10, 0))
    actor = COLLECTOR if action in (Action.CLOSE, Action.REOPEN) else actor_for(action)
    after = await world.engine.transition(case["id"], action, actor, {**FIELDS, "note": f"{action} now"})
    assert after["state"] == (TRANSITIONS[state, action].to or state)
    last = (await world.engine.timeline(case["id"], CITY_COMMANDER))[-1]
    assert (last["action"], last["actor"], last["role"], last["scope"]) == (action, actor.account, actor.role, "620105")
    assert last["at"] == local(2025, 9, 24, 10, 0).isoformat() and last["state"] == after["state"]
    assert last["note"] == f"{action} now"
    audit = await world.store.audit_entries(action=f"case.{action}")
    assert audit[0]["target"] == f"case:{case['id']}" and audit[0]["actor"] == actor.account


@pytest.mark.parametrize("state", list(CaseState))
async def test_every_action_the_table_does_not_allow_is_refused_and_changes_nothing(world, state):
    case = await case_in(world, state)
    before = await world.engine.timeline(case["id"], CITY_COMMANDER)
    for action in Action:
        if (state, action) in TRANSITIONS:
            continue
        with pytest.raises(IllegalTransition, match=f"cannot {action} a case that is {state}"):
            await world.engine.transition(case["id"], action, actor_for(action), FIELDS)
    assert (await world.engine.get(case["id"], CITY_COMMANDER))["state"] == state
    assert await world.engine.timeline(case["id"], CITY_COMMANDER) == before


async def test_an_action_without_what_it_needs_is_refused(world):
    case = await new_case(world)
    with pytest.raises(IllegalTransition, match="reject needs reason"):
        await world.engine.transition(case["id"], Action.REJECT, COMMANDER, {})
    with pytest.raises(CaseError, match="department is not in the taxonomy"):
        filed = await world.engine.transition(case["id"], Action.FILE, COMMANDER)
        await world.engine.transition(filed["id"], Action.DISPATCH, COMMANDER, {"department": "NOPE"})
    with pytest.raises(CaseError, match="hours must be"):
        await world.engine.transition(case["id"], Action.REQUEST_EXTENSION, WORKER, {"hours": -1, "reason": "x"})
    with pytest.raises(CaseError, match="action must be one of"):
        await world.engine.transition(case["id"], "explode", COMMANDER)
    assert (await world.engine.get(case["id"], COMMANDER))["state"] == "filed"


async def test_roles_districts_and_departments_are_held_to_their_share(world):
    case = await new_case(world)
    with pytest.raises(NotAllowed, match="a viewer may not file"):
        await world.engine.transition(case["id"], Action.FILE, OUTSIDER)
    with pytest.raises(CaseNotFound):  # another district's case is not even there for it
        await world.engine.transition(case["id"], Action.FILE, QILIHE_COMMANDER)
    await world.engine.transition(case["id"], Action.FILE, SUPERVISOR)  # intake: the supervision centre
    with pytest.raises(NotAllowed, match="a supervisor may not dispatch"):
        await world.engine.transition(case["id"], Action.DISPATCH, SUPERVISOR, FIELDS)
    await world.engine.transition(case["id"], Action.DISPATCH, CITY_COMMANDER, {"department": "620105-HW"})
    with pytest.raises(NotAllowed, match="only a member of the department"):
        await world.engine.transition(case["id"], Action.HANDLE, OUTSIDER, FIELDS)
    with pytest.raises(NotAllowed, match="only a member of the department"):
        await world.engine.transition(case["id"], Action.HANDLE, COMMANDER, FIELDS)
    await world.engine.transition(case["id"], Action.HANDLE, WORKER, FIELDS)
    await world.engine.transition(case["id"], Action.VERIFY, SUPERVISOR, {"collector": "someone-else"})
    with pytest.raises(NotAllowed, match="a collector may not close"):
        await world.engine.transition(case["id"], Action.CLOSE, COLLECTOR)
    with pytest.raises(NotAllowed):
        await world.engine.create(NewCase("dispatcher", REFUSE, lat=ANNING[0], lon=ANNING[1]), QILIHE_COMMANDER)
    assert (await world.engine.get(case["id"], COMMANDER))["state"] == "verifying"


async def test_the_timeline_shows_who_did_what_when_and_refuses_to_be_rewritten(world):
    world.at(local(2025, 9, 24, 9, 0))
    case = await new_case(world)
    steps = [(Action.FILE, COMMANDER, {}), (Action.DISPATCH, COMMANDER, {"department": "620105-HW"}),
             (Action.HANDLE, WORKER, {"feedback": "cleared", "photos": ["a.jpg"]}),
             (Action.VERIFY, SUPERVISOR, {"collector": "c0007"}), (Action.CLOSE, COLLECTOR, {"note": "clean now"}),
             (Action.EVALUATE, CITY_COMMANDER, {"grade": "satisfied"})]
    for minutes, (action, actor, fields) in enumerate(steps, start=1):
        world.at(local(2025, 9, 24, 9, 0) + timedelta(minutes=minutes))
        await world.engine.transition(case["id"], action, actor, fields)
    timeline = await world.engine.timeline(case["id"], COMMANDER)
    assert [(e["action"], e["actor"], e["scope"]) for e in timeline] == [
        ("create", COMMANDER.account, "620105"), ("file", COMMANDER.account, "620105"),
        ("dispatch", COMMANDER.account, "620105"), ("handle", WORKER.account, "620105"),
        ("verify", SUPERVISOR.account, "620105"), ("close", COLLECTOR.account, "620105"),
        ("evaluate", CITY_COMMANDER.account, "city")]
    assert [e["at"] for e in timeline] == [(local(2025, 9, 24, 9, 0) + timedelta(minutes=m)).isoformat() for m in range(7)]
    assert timeline[3]["fields"] == {"feedback": "cleared", "photos": ["a.jpg"]}
    closed = await world.engine.get(case["id"], COMMANDER)
    assert closed["state"] == "closed" and closed["grade"] == "satisfied" and closed["stage"] is None
    assert closed["acknowledged_by"] == COMMANDER.account
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await world.store.fetch("UPDATE case_timeline SET actor = 'nobody'")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await world.store.fetch("DELETE FROM case_timeline")


async def test_a_source_creating_the_same_report_again_gets_the_same_case(world):
    from tracker.cases.roles import Actor

    handset = Actor("system", "system", None, device="c0007", source="handset")
    first, created = await world.engine.create(NewCase("handset", REFUSE, lat=ANNING[0], lon=ANNING[1],
                                                       external_id="c0007:r-41", reporter="c0007"), handset)
    again, created_again = await world.engine.create(NewCase("handset", REFUSE, lat=ANNING[0], lon=ANNING[1],
                                                             external_id="c0007:r-41", reporter="c0007"), handset)
    assert created and not created_again and again["id"] == first["id"]
    assert len(await world.engine.timeline(first["id"], CITY_COMMANDER)) == 1
    # the same key from another source is another case
    other, created_other = await world.engine.create(NewCase("hotline", REFUSE, lat=ANNING[0], lon=ANNING[1],
                                                             external_id="c0007:r-41"), handset)
    assert created_other and other["id"] != first["id"]


async def test_an_alarm_source_finds_its_open_episodes_and_records_repeats_without_moving_the_case(world):
    from tracker.cases.roles import Actor

    sensors = Actor("system", "system", None, source="sensors")
    key = "6201050101000001:tilt:1"
    case, _ = await world.engine.create(NewCase("sensor", "C0101", lat=ANNING[0], lon=ANNING[1], external_id=key), sensors)
    assert await world.engine.open_external("sensor") == {key: case["id"]}
    after = await world.engine.record(case["id"], "alarm_repeat", sensors, {"alarm": 17}, note="tilted again")
    assert after["state"] == "reported"
    last = (await world.engine.timeline(case["id"], CITY_COMMANDER))[-1]
    assert (last["action"], last["fields"], last["note"]) == ("alarm_repeat", {"alarm": 17}, "tilted again")
    with pytest.raises(CaseError, match="lifecycle step"):
        await world.engine.record(case["id"], "close", sensors)
    await world.engine.transition(case["id"], Action.REJECT, COMMANDER, {"reason": "duplicate"})
    assert await world.engine.open_external("sensor") == {}


async def test_bad_cases_are_refused_with_reasons(world):
    for bad, why in ((NewCase("fax", REFUSE), "source must be"), (NewCase("dispatcher", "Z9999"), "category is not in taxonomy version 1"),
                     (NewCase("dispatcher", REFUSE, lat=95.0, lon=1.0), "lat must be"),
                     (NewCase("dispatcher", REFUSE, lat=1.0), "lon must be given with lat")):
        with pytest.raises(CaseError, match=why):
            await world.engine.create(bad, CITY_COMMANDER)
