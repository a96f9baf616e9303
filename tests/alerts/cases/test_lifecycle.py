"""The case lifecycle table: every allowed transition does what the table says, every
other (state, action) pair is refused with a reason and no new state, and actions refuse
to run without what they need."""

from __future__ import annotations

import itertools

import pytest

from alerts.cases.lifecycle import (
    LABELS_ZH,
    OPEN_STATES,
    TRANSITIONS,
    Action,
    CaseState,
    IllegalTransition,
    Stage,
    allowed,
    apply,
)

ALLOWED = sorted(TRANSITIONS, key=str)
REFUSED = sorted(set(itertools.product(CaseState, Action)) - set(TRANSITIONS), key=str)


@pytest.mark.parametrize(("state", "action"), ALLOWED)
def test_every_allowed_transition_goes_where_the_table_says(state, action):
    rule = TRANSITIONS[state, action]
    pending = action in (Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION)
    outcome = apply(state, action, rule.needs, extension_pending=pending)
    assert outcome.state == (rule.to or state)
    assert outcome.starts == rule.starts


@pytest.mark.parametrize(("state", "action"), REFUSED)
def test_every_other_transition_is_refused_naming_what_is_allowed(state, action):
    everything = {"reason", "department", "feedback", "collector", "hours", "grade"}
    with pytest.raises(IllegalTransition, match=f"cannot {action} a case that is {state}"):
        apply(state, action, everything, extension_pending=True)


def test_the_table_covers_a_good_share_of_pairs_and_refuses_the_rest():
    # guards the two parametrized tests above against an empty or total table
    assert 10 < len(ALLOWED) < len(REFUSED)


@pytest.mark.parametrize(("state", "action", "missing"), [
    (CaseState.REPORTED, Action.REJECT, "reason"),
    (CaseState.FILED, Action.DISPATCH, "department"),
    (CaseState.DISPATCHED, Action.HANDLE, "feedback"),
    (CaseState.HANDLED, Action.VERIFY, "collector"),
    (CaseState.VERIFYING, Action.REOPEN, "reason"),
    (CaseState.DISPATCHED, Action.REQUEST_EXTENSION, "hours, reason"),
])
def test_an_action_without_what_it_needs_is_refused(state, action, missing):
    with pytest.raises(IllegalTransition, match=f"{action} needs {missing}"):
        apply(state, action)


def test_an_extension_is_decided_only_while_one_is_pending_and_only_one_at_a_time():
    with pytest.raises(IllegalTransition, match="no extension is pending"):
        apply(CaseState.DISPATCHED, Action.APPROVE_EXTENSION)
    with pytest.raises(IllegalTransition, match="no extension is pending"):
        apply(CaseState.DISPATCHED, Action.REFUSE_EXTENSION, {"reason"})
    with pytest.raises(IllegalTransition, match="already pending"):
        apply(CaseState.DISPATCHED, Action.REQUEST_EXTENSION, {"reason", "hours"}, extension_pending=True)
    assert apply(CaseState.DISPATCHED, Action.APPROVE_EXTENSION, extension_pending=True).state is CaseState.DISPATCHED


def test_the_closed_loop_from_report_to_evaluation_with_a_return_and_a_failed_check():
    steps = [
        (Action.FILE, set(), CaseState.FILED, Stage.DISPATCH),
        (Action.DISPATCH, {"department"}, CaseState.DISPATCHED, Stage.HANDLE),
        (Action.RETURN, {"reason"}, CaseState.RETURNED, Stage.DISPATCH),
        (Action.DISPATCH, {"department"}, CaseState.DISPATCHED, Stage.HANDLE),
        (Action.HANDLE, {"feedback"}, CaseState.HANDLED, Stage.VERIFY),
        (Action.VERIFY, {"collector"}, CaseState.VERIFYING, None),
        (Action.REOPEN, {"reason"}, CaseState.DISPATCHED, Stage.HANDLE),
        (Action.PARK, {"reason"}, CaseState.PARKED, None),
        (Action.RESUME, set(), CaseState.DISPATCHED, Stage.HANDLE),
        (Action.HANDLE, {"feedback"}, CaseState.HANDLED, Stage.VERIFY),
        (Action.VERIFY, {"collector"}, CaseState.VERIFYING, None),
        (Action.CLOSE, set(), CaseState.CLOSED, None),
        (Action.EVALUATE, {"grade"}, CaseState.CLOSED, None),
    ]
    state = CaseState.REPORTED
    for action, given, expected, starts in steps:
        outcome = apply(state, action, given)
        assert (outcome.state, outcome.starts) == (expected, starts), action
        state = outcome.state
    assert state not in OPEN_STATES


def test_finished_cases_allow_nothing_but_an_evaluation():
    assert allowed(CaseState.REJECTED) == []
    assert allowed(CaseState.CLOSED) == [Action.EVALUATE]
    assert allowed(CaseState.REPORTED) == [Action.FILE, Action.REJECT]


def test_every_state_and_action_has_a_chinese_label():
    assert set(CaseState) | set(Action) <= set(LABELS_ZH)
