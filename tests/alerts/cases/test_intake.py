"""Alarms to cases: a flapping manhole alarm opens one case, not six; a recovery clears the
alarm on its case; kinds without a rule open nothing; vehicles are keyed by device."""

from __future__ import annotations

from itertools import count
from pathlib import Path

import pytest

from alerts.cases.intake import AlarmEvent, AlarmRule, Decision, rules_by_key, take
from alerts.cases.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy((Path(__file__).resolve().parents[3] / "tracker" / "devcity" / "taxonomy.toml").read_text("utf-8"))
RULES = rules_by_key([
    AlarmRule("sensor", "tilt"),  # the cover's own category, from its component code
    AlarmRule("sensor", "full", category="C0306"),
    AlarmRule("sensor", "waterlog", category="E0404"),
    AlarmRule("vehicle", "overspeed", category="E0406", urgent=False),
])
COVER = "6201050101000007"  # 0101 上水井盖
_ids = count(1)


def alarm(kind: str = "tilt", raised: bool = True, component: str | None = COVER, source: str = "sensor",
          device: str = "mh-7") -> AlarmEvent:
    return AlarmEvent(next(_ids), source, device, component, kind, raised)


def run(events: list[AlarmEvent]) -> tuple[dict, list]:
    """Carry out the decisions as the consumer would: the open cases and what happened."""
    open_cases: dict[tuple[str, str], int] = {}
    cases = count(100)
    log = []
    for event in events:
        intake = take(event, open_cases, RULES, TAXONOMY)
        if intake.decision is Decision.OPEN:
            open_cases[intake.key] = next(cases)
        log.append((intake.decision, intake.case if intake.case is not None else open_cases.get(intake.key)))
    return open_cases, log


def test_a_flapping_manhole_alarm_opens_one_case_not_six():
    events = [alarm(raised=i % 2 == 0) for i in range(11)] + [alarm("flapping")]
    open_cases, log = run(events)
    assert list(open_cases.values()) == [100]
    assert [d for d, _ in log].count(Decision.OPEN) == 1
    assert [d for d, _ in log].count(Decision.ATTACH) == 6  # five repeats and the flapping notice
    assert {case for _, case in log} == {100}


def test_a_recovery_clears_the_alarm_on_its_case_and_a_stray_one_opens_nothing():
    open_cases, log = run([alarm(raised=False), alarm(), alarm(raised=False)])
    assert [d for d, _ in log] == [Decision.IGNORE, Decision.OPEN, Decision.CLEAR]
    assert log[2][1] == 100 and open_cases == {(COVER, "tilt"): 100}


def test_the_new_case_takes_its_category_and_urgency_from_the_rule_or_the_component():
    cover = take(alarm(), {}, RULES, TAXONOMY)
    assert (cover.category.code, cover.urgent) == ("C0101", True)
    speeding = take(alarm("overspeed", source="vehicle", component=None, device="jt013901050001"), {}, RULES, TAXONOMY)
    assert (speeding.decision, speeding.key, speeding.category.code, speeding.urgent) == \
        (Decision.OPEN, ("jt013901050001", "overspeed"), "E0406", False)


def test_different_kinds_and_originators_are_different_cases():
    open_cases, _ = run([alarm(), alarm("waterlog"), alarm(component="6201050102000009", device="mh-9")])
    assert sorted(open_cases) == [("6201050101000007", "tilt"), ("6201050101000007", "waterlog"),
                                  ("6201050102000009", "tilt")]


@pytest.mark.parametrize(("event", "why"), [
    (AlarmEvent(1, "sensor", "mh-7", COVER, "low_battery", True), "open no case"),
    (AlarmEvent(2, "sensor", "bin-3", None, "tilt", True), "no category for component (none)"),
    (AlarmEvent(3, "sensor", "mh-7", COVER, "flapping", True), "flapping with no open case"),
])
def test_what_opens_no_case_says_why(event, why):
    intake = take(event, {}, RULES, TAXONOMY)
    assert intake.decision is Decision.IGNORE and why in intake.why


def test_two_rules_for_one_kind_are_refused():
    with pytest.raises(ValueError, match="two rules"):
        rules_by_key([AlarmRule("sensor", "tilt"), AlarmRule("sensor", "tilt", category="C0101")])
