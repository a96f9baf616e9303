"""From an alarm event to a case: open one, attach to the open one, or record a recovery.

One open case per originator (the component, or the device where no component is bound)
and alarm kind: a repeated or flapping alarm attaches to the case already open, so a
manhole cover that tilts six times in a minute is one case with six alarm entries. A
recovery is recorded on the open case (the alarm is cleared, as IoT operators know from
ThingsBoard's lifecycle: raised, acknowledged, cleared); it does not close the case, which
still needs its on-site check. Which alarm kinds open cases, with which category and
urgency, is configuration (``AlarmRule``); kinds without a rule open nothing.

Pure: the caller gives the open cases it knows (from the database, in the transaction that
also consumes the outbox row) and carries out the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from alerts.cases.taxonomy import Category, Taxonomy

FLAPPING = "flapping"  # the sensor rules' own kind: the sensor's conditions keep toggling


@dataclass(frozen=True, slots=True)
class AlarmRule:
    """Alarms of ``kind`` from ``source`` open cases of ``category`` (None: the category of
    the sensor's component code), urgent as the category says unless ``urgent`` is set."""

    source: str  # "sensor" or "vehicle"
    kind: str
    category: str | None = None
    urgent: bool | None = None


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    id: int
    source: str
    device: str
    component: str | None
    kind: str
    raised: bool

    @property
    def originator(self) -> str:
        return self.component or self.device


class Decision(StrEnum):
    OPEN = "open"  # a new case
    ATTACH = "attach"  # a repeat of the open case's alarm
    CLEAR = "clear"  # the open case's alarm recovered
    IGNORE = "ignore"  # no case: a kind without a rule, or a recovery with no open case


@dataclass(frozen=True, slots=True)
class Intake:
    decision: Decision
    key: tuple[str, str]  # (originator, kind): one open case each
    case: int | None = None  # the open case it attaches to or clears
    category: Category | None = None  # for a new case
    urgent: bool = False
    why: str = ""


def rules_by_key(rules: list[AlarmRule]) -> dict[tuple[str, str], AlarmRule]:
    keyed: dict[tuple[str, str], AlarmRule] = {}
    for rule in rules:
        if (rule.source, rule.kind) in keyed:
            raise ValueError(f"two rules for {rule.source} alarm {rule.kind!r}")
        keyed[rule.source, rule.kind] = rule
    return keyed


def take(event: AlarmEvent, open_cases: Mapping[tuple[str, str], int], rules: Mapping[tuple[str, str], AlarmRule],
         taxonomy: Taxonomy) -> Intake:
    """What ``event`` does to the cases. ``open_cases``: (originator, kind) → case id of the
    cases still open."""
    if event.kind == FLAPPING:
        # not a problem of its own: it says the open case's alarm keeps toggling
        for (originator, kind), flapping_case in sorted(open_cases.items()):
            if originator == event.originator:
                return Intake(Decision.ATTACH, (originator, kind), flapping_case, why="flapping")
        return Intake(Decision.IGNORE, (event.originator, event.kind), why="flapping with no open case")
    key = (event.originator, event.kind)
    case = open_cases.get(key)
    if not event.raised:
        if case is None:
            return Intake(Decision.IGNORE, key, why="recovery with no open case")
        return Intake(Decision.CLEAR, key, case)
    if case is not None:
        return Intake(Decision.ATTACH, key, case, why="repeat")
    rule = rules.get((event.source, event.kind))
    if rule is None:
        return Intake(Decision.IGNORE, key, why=f"{event.source} alarms of kind {event.kind!r} open no case")
    category = (taxonomy.categories.get(rule.category) if rule.category is not None
                else taxonomy.category_of_component(event.component or ""))
    if category is None:
        named = rule.category or f"component {event.component or '(none)'}"
        return Intake(Decision.IGNORE, key, why=f"no category for {named} in the taxonomy")
    urgent = rule.urgent if rule.urgent is not None else category.urgent
    return Intake(Decision.OPEN, key, category=category, urgent=urgent)
