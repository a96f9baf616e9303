"""Deadlines in working time, on literal dates of China's published schedule: office hours
08:30–12:00 and 14:00–18:00 in Asia/Shanghai, statutory holidays and adjusted working days
from the schedule library, local overrides, and years whose schedule is not published."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, strategies as st

from alerts.cases.worktime import CalendarError, WorkCalendar

CITY = ZoneInfo("Asia/Shanghai")
CALENDAR = WorkCalendar(CITY)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CITY)


def test_a_working_day_is_seven_and_a_half_office_hours():
    assert CALENDAR.day_length == timedelta(hours=7, minutes=30)


def test_a_limit_that_crosses_lunch_resumes_at_two():
    # filed 11:00 on a Wednesday, 2 working hours: one before lunch, one after
    assert CALENDAR.add_hours(at("2025-09-24T11:00"), 2) == at("2025-09-24T15:00")
    assert CALENDAR.add_hours(at("2025-09-24T11:00"), 1) == at("2025-09-24T12:00")


def test_a_limit_over_a_plain_weekend_resumes_on_monday():
    # Friday 17:00 + 4 working hours: one on Friday, three from Monday 08:30
    assert CALENDAR.add_hours(at("2025-09-19T17:00"), 4) == at("2025-09-22T11:30")


def test_a_case_filed_on_the_friday_before_national_day_week_skips_the_holiday_and_works_the_make_up_sunday():
    # 2025: Sunday 28 September is an adjusted working day, 1–8 October are off.
    start = at("2025-09-26T16:00")
    # 5 working days = 37.5 h: Fri 2 h, Sun 28 7.5, Mon 29 7.5, Tue 30 7.5, Thu 9 Oct 7.5, Fri 10 Oct 5.5
    assert CALENDAR.add_days(start, 5) == at("2025-10-10T16:00")
    assert CALENDAR.day(date(2025, 9, 28)).reason == "adjusted working day"
    assert not CALENDAR.is_working_day(date(2025, 10, 1))
    assert CALENDAR.day(date(2025, 10, 1)).reason == "National Day"


def test_the_make_up_saturday_after_national_day_counts():
    # Saturday 11 October 2025 is an adjusted working day
    assert CALENDAR.add_hours(at("2025-10-10T17:00"), 4) == at("2025-10-11T11:30")


def test_a_start_outside_office_hours_counts_from_the_next_opening():
    assert CALENDAR.add_hours(at("2025-09-20T10:00"), 0) == at("2025-09-22T08:30")  # a Saturday
    assert CALENDAR.add_hours(at("2025-09-22T12:30"), 0.5) == at("2025-09-22T14:30")  # lunch
    assert CALENDAR.add_hours(at("2025-09-22T19:00"), 1) == at("2025-09-23T09:30")  # evening


def test_the_deadline_is_the_same_instant_whatever_zone_the_start_is_given_in():
    start = at("2025-09-24T11:00")
    assert CALENDAR.add_hours(start.astimezone(ZoneInfo("UTC")), 2) == at("2025-09-24T15:00")


def test_an_unpublished_year_falls_back_to_weekdays_and_says_the_deadline_is_provisional():
    start = at("2026-12-31T17:00")  # a Thursday; 2027's schedule is not published in the library
    due = CALENDAR.add_hours(start, 2)
    assert due == at("2027-01-01T09:30")  # New Year's Day taken as a plain Friday
    assert not CALENDAR.day(date(2027, 1, 1)).confirmed
    assert CALENDAR.provisional(start, due)
    assert not CALENDAR.provisional(at("2026-12-28T09:00"), at("2026-12-31T18:00"))


def test_local_overrides_win_over_the_schedule_and_the_fallback():
    city = WorkCalendar(CITY, overrides={date(2027, 1, 1): False, date(2025, 9, 27): True})
    assert city.add_hours(at("2026-12-31T17:00"), 2) == at("2027-01-04T09:30")
    assert city.day(date(2027, 1, 1)).confirmed
    assert city.add_hours(at("2025-09-26T17:00"), 2) == at("2025-09-27T09:30")  # an emergency working Saturday


def test_working_time_between_two_instants_counts_office_hours_only():
    assert CALENDAR.between(at("2025-09-26T16:00"), at("2025-09-29T09:00")) == timedelta(hours=10)  # 2 + 7.5 + 0.5
    assert CALENDAR.between(at("2025-09-29T09:00"), at("2025-09-26T16:00")) == -timedelta(hours=10)
    assert CALENDAR.between(at("2025-10-02T09:00"), at("2025-10-05T09:00")) == timedelta()


def test_office_hours_that_make_no_sense_are_refused():
    with pytest.raises(CalendarError, match="does not end after"):
        WorkCalendar(CITY, hours=((time(12), time(8, 30)),))
    with pytest.raises(CalendarError, match="overlaps"):
        WorkCalendar(CITY, hours=((time(8, 30), time(12)), (time(11), time(18))))
    with pytest.raises(CalendarError, match="at least one"):
        WorkCalendar(CITY, hours=())
    with pytest.raises(CalendarError, match="no working day"):
        WorkCalendar(CITY, schedule=lambda day: (False, "closed")).add_hours(at("2025-09-24T11:00"), 1)


STARTS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 20)).map(lambda d: d.replace(tzinfo=CITY))
DURATIONS = st.integers(min_value=0, max_value=200 * 60).map(lambda m: timedelta(minutes=m))


@given(STARTS, DURATIONS)
def test_adding_working_time_and_measuring_it_back_agree(start, working):
    due = CALENDAR.add(start, working)
    assert due >= start
    assert CALENDAR.between(start, due) == working


@given(STARTS, DURATIONS, DURATIONS)
def test_adding_in_two_steps_is_adding_at_once(start, first, second):
    assert CALENDAR.add(CALENDAR.add(start, first), second) == CALENDAR.add(start, first + second)
