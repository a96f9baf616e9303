"""Deadlines through the engine on literal dates (lunch, weekend, holiday, the adjusted
working day, parking, an extension), and the watcher: each warning, overdue and
escalation given once, in the timeline and live, and none lost or given twice when the
engine and watcher start again on the same database. The watcher's loop runs on trio's
MockClock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
import trio
import trio.testing

from alerts.cases.lifecycle import Action
from protocols.epoch import datetime_to_ms
from tests.tracker.cases.conftest import ANNING, CITY_COMMANDER, COMMANDER, WORKER, local
from tracker.cases.engine import CaseEngine, NewCase
from tracker.cases.watch import CaseWatch
from tracker.config import CasesSettings

REFUSE = "E0102"  # 30min to file and to dispatch, 4h to handle, working time


async def dispatched_at(world, when: datetime):
    world.at(when)
    case, _ = await world.engine.create(NewCase("dispatcher", REFUSE, lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    await world.engine.transition(case["id"], Action.FILE, COMMANDER)
    return await world.engine.transition(case["id"], Action.DISPATCH, COMMANDER, {"department": "620105-HW"})


@pytest.mark.parametrize(("dispatched", "due", "why"), [
    (local(2025, 9, 24, 11, 0), local(2025, 9, 24, 17, 0), "an hour before lunch, three after it"),
    (local(2025, 9, 19, 17, 0), local(2025, 9, 22, 11, 30), "Friday's last hour, the weekend off, Monday's first three"),
    (local(2025, 9, 26, 17, 0), local(2025, 9, 28, 11, 30), "Sunday 28 September 2025 is an adjusted working day"),
    (local(2025, 9, 30, 17, 0), local(2025, 10, 9, 11, 30), "National Day and Mid-Autumn: 1–8 October off"),
])
async def test_the_handling_deadline_runs_on_working_time(world, dispatched, due, why):
    case = await dispatched_at(world, dispatched)
    assert case["stage"]["name"] == "handle"
    assert case["stage"]["due"] == due.isoformat(), why
    assert case["stage"]["warn_at"] < due.isoformat()


async def test_parked_time_does_not_count_and_an_approved_extension_moves_the_deadline(world):
    case = await dispatched_at(world, local(2025, 9, 24, 9, 0))  # due 15:00 (3h before lunch, 1h after)
    assert case["stage"]["due"] == local(2025, 9, 24, 15, 0).isoformat()
    world.at(local(2025, 9, 24, 10, 0))
    await world.engine.transition(case["id"], Action.PARK, COMMANDER, {"reason": "road closed"})
    world.at(local(2025, 9, 25, 10, 0))  # parked for one working day
    resumed = await world.engine.transition(case["id"], Action.RESUME, COMMANDER)
    assert resumed["stage"]["due"] == local(2025, 9, 25, 15, 0).isoformat()
    await world.engine.transition(case["id"], Action.REQUEST_EXTENSION, WORKER, {"reason": "parts", "hours": 2})
    extended = await world.engine.transition(case["id"], Action.APPROVE_EXTENSION, COMMANDER)
    assert extended["stage"]["due"] == local(2025, 9, 25, 17, 0).isoformat()
    assert not extended["extension_pending"]


async def test_a_warning_and_an_overdue_are_given_once_each_and_survive_a_restart(world):
    world.at(local(2025, 9, 24, 9, 0))  # filing: warning at 09:24, due at 09:30
    case, _ = await world.engine.create(NewCase("dispatcher", REFUSE, lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    watch = CaseWatch(world.engine)
    world.at(local(2025, 9, 24, 9, 23))
    assert await watch.check() == 0
    world.at(local(2025, 9, 24, 9, 25))
    assert await watch.check() == 1
    assert await watch.check() == 0
    # the service starts again: a new engine and watcher on the same database
    again = CaseWatch(world.engine_again())
    assert await again.check() == 0
    world.at(local(2025, 9, 24, 9, 40))
    assert await again.check() == 2  # overdue, and nobody acknowledged it in 30 minutes
    assert await CaseWatch(world.engine_again()).check() == 0
    timeline = await world.engine.timeline(case["id"], CITY_COMMANDER)
    assert [(e["action"], e["actor"], e["at"]) for e in timeline[1:]] == [
        ("warning", "system", local(2025, 9, 24, 9, 25).isoformat()),
        ("overdue", "system", local(2025, 9, 24, 9, 40).isoformat()),
        ("escalate", "system", local(2025, 9, 24, 9, 40).isoformat())]
    live = [(p["event"], district) for kind, p, district in world.published if kind == "case"]
    assert live == [("created", "620105"), ("warning", "620105"), ("overdue", "620105"), ("escalate", "620105")]
    detail = await world.engine.get(case["id"], CITY_COMMANDER)
    assert detail["escalated"] and detail["stage"]["standing"] == "overdue"
    # filing it starts the dispatch stage, whose warning is given afresh in its turn
    world.at(local(2025, 9, 24, 9, 45))
    await world.engine.transition(case["id"], Action.FILE, COMMANDER)
    world.at(local(2025, 9, 24, 10, 10))
    assert await again.check() == 1
    assert (await world.engine.timeline(case["id"], COMMANDER))[-1]["fields"]["stage"] == "dispatch"


async def test_a_case_acknowledged_in_time_is_not_escalated_and_one_left_alone_is(world):
    world.at(local(2025, 9, 24, 9, 0))
    seen, _ = await world.engine.create(NewCase("dispatcher", "C0111", lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    left, _ = await world.engine.create(NewCase("dispatcher", "C0111", lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    world.at(local(2025, 9, 24, 9, 10))
    await world.engine.transition(seen["id"], Action.FILE, COMMANDER)
    watch = CaseWatch(world.engine)
    world.at(local(2025, 9, 24, 9, 29))
    assert await watch.check() == 1  # the filing warning of the one left alone (at 09:24)
    world.at(local(2025, 9, 24, 9, 31))
    assert await watch.check() == 2  # its filing overdue, and its escalation
    assert (await world.engine.get(left["id"], COMMANDER))["escalated"]
    assert not (await world.engine.get(seen["id"], COMMANDER))["escalated"]
    assert (await world.engine.get(seen["id"], COMMANDER))["acknowledged_by"] == COMMANDER.account
    escalated, _ = await world.engine.list(CITY_COMMANDER, escalated=True)
    assert [c["id"] for c in escalated] == [left["id"]]
    audit = await world.store.audit_entries(action="case.escalate")
    assert [a["target"] for a in audit] == [f"case:{left['id']}"]


@pytest.fixture
def still_clock() -> trio.testing.MockClock:
    """trio's clock standing still until the test jumps it (the database's own timeouts
    must not fire while it answers)."""
    return trio.testing.MockClock()


async def _until(predicate, what: str) -> None:
    deadline = time.monotonic() + 30  # real seconds: the database answers meanwhile
    while not predicate():
        assert time.monotonic() < deadline, what
        await trio.sleep(0)


async def test_the_running_watcher_gives_the_warning_when_it_falls_due_on_trio_clock(world, still_clock):
    start = local(2025, 9, 24, 9, 0)
    origin = trio.current_time()
    engine = CaseEngine(world.store, CasesSettings().calendar(), index=world.index,
                        clock_ms=lambda: datetime_to_ms(start) + int((trio.current_time() - origin) * 1000),
                        publish=lambda kind, payload, district: world.published.append((kind, payload, district)),
                        escalate_after=timedelta(hours=8))
    case, _ = await engine.create(NewCase("dispatcher", REFUSE, lat=ANNING[0], lon=ANNING[1]), COMMANDER)

    def events() -> list[str]:
        return [p["event"] for _, p, _ in world.published]

    watch = CaseWatch(engine, max_sleep_s=3600)
    async with trio.open_nursery() as nursery:
        await nursery.start(watch.run)
        # the clock moves only while the watcher sleeps: a query in flight would time out
        await _until(lambda: watch.sleeping, "the first look")
        still_clock.jump(20 * 60)
        await _until(lambda: watch.sleeping, "asleep at 09:20")
        assert events() == ["created"]  # 09:20: nothing due
        still_clock.jump(5 * 60)  # 09:25, past the warning at 09:24
        await _until(lambda: events() == ["created", "warning"] and watch.sleeping, "the warning at 09:24")
        still_clock.jump(10 * 60)  # 09:35, past the deadline at 09:30
        await _until(lambda: events() == ["created", "warning", "overdue"], "the overdue at 09:30")
        nursery.cancel_scope.cancel()
    timeline = await engine.timeline(case["id"], COMMANDER)
    assert [e["action"] for e in timeline] == ["create", "warning", "overdue"]
    assert timeline[1]["at"] == local(2025, 9, 24, 9, 25).isoformat()  # when it woke past 09:24
