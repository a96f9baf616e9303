"""Shift schedules: weekly slots in local time, night shifts, holidays, leave and swaps.

2025-09-29 is a Monday. China's 2025 National Day holiday ran 1–8 October, with Sunday
28 September worked in its place (调休).
"""

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from geofence.schedule import (
    ExtraDuty,
    Holiday,
    Leave,
    MakeupDay,
    Reassignment,
    Schedule,
    Shift,
    Slot,
    Swap,
    weekdays,
)
from tests.coverage_city import slots_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
MON, TUE, FRI, SAT, SUN = (date(2025, 9, 29), date(2025, 9, 30), date(2025, 9, 26),
                           date(2025, 9, 27), date(2025, 9, 28))


def at(text: str, zone: ZoneInfo = SHANGHAI) -> int:
    """Epoch ms of a local wall-clock time, e.g. "2025-09-29 08:00"."""
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000)


def spans(slots: list[Slot]) -> list[tuple[str, str, int, int]]:
    return [(s.collector, s.area, s.start_ms, s.end_ms) for s in slots]


OFFICE_HOURS = (
    Shift("c01", "anning-north", "Mon-Fri", time(7), time(11)),
    Shift("c01", "anning-north", "Mon-Fri", time(14), time(18)),
)


def test_weekday_spec():
    assert weekdays("Mon-Fri") == {0, 1, 2, 3, 4}
    assert weekdays("Sat,Sun") == {5, 6}
    assert weekdays("mon-wed, fri") == {0, 1, 2, 4}
    for bad in ("Fri-Mon", "Funday", ""):
        with pytest.raises(ValueError):
            weekdays(bad)


def test_a_weekday_has_a_morning_and_an_afternoon_slot_in_local_time():
    schedule = Schedule(OFFICE_HOURS)
    assert spans(slots_for(schedule, "c01", MON)) == [
        ("c01", "anning-north", at("2025-09-29 07:00"), at("2025-09-29 11:00")),
        ("c01", "anning-north", at("2025-09-29 14:00"), at("2025-09-29 18:00")),
    ]
    # 07:00 in Lanzhou is 23:00 UTC the evening before
    assert slots_for(schedule, "c01", MON)[0].start_ms == at("2025-09-28 23:00", ZoneInfo("UTC"))
    assert slots_for(schedule, "c01", date(2025, 9, 27)) == []  # Saturday
    assert slots_for(schedule, "nobody", MON) == []


def test_slot_at_finds_the_running_slot_and_nothing_between_slots():
    schedule = Schedule(OFFICE_HOURS)
    morning, afternoon = slots_for(schedule, "c01", MON)
    assert schedule.slot_at("c01", at("2025-09-29 07:00")) == morning
    assert schedule.slot_at("c01", at("2025-09-29 10:59")) == morning
    assert schedule.slot_at("c01", at("2025-09-29 11:00")) is None  # end is exclusive
    assert schedule.slot_at("c01", at("2025-09-29 12:30")) is None
    assert schedule.slot_at("c01", at("2025-09-29 17:00")) == afternoon
    assert schedule.slot_at("c02", at("2025-09-29 08:00")) is None


def test_slot_id_is_stable_and_names_collector_area_and_times():
    slot = slots_for(Schedule(OFFICE_HOURS), "c01", MON)[0]
    again = slots_for(Schedule(OFFICE_HOURS), "c01", MON)[0]
    assert slot.id == again.id == f"c01/anning-north/{slot.start_ms}/{slot.end_ms}"
    assert Slot.from_dict(slot.to_dict()) == slot
    with pytest.raises(ValueError):
        Slot("c01", "anning-north", slot.end_ms, slot.start_ms)


def test_a_night_slot_crossing_midnight_belongs_to_the_day_it_starts():
    schedule = Schedule((Shift("c07", "anning-north", "Fri", time(22), time(2)),))
    (night,) = slots_for(schedule, "c07", FRI)
    assert (night.start_ms, night.end_ms) == (at("2025-09-26 22:00"), at("2025-09-27 02:00"))
    assert slots_for(schedule, "c07", SAT) == []
    assert schedule.slot_at("c07", at("2025-09-26 23:59")) == night
    assert schedule.slot_at("c07", at("2025-09-27 01:30")) == night
    assert schedule.slot_at("c07", at("2025-09-27 02:00")) is None
    assert schedule.slot_at("c07", at("2025-09-26 21:59")) is None
    # a holiday on Saturday leaves Friday's night slot alone
    assert Schedule(schedule.shifts, (Holiday(SAT),)).slot_at(
        "c07", at("2025-09-27 01:30")) == night


def test_a_holiday_cancels_slots_starting_that_day_for_everyone():
    schedule = Schedule(
        (*OFFICE_HOURS, Shift("c07", "anning-south", "Mon-Sun", time(22), time(2))),
        (Holiday(date(2025, 10, 1), "National Day"),))
    assert schedule.slots_on(date(2025, 10, 1)) == []
    assert schedule.slot_at("c01", at("2025-10-01 08:00")) is None
    # the night shift that began on 30 September still runs into the holiday
    assert schedule.slot_at("c07", at("2025-10-01 01:00")).start_ms == at("2025-09-30 22:00")
    assert len(slots_for(schedule, "c01", date(2025, 10, 2))) == 2


def test_a_makeup_working_sunday_follows_the_weekday_it_replaces():
    schedule = Schedule(OFFICE_HOURS, (MakeupDay(SUN, follows=0),))
    assert [s.start_ms for s in slots_for(schedule, "c01", SUN)] == [
        at("2025-09-28 07:00"), at("2025-09-28 14:00")]
    assert slots_for(Schedule(OFFICE_HOURS), "c01", SUN) == []


def test_leave_for_a_day_or_for_one_slot():
    whole_day = Schedule(OFFICE_HOURS, (Leave("c01", MON),))
    assert slots_for(whole_day, "c01", MON) == []
    assert len(slots_for(whole_day, "c01", TUE)) == 2
    afternoon_off = Schedule(OFFICE_HOURS, (Leave("c01", MON, time(14)),))
    assert [s.start_ms for s in slots_for(afternoon_off, "c01", MON)] == [at("2025-09-29 07:00")]


def test_a_swap_hands_one_slot_to_a_colleague_for_that_date_only():
    schedule = Schedule(OFFICE_HOURS, (Swap(MON, giver="c01", taker="c02", start=time(14)),))
    assert spans(slots_for(schedule, "c02", MON)) == [
        ("c02", "anning-north", at("2025-09-29 14:00"), at("2025-09-29 18:00"))]
    assert [s.start_ms for s in slots_for(schedule, "c01", MON)] == [at("2025-09-29 07:00")]
    assert schedule.slot_at("c02", at("2025-09-29 15:00")).collector == "c02"
    assert schedule.slot_at("c01", at("2025-09-29 15:00")) is None
    assert slots_for(schedule, "c02", TUE) == []
    assert "c02" in schedule.collectors


def test_two_collectors_can_swap_both_ways_on_the_same_day():
    schedule = Schedule(
        (Shift("c01", "anning-north", "Mon", time(8), time(10)),
         Shift("c02", "anning-south", "Mon", time(14), time(16))),
        (Swap(MON, "c01", "c02"), Swap(MON, "c02", "c01")))
    assert spans(slots_for(schedule, "c01", MON)) == [
        ("c01", "anning-south", at("2025-09-29 14:00"), at("2025-09-29 16:00"))]
    assert spans(slots_for(schedule, "c02", MON)) == [
        ("c02", "anning-north", at("2025-09-29 08:00"), at("2025-09-29 10:00"))]


def test_leave_covered_by_a_swap_keeps_the_slot_with_the_colleague():
    covered = Schedule(OFFICE_HOURS, (Leave("c01", MON), Swap(MON, "c01", "c02")))
    assert slots_for(covered, "c01", MON) == []
    assert len(slots_for(covered, "c02", MON)) == 2
    taker_off = Schedule(OFFICE_HOURS, (Swap(MON, "c01", "c02"), Leave("c02", MON)))
    assert taker_off.slots_on(MON) == []


def test_assignments_differ_per_weekday_and_from_a_date():
    schedule = Schedule((
        Shift("c01", "anning-north", "Mon", time(8), time(10)),
        Shift("c01", "anning-south", "Tue", time(8), time(10), valid_until=date(2025, 10, 13)),
        Shift("c01", "anning-west", "Tue", time(8), time(10), valid_from=date(2025, 10, 14)),
    ))
    assert [s.area for s in slots_for(schedule, "c01", MON)] == ["anning-north"]
    assert [s.area for s in slots_for(schedule, "c01", TUE)] == ["anning-south"]
    assert [s.area for s in slots_for(schedule, "c01", date(2025, 10, 14))] == ["anning-west"]


def test_a_dated_reassignment_and_an_extra_duty():
    schedule = Schedule(OFFICE_HOURS, (
        Reassignment("c01", TUE, "anning-south", start=time(7)),
        ExtraDuty("c01", "anning-west", SAT, time(9), time(12)),
    ))
    assert [s.area for s in slots_for(schedule, "c01", TUE)] == ["anning-south", "anning-north"]
    assert spans(slots_for(schedule, "c01", SAT)) == [
        ("c01", "anning-west", at("2025-09-27 09:00"), at("2025-09-27 12:00"))]
    assert schedule.areas == {"anning-north", "anning-south", "anning-west"}


def test_the_zone_is_configurable():
    urumqi = ZoneInfo("Asia/Urumqi")  # UTC+6
    schedule = Schedule(OFFICE_HOURS, zone="Asia/Urumqi")
    assert slots_for(schedule, "c01", MON)[0].start_ms == at("2025-09-29 07:00", urumqi)
    assert schedule.local_date(at("2025-09-29 01:00", urumqi)) == MON


def test_slots_overlapping_a_window_and_withdrawn_slots():
    schedule = Schedule(OFFICE_HOURS)
    found = schedule.slots_overlapping(at("2025-09-29 10:30"), at("2025-09-29 14:01"))
    assert [s.start_ms for s in found] == [at("2025-09-29 07:00"), at("2025-09-29 14:00")]
    assert schedule.slots_overlapping(at("2025-09-29 11:00"), at("2025-09-29 14:00")) == []
    morning = found[0]
    assert schedule.is_scheduled(morning)
    assert not Schedule(OFFICE_HOURS, (Leave("c01", MON),)).is_scheduled(morning)


def test_bad_shifts_are_refused():
    with pytest.raises(ValueError):
        Shift("c01", "anning-north", "Mon", time(8), time(8))
    with pytest.raises(ValueError):
        Shift("c01", "anning-north", frozenset({7}), time(8), time(10))
    with pytest.raises(ValueError):
        Shift("c/01", "anning-north", "Mon", time(8), time(10))
    with pytest.raises(ValueError):
        Swap(MON, "c01", "c01")
    with pytest.raises(TypeError):
        Schedule(("not a shift",))
