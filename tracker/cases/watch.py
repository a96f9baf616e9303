"""The deadline watcher: warnings, overdue stages and escalations, each given once.

What is due is decided from the stored case rows only (each stage's warning and due
instants, the flags saying they were given, the report time and acknowledgement), so a
restarted service sees exactly what is left to give: nothing is lost, nothing given twice.
Each event is written with a conditional change of the locked row (the flag still unset),
its timeline entry (actor ``system``) in the same transaction, then published live.

The watcher sleeps until the next instant anything falls due (at most ``max_sleep_s``, and
it wakes early when the engine changed a case), on trio's clock: tests run it on MockClock.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import trio

from alerts.cases.deadlines import Standing, escalation_due, standing
from alerts.cases.lifecycle import OPEN_STATES, CaseState
from tracker.cases.engine import CaseEngine, NoTaxonomy
from tracker.cases.roles import SERVICE
from tracker.storage.audit import AuditEntry
from tracker.storage.retry import retryable

log = logging.getLogger(__name__)


def due_event(row: Any, now: datetime, engine: CaseEngine) -> tuple[str, dict[str, Any]] | None:
    """The one event the case has due at ``now`` and not yet given (the earliest first:
    a warning before its overdue, both before escalation): (event, column updates)."""
    if row["stage"] is not None and row["parked_since"] is None and row["stage_due"] is not None:
        clock = engine.stored_clock(row, None)
        stands = standing(clock, now)
        if stands is not Standing.ON_TIME and row["stage_warned_at"] is None:
            return "warning", {"stage_warned_at": now}
        if stands is Standing.OVERDUE and row["stage_overdue_at"] is None:
            return "overdue", {"stage_overdue_at": now}
    if CaseState(row["state"]) in OPEN_STATES and row["escalated_at"] is None:
        escalate_at = escalation_due(row["created_at"], engine.escalate_after, row["acknowledged_at"])
        if escalate_at is not None and row["acknowledged_at"] is None and escalate_at <= now:
            return "escalate", {"escalated_at": now}
    return None


class CaseWatch:
    def __init__(self, engine: CaseEngine, *, max_sleep_s: float = 60.0) -> None:
        self.engine = engine
        self.max_sleep_s = max_sleep_s
        self.given = 0  # events given by this watcher since it started
        self.sleeping = False  # between looks: no query of the watcher's in flight

    async def check(self) -> int:
        """Give every event due now; how many were given."""
        engine = self.engine
        now = engine.now()
        given = 0
        for row in await engine.store.cases_to_watch(now, now - engine.escalate_after):
            while await self._give(row["id"], now):
                given += 1
        self.given += given
        return given

    async def _give(self, case_id: int, now: datetime) -> bool:
        event: list[str] = []

        def decide(locked: Any) -> tuple[dict, dict, AuditEntry | None] | None:
            due = due_event(locked, now, self.engine)
            if due is None:
                return None
            name, updates = due
            event.append(name)
            entry = {"at": now, "actor": SERVICE.account, "role": SERVICE.role, "scope": SERVICE.scope,
                     "action": name, "state": locked["state"], "note": "",
                     "fields": {"stage": locked["stage"], "due": locked["stage_due"].isoformat()
                                if locked["stage_due"] is not None else None}}
            audit = (AuditEntry(actor=SERVICE.account, action="case.escalate", target=f"case:{case_id}", source="cases",
                                detail="not acknowledged in time: up to the city")
                     if name == "escalate" else None)
            return updates, entry, audit

        _, after = await self.engine.store.change_case(case_id, decide)
        if after is None:
            return False
        try:
            view = await self.engine.view(after)
        except NoTaxonomy:
            return True
        if self.engine.publish is not None:
            self.engine.publish("case", {"event": event[0], "case": {k: view[k] for k in (
                "id", "state", "state_zh", "category", "category_name", "urgent", "district", "department",
                "escalated", "stage", "updated_at")}}, view["district"])
        log.info("case %d: %s", case_id, event[0])
        return True

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Give what is due, then sleep until the next instant something falls due."""
        task_status.started()
        while True:
            changed = self.engine.changed
            try:
                await self.check()
            except Exception as exc:
                # the database went away mid-change: nothing was given, the next look gives it
                if not retryable(exc):
                    raise
                log.warning("case deadlines: database unavailable (%s); looking again shortly", exc)
            wait = self.max_sleep_s
            upcoming = await self.engine.store.next_case_instant(self.engine.escalate_after)
            if upcoming is not None:
                wait = min(wait, max((upcoming - self.engine.now()).total_seconds(), 0.0) + 0.001)
            self.sleeping = True
            with trio.move_on_after(wait):
                await changed.wait()
            self.sleeping = False
