"""Stage deadlines of the demo's example categories on literal dates: working-time limits
across lunch and National Day, natural-clock limits for emergencies, extensions, parked
time, warnings, and escalation of a case nobody acknowledged."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.cases.deadlines import Standing, escalation_due, remaining, resumed, stage_clock, standing
from alerts.cases.lifecycle import Stage
from alerts.cases.taxonomy import load_taxonomy
from alerts.cases.worktime import WorkCalendar

CITY = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(CITY)
TAXONOMY = load_taxonomy((Path(__file__).resolve().parents[3] / "tracker" / "devcity" / "taxonomy.toml").read_text("utf-8"))
REFUSE = TAXONOMY.category("E0102")  # 暴露垃圾: handle within 4 working hours
COVER = TAXONOMY.category("C0101")  # 上水井盖: urgent, 2 hours around the clock
STRUCTURE = TAXONOMY.category("E0101")  # 私搭乱建: handle within 5 working days


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CITY)


def test_exposed_refuse_dispatched_at_eleven_is_due_after_lunch_and_warns_before():
    clock = stage_clock(REFUSE, Stage.HANDLE, at("2025-09-24T11:00"), CALENDAR)
    assert clock.due == at("2025-09-24T17:00")  # 1 h before lunch, 3 h after
    assert clock.warn_at == at("2025-09-24T16:12")  # 80% of 4 h = 3 h 12 min of working time
    assert standing(clock, at("2025-09-24T16:00")) is Standing.ON_TIME
    assert standing(clock, at("2025-09-24T16:12")) is Standing.WARNING
    assert standing(clock, at("2025-09-24T17:00")) is Standing.OVERDUE
    assert remaining(clock, at("2025-09-24T12:30"), CALENDAR) == timedelta(hours=3)  # lunch does not count
    assert remaining(clock, at("2025-09-25T09:00"), CALENDAR) == -timedelta(hours=1, minutes=30)


def test_a_manhole_cover_counts_around_the_clock_even_on_national_day():
    clock = stage_clock(COVER, Stage.HANDLE, at("2025-10-01T23:30"), CALENDAR)
    assert clock.due == at("2025-10-02T01:30")
    assert remaining(clock, at("2025-10-02T01:00"), CALENDAR) == timedelta(minutes=30)


def test_an_illegal_structure_dispatched_before_national_day_is_due_after_it():
    clock = stage_clock(STRUCTURE, Stage.HANDLE, at("2025-09-26T16:00"), CALENDAR)
    assert clock.due == at("2025-10-10T16:00")  # 5 working days: 26th, make-up 28th, 29th, 30th, 9 Oct, 10 Oct
    assert not clock.provisional


def test_a_deadline_in_an_unpublished_year_is_provisional():
    assert stage_clock(STRUCTURE, Stage.HANDLE, at("2026-12-30T09:00"), CALENDAR).provisional
    assert not stage_clock(COVER, Stage.HANDLE, at("2026-12-31T23:00"), CALENDAR).provisional  # natural clock


def test_an_approved_extension_adds_working_time():
    clock = stage_clock(REFUSE, Stage.HANDLE, at("2025-09-24T11:00"), CALENDAR, extension=timedelta(hours=2))
    assert clock.due == at("2025-09-25T09:30")  # 17:00 + 2 h: one today, one from 08:30


def test_parked_time_does_not_count():
    clock = stage_clock(REFUSE, Stage.HANDLE, at("2025-09-24T11:00"), CALENDAR)
    # 2 of its 4 working hours ran before it was parked at 15:00; resumed at 10:00 the next
    # day, the other 2 run to noon
    after = resumed(clock, at("2025-09-24T15:00"), at("2025-09-25T10:00"), CALENDAR)
    assert after.due == at("2025-09-25T12:00")
    natural = resumed(stage_clock(COVER, Stage.HANDLE, at("2025-10-01T23:30"), CALENDAR),
                      at("2025-10-02T00:00"), at("2025-10-02T06:00"), CALENDAR)
    assert natural.due == at("2025-10-02T07:30")
    with pytest.raises(ValueError, match="cannot end before"):
        resumed(clock, at("2025-09-25T10:00"), at("2025-09-24T15:00"), CALENDAR)


def test_the_same_stored_facts_give_the_same_deadline_after_a_restart():
    first = stage_clock(REFUSE, Stage.VERIFY, at("2025-09-24T17:30"), CALENDAR)
    again = stage_clock(REFUSE, Stage.VERIFY, at("2025-09-24T17:30"), WorkCalendar(CITY))
    assert first == again


def test_a_case_nobody_acknowledged_escalates_after_its_window_and_one_acknowledged_in_time_does_not():
    reported, window = at("2025-09-24T11:00"), timedelta(minutes=15)
    assert escalation_due(reported, window, None) == at("2025-09-24T11:15")
    assert escalation_due(reported, window, at("2025-09-24T11:10")) is None
    assert escalation_due(reported, window, at("2025-09-24T11:20")) == at("2025-09-24T11:15")


def test_a_warning_share_outside_the_limit_is_refused():
    with pytest.raises(ValueError, match="warn_share"):
        stage_clock(REFUSE, Stage.HANDLE, at("2025-09-24T11:00"), CALENDAR, warn_share=0)
