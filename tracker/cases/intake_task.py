"""The alarm outbox consumed into cases, exactly once.

Sensor and vehicle alarms are written to ``alarm_events`` by the pipeline; this task takes
them in order, asks ``alerts.cases.intake`` what each does (open a case, attach to the open
one, record its recovery, nothing) and writes that together with the events' consumption in
one transaction (``Store.consume_alarm_events``). A crash before the commit leaves the
events pending and nothing written; after it, they are consumed and their cases stored.
A case opened for an alarm is keyed by its originator, kind and first event, so even a
second consumer could not open it twice.

The task looks at the outbox when the pipeline says alarms were committed, and at least
every ``poll_s`` (on trio's clock).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import trio

from alerts.cases.intake import AlarmEvent, AlarmRule, Decision, rules_by_key, take
from alerts.cases.taxonomy import Taxonomy
from tracker.cases.engine import CaseEngine, NewCase, NoTaxonomy
from tracker.cases.roles import SERVICE
from tracker.metrics import Metrics
from tracker.storage.audit import AuditEntry
from tracker.storage.retry import retryable
from tracker.storage.store import AlarmEffect, alarm_case_key

log = logging.getLogger(__name__)


class AlarmIntake:
    def __init__(self, engine: CaseEngine, rules: list[AlarmRule], metrics: Metrics, *, poll_s: float = 1.0,
                 batch: int = 100) -> None:
        self.engine = engine
        self.rules = rules_by_key(rules)
        self.metrics = metrics
        self.poll_s = poll_s
        self.batch = batch
        self._wake = trio.Event()
        metrics.describe("gridwatch_alarm_intake_total", "Alarm events consumed into cases, by decision")

    def wake(self) -> None:
        """Alarm events were committed: look now (called from the pipeline's persist stage)."""
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            try:
                taken = await self.consume_once()
            except NoTaxonomy:
                taken = 0  # no case can be filed yet: the events wait in the outbox
            except Exception as exc:
                # the database went away mid-batch: nothing of it was written, the next look takes it
                if not retryable(exc):
                    raise
                log.warning("alarm intake: database unavailable (%s); looking again shortly", exc)
                taken = 0
            if taken >= self.batch:
                await trio.lowlevel.checkpoint()
                continue
            with trio.move_on_after(self.poll_s):
                await self._wake.wait()
            self._wake = trio.Event()

    async def consume_once(self) -> int:
        """Consume one batch of pending events: how many cases were opened or noted."""
        version, taxonomy = await self.engine.taxonomy()
        now = self.engine.now()

        def decide(event: Any, open_cases: dict) -> AlarmEffect | None:
            return self._effect(event, open_cases, taxonomy, version, now)

        done = await self.engine.store.consume_alarm_events(self.batch, decide)
        for what, row in done:
            await self.engine.announce(what, row, action="alarm")
        return len(done)

    def _effect(self, row: Any, open_cases: dict, taxonomy: Taxonomy, version: int, now: Any) -> AlarmEffect | None:
        event = AlarmEvent(row["id"], row["source"], row["device"], row["component"], row["kind"], row["raised"])
        intake = take(event, {key: case["id"] for key, case in open_cases.items()}, self.rules, taxonomy)
        self.metrics.inc("gridwatch_alarm_intake_total", decision=intake.decision.value)
        alarm = {"alarm": row["id"], "source": row["source"], "device": row["device"], "component": row["component"],
                 "kind": row["kind"], "raised": row["raised"], "t": row["t"].isoformat(), "value": row["value"]}
        entry = {"at": now, "actor": SERVICE.account, "role": SERVICE.role, "scope": SERVICE.scope, "fields": alarm}
        if intake.decision is Decision.IGNORE:
            log.debug("alarm event %d opens no case: %s", row["id"], intake.why)
            return None
        if intake.decision is Decision.OPEN:
            assert intake.category is not None
            new = NewCase(row["source"], intake.category.code, _description(row), lat=row["lat"], lon=row["lon"],
                          urgent=intake.urgent, external_id=alarm_case_key(*intake.key, row["id"]),
                          reporter=row["device"])
            try:
                columns = self.engine.opening_row(new, intake.category, version, now)
            except ValueError as exc:  # a position no case can have: filed without it
                log.warning("alarm event %d: %s; its case has no position", row["id"], exc)
                columns = self.engine.opening_row(dataclasses.replace(new, lat=None, lon=None), intake.category,
                                                  version, now)
            audit = AuditEntry(actor=SERVICE.account, action="case.create", target="case", source=SERVICE.source,
                               role=SERVICE.role, scope=SERVICE.scope,
                               after={"source": new.source, "category": new.category, "district": columns["district"],
                                      "external_id": new.external_id})
            return AlarmEffect(intake.key, {**entry, "action": "create", "state": "reported", "note": "alarm raised",
                                            "fields": {**alarm, "category": new.category}}, new=columns, audit=audit)
        action = "alarm_cleared" if intake.decision is Decision.CLEAR else "alarm"
        note = "alarm cleared" if intake.decision is Decision.CLEAR else f"alarm again ({intake.why})"
        return AlarmEffect(intake.key, {**entry, "action": action, "note": note}, case=intake.case)


def _description(row: Any) -> str:
    what = f"{row['kind']} alarm from {row['source']} {row['device']}"
    if row["component"]:
        what += f" on component {row['component']}"
    return f"{what}: {row['detail']}" if row["detail"] else what
