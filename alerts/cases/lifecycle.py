"""The case lifecycle (案卷流转) as data: states, actions, and the one table of what each
action may do from each state.

    reported ──file──▶ filed ──dispatch──▶ dispatched ──handle──▶ handled ──verify──▶ verifying ──close──▶ closed
        │                 ▲                  │  ▲  │                                     │                    │
        └─reject─▶ rejected                  │  │  └─park─▶ parked ─resume─┘              └─reopen─▶ dispatched  evaluate
                          └────return────────┘  └─(extension: request, approve, refuse; the state stays)

An action names what it needs (a reason, a department, feedback…) and the stage it starts:
the stage whose limit runs from then on. ``apply`` checks the action against the table and
its requirements and returns the new state, or raises ``IllegalTransition`` and changes
nothing; who may act is the service's business (roles and district), not this table's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CaseState(StrEnum):
    REPORTED = "reported"  # 上报: waiting to be filed or rejected
    REJECTED = "rejected"  # 不予立案
    FILED = "filed"  # 立案: waiting for dispatch
    DISPATCHED = "dispatched"  # 派遣: with a department
    RETURNED = "returned"  # 回退: the department sent it back to the dispatcher
    PARKED = "parked"  # 挂账: cannot be handled now; its clock stops
    HANDLED = "handled"  # 处置: the department reported it done
    VERIFYING = "verifying"  # 核查: a collector is to check on site
    CLOSED = "closed"  # 结案


class Stage(StrEnum):
    """The stages whose time limits a category sets."""

    FILE = "file"  # reported → filed/rejected
    DISPATCH = "dispatch"  # filed/returned → dispatched
    HANDLE = "handle"  # dispatched → handled
    VERIFY = "verify"  # handled → verified on site
    CLOSE = "close"  # verified → closed


class Action(StrEnum):
    FILE = "file"
    REJECT = "reject"
    DISPATCH = "dispatch"
    RETURN = "return"
    REQUEST_EXTENSION = "request_extension"
    APPROVE_EXTENSION = "approve_extension"
    REFUSE_EXTENSION = "refuse_extension"
    PARK = "park"
    RESUME = "resume"
    HANDLE = "handle"
    VERIFY = "verify"  # send a collector to check on site
    CLOSE = "close"  # the check found it done
    REOPEN = "reopen"  # the check found it not done (返工): back to the department
    EVALUATE = "evaluate"


LABELS_ZH = {
    CaseState.REPORTED: "待立案", CaseState.REJECTED: "不予立案", CaseState.FILED: "待派遣",
    CaseState.DISPATCHED: "处置中", CaseState.RETURNED: "已回退", CaseState.PARKED: "挂账",
    CaseState.HANDLED: "待核查", CaseState.VERIFYING: "核查中", CaseState.CLOSED: "已结案",
    Action.FILE: "立案", Action.REJECT: "不予立案", Action.DISPATCH: "派遣", Action.RETURN: "回退",
    Action.REQUEST_EXTENSION: "申请延期", Action.APPROVE_EXTENSION: "批准延期", Action.REFUSE_EXTENSION: "驳回延期",
    Action.PARK: "挂账", Action.RESUME: "恢复处置", Action.HANDLE: "处置反馈", Action.VERIFY: "派发核查",
    Action.CLOSE: "结案", Action.REOPEN: "核查不通过", Action.EVALUATE: "评价",
}


@dataclass(frozen=True, slots=True)
class Rule:
    to: CaseState | None  # None: the state stays
    needs: frozenset[str] = frozenset()  # what the action must carry: reason, department, feedback, collector…
    starts: Stage | None = None  # the stage whose clock starts (None: the running one goes on)


def _rule(to: CaseState | None, *needs: str, starts: Stage | None = None) -> Rule:
    return Rule(to, frozenset(needs), starts)


# (state, action) → rule. Anything not here is refused.
TRANSITIONS: dict[tuple[CaseState, Action], Rule] = {
    (CaseState.REPORTED, Action.FILE): _rule(CaseState.FILED, starts=Stage.DISPATCH),
    (CaseState.REPORTED, Action.REJECT): _rule(CaseState.REJECTED, "reason"),
    (CaseState.FILED, Action.DISPATCH): _rule(CaseState.DISPATCHED, "department", starts=Stage.HANDLE),
    (CaseState.RETURNED, Action.DISPATCH): _rule(CaseState.DISPATCHED, "department", starts=Stage.HANDLE),
    (CaseState.DISPATCHED, Action.RETURN): _rule(CaseState.RETURNED, "reason", starts=Stage.DISPATCH),
    (CaseState.DISPATCHED, Action.REQUEST_EXTENSION): _rule(None, "reason", "hours"),
    (CaseState.DISPATCHED, Action.APPROVE_EXTENSION): _rule(None),
    (CaseState.DISPATCHED, Action.REFUSE_EXTENSION): _rule(None, "reason"),
    (CaseState.DISPATCHED, Action.PARK): _rule(CaseState.PARKED, "reason"),
    (CaseState.PARKED, Action.RESUME): _rule(CaseState.DISPATCHED, starts=Stage.HANDLE),
    (CaseState.DISPATCHED, Action.HANDLE): _rule(CaseState.HANDLED, "feedback", starts=Stage.VERIFY),
    (CaseState.HANDLED, Action.VERIFY): _rule(CaseState.VERIFYING, "collector"),
    (CaseState.VERIFYING, Action.CLOSE): _rule(CaseState.CLOSED),
    (CaseState.VERIFYING, Action.REOPEN): _rule(CaseState.DISPATCHED, "reason", starts=Stage.HANDLE),
    (CaseState.CLOSED, Action.EVALUATE): _rule(None, "grade"),
}

OPEN_STATES = frozenset(set(CaseState) - {CaseState.REJECTED, CaseState.CLOSED})


class IllegalTransition(ValueError):
    """The action is not allowed from the case's state, or lacks what it needs."""


@dataclass(frozen=True, slots=True)
class Outcome:
    state: CaseState
    starts: Stage | None


def allowed(state: CaseState) -> list[Action]:
    """The actions the table allows from ``state``, in the table's order."""
    return [action for (source, action) in TRANSITIONS if source == state]


def apply(state: CaseState, action: Action, given: set[str] | frozenset[str] = frozenset(), *,
          extension_pending: bool = False) -> Outcome:
    """The state after ``action`` from ``state`` with the fields ``given``; raises
    ``IllegalTransition`` (saying why, in terms a dispatcher reads) if it is not allowed.
    An extension is decided only while one is pending, and only one may be pending."""
    rule = TRANSITIONS.get((state, action))
    if rule is None:
        can = ", ".join(allowed(state)) or "nothing: the case is finished"
        raise IllegalTransition(f"cannot {action} a case that is {state} (allowed: {can})")
    missing = sorted(rule.needs - set(given))
    if missing:
        raise IllegalTransition(f"{action} needs {', '.join(missing)}")
    if action in (Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION) and not extension_pending:
        raise IllegalTransition(f"cannot {action}: no extension is pending")
    if action is Action.REQUEST_EXTENSION and extension_pending:
        raise IllegalTransition("an extension is already pending")
    return Outcome(rule.to if rule.to is not None else state, rule.starts)
