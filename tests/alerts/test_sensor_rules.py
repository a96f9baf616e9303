"""Sensor alarm rules, driven by literal event times.

Cover mh-620105-0007 watches water-supply manhole cover 6201050101000007 in Anning; the
scenarios start at 10:00:00 Beijing time on 23 November 2024.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from alerts.sensor_rules import (
    FLAPPING,
    ComponentAlarm,
    SensorRuleParams,
    SensorState,
    advance,
    resumed,
    silent_sensors,
    update,
)
from protocols.sensor import MessageKind, SensorReading, SensorType

DEVICE = "mh-620105-0007"
COMPONENT = "6201050101000007"
T0 = 1_732_327_200_000  # 10:00:00
SECOND = 1_000
MINUTE = 60 * SECOND
DEFAULTS = SensorRuleParams()


def at(seconds: float) -> int:
    return T0 + round(seconds * SECOND)


def record(
    t_ms: int, kind: str = "status", sensor: str = "manhole", alarm: str | None = None, **readings
) -> SensorReading:
    return SensorReading(
        DEVICE, readings.pop("component", COMPONENT), t_ms, t_ms + 800, MessageKind(kind), SensorType(sensor),
        alarm=alarm, **readings,
    )


def feed(*steps, params: SensorRuleParams = DEFAULTS, state: SensorState | None = None):
    """Apply records, and ints as watchdog ticks; return the final state and every event."""
    state = state or SensorState()
    events = []
    for step in steps:
        if isinstance(step, int):
            state, new = advance(state, step, params)
        else:
            state, new = update(state, step, params)
        events += new
    return state, events


def events_of(*steps, params: SensorRuleParams = DEFAULTS) -> list[ComponentAlarm]:
    return feed(*steps, params=params)[1]


def alarm(kind: str, t_ms: int, raised: bool, value: float | None, detail: str) -> ComponentAlarm:
    return ComponentAlarm(DEVICE, COMPONENT, kind, t_ms, raised, value, detail)


def tilt_detail(angle: float, installed: float = 0.0) -> str:
    return f"tilt {angle:g}° against installed {installed:g}° (threshold 10°)"


# --- tilt ----------------------------------------------------------------------------------


def test_cover_lifted_at_ten_and_still_tilted_three_seconds_later_raises_one_alarm_dated_ten():
    assert events_of(
        record(at(0), "alarm", alarm="tilt", tilt=35.0),
        record(at(3), "status", tilt=35.0),
    ) == [alarm("tilt", at(0), True, 35.0, tilt_detail(35.0))]


def test_truck_rocking_the_cover_for_under_a_second_raises_nothing():
    assert events_of(
        record(at(0), "alarm", alarm="tilt", tilt=24.0),
        record(at(0.8), "recovery", alarm="tilt", tilt=0.5),
        at(10),
    ) == []


def test_lifted_cover_that_never_reports_again_is_raised_by_the_watchdog_after_two_seconds():
    assert events_of(record(at(0), "alarm", alarm="tilt", tilt=61.0), at(2)) == [
        alarm("tilt", at(0), True, 61.0, tilt_detail(61.0))
    ]


def test_watchdog_a_millisecond_short_of_the_debounce_raises_nothing():
    assert events_of(record(at(0), "alarm", alarm="tilt", tilt=61.0), at(2) - 1) == []


def test_cover_put_back_clears_the_alarm_at_the_recovery_time():
    assert events_of(
        record(at(0), "alarm", alarm="tilt", tilt=40.0),
        at(5),
        record(at(300), "recovery", alarm="tilt", tilt=0.3),
    )[-1] == alarm("tilt", at(300), False, 0.3, tilt_detail(0.3))


def test_tilt_lasting_five_seconds_between_two_reports_is_raised_then_cleared():
    assert [(e.t_ms, e.raised) for e in events_of(
        record(at(0), "alarm", alarm="tilt", tilt=40.0),
        record(at(5), "recovery", alarm="tilt", tilt=1.0),
    )] == [(at(0), True), (at(5), False)]


def test_cover_installed_at_five_degrees_tolerates_fourteen():
    params = SensorRuleParams(installed_tilt_deg=5.0)
    assert events_of(record(at(0), tilt=14.0), record(at(3), tilt=14.0), params=params) == []


def test_cover_installed_at_five_degrees_alarms_at_sixteen():
    params = SensorRuleParams(installed_tilt_deg=5.0)
    assert events_of(record(at(0), tilt=16.0), record(at(3), tilt=16.0), params=params) == [
        alarm("tilt", at(0), True, 16.0, tilt_detail(16.0, 5.0))
    ]


def test_beyond_ninety_degrees_is_always_an_alarm_whatever_the_installed_angle():
    params = SensorRuleParams(installed_tilt_deg=85.0)
    assert [e.raised for e in events_of(record(at(0), tilt=92.0), at(2), params=params)] == [True]


def test_cover_that_only_says_tilt_alarm_is_believed_after_the_debounce():
    assert events_of(record(at(0), "alarm", alarm="tilt"), at(2)) == [
        alarm("tilt", at(0), True, None, "tilt reported by the sensor")
    ]


def test_tilt_reading_within_threshold_overrules_the_covers_own_alarm():
    assert events_of(record(at(0), "alarm", alarm="tilt", tilt=3.0), at(60)) == []


def test_without_debounce_a_tilt_is_raised_at_once():
    params = SensorRuleParams(tilt_debounce_ms=0)
    assert events_of(record(at(0), tilt=30.0), params=params) == [alarm("tilt", at(0), True, 30.0, tilt_detail(30.0))]


# --- bins, waterlogging, battery, smoke, gas, own codes -----------------------------------------


def test_bin_alarm_at_less_than_twenty_percent_free_and_clear_once_emptied_below_seventy():
    assert [(e.kind, e.t_ms, e.raised) for e in events_of(
        record(at(0), sensor="bin", fill=79.0),
        record(at(600), sensor="bin", fill=80.0),
        record(at(1200), sensor="bin", fill=75.0),
        record(at(1800), sensor="bin", fill=12.0),
    )] == [("full", at(600), True), ("full", at(1800), False)]


def test_standing_water_over_fifteen_centimetres_is_waterlogging_until_it_falls_to_ten():
    assert [(e.kind, e.t_ms, e.raised, e.value) for e in events_of(
        record(at(0), sensor="waterlog", level=15.0),
        record(at(60), sensor="waterlog", level=15.5),
        record(at(120), sensor="waterlog", level=12.0),
        record(at(180), sensor="waterlog", level=10.0),
    )] == [("waterlog", at(60), True, 15.5), ("waterlog", at(180), False, 10.0)]


def test_battery_below_twenty_percent_alarms_and_clears_from_thirty():
    assert [(e.t_ms, e.raised) for e in events_of(
        record(at(0), bat=19.0),
        record(at(3600), bat=25.0),
        record(at(7200), bat=100.0),
    )] == [(at(0), True), (at(7200), False)]


def test_low_battery_record_without_a_reading_raises_low_battery():
    assert events_of(record(at(0), "low_battery")) == [
        alarm("low_battery", at(0), True, None, "low battery reported by the sensor")
    ]


def test_smoke_in_the_well_alarms_at_once_and_clears_when_gone():
    assert [(e.kind, e.raised) for e in events_of(
        record(at(0), "alarm", alarm="smoke", smoke=True),
        record(at(90), "recovery", alarm="smoke", smoke=False),
    )] == [("smoke", True), ("smoke", False)]


def test_gas_without_a_threshold_here_follows_the_cover():
    assert [(e.kind, e.raised, e.value) for e in events_of(
        record(at(0), "alarm", alarm="gas", gas=1250.0),
        record(at(600), "recovery", alarm="gas", gas=80.0),
    )] == [("gas", True, 1250.0), ("gas", False, 80.0)]


def test_gas_under_the_configured_threshold_overrules_the_covers_alarm():
    params = SensorRuleParams(gas_alarm_ppm=1000.0)
    assert events_of(record(at(0), "alarm", alarm="gas", gas=900.0), params=params) == []


def test_manhole_water_over_the_configured_threshold_alarms():
    params = SensorRuleParams(water_alarm_cm=150.0, water_clear_cm=120.0)
    assert events_of(record(at(0), water=151.0), params=params) == [
        alarm("water", at(0), True, 151.0, "water 151 cm in the well")
    ]


def test_component_alarm_of_its_own_is_raised_and_cleared_as_the_sensor_says():
    assert [(e.kind, e.t_ms, e.raised) for e in events_of(
        record(at(0), "alarm", sensor="generic", alarm="lamp_fault"),
        record(at(1800), "recovery", sensor="generic", alarm="lamp_fault"),
    )] == [("lamp_fault", at(0), True), ("lamp_fault", at(1800), False)]


def test_a_quiet_first_report_raises_and_clears_nothing():
    assert events_of(record(at(0), tilt=0.4, bat=87.0, smoke=False, water=3.0, gas=2.0)) == []


def test_repeated_alarm_records_raise_once():
    assert len(events_of(*(record(at(s), sensor="bin", fill=95.0) for s in range(0, 3600, 600)))) == 1


# --- flapping ----------------------------------------------------------------------------


def lift_and_replace(start_s: float) -> list:
    """The cover is lifted for 10 s: one raise and one clear."""
    return [
        record(at(start_s), "alarm", alarm="tilt", tilt=30.0),
        record(at(start_s + 10), "recovery", alarm="tilt", tilt=0.0),
    ]


def test_cover_lifted_three_times_in_three_minutes_flaps_instead_of_alarming_a_sixth_time():
    steps = lift_and_replace(0) + lift_and_replace(60) + lift_and_replace(120)
    assert [(e.kind, e.t_ms, e.raised) for e in events_of(*steps)] == [
        ("tilt", at(0), True), ("tilt", at(10), False),
        ("tilt", at(60), True), ("tilt", at(70), False),
        ("tilt", at(120), True),
        (FLAPPING, at(130), True),
    ]


def test_flapping_alarm_says_what_flapped():
    steps = lift_and_replace(0) + lift_and_replace(60) + lift_and_replace(120)
    assert events_of(*steps)[-1] == alarm(FLAPPING, at(130), True, 6.0, "tilt changed 6 times within 10 min")


def test_flapping_cover_is_not_re_raised_while_it_keeps_flapping():
    steps = lift_and_replace(0) + lift_and_replace(60) + lift_and_replace(120)
    _, before = feed(*steps)
    assert len(events_of(*steps, *lift_and_replace(300), at(600))) == len(before)


def test_flapping_settles_fifteen_minutes_after_the_last_change():
    steps = lift_and_replace(0) + lift_and_replace(60) + lift_and_replace(120)
    quiet = at(130) + 15 * MINUTE
    assert [(e.kind, e.t_ms, e.raised) for e in events_of(*steps, quiet)][-2:] == [
        ("tilt", quiet, False), (FLAPPING, quiet, False)
    ]


def test_flapping_that_ends_lifted_leaves_the_tilt_alarm_raised():
    steps = lift_and_replace(0) + lift_and_replace(60) + lift_and_replace(120)
    steps += [record(at(200), "alarm", alarm="tilt", tilt=45.0)]
    quiet = at(200) + 15 * MINUTE
    state, events = feed(*steps, quiet)
    assert (events[-1].kind, events[-1].raised, state.conditions["tilt"].emitted) == (FLAPPING, False, True)


def test_changes_spread_over_more_than_ten_minutes_are_not_flapping():
    steps = [s for start in range(0, 6 * 300, 300) for s in lift_and_replace(start)]
    assert FLAPPING not in {e.kind for e in events_of(*steps)}


# --- state handling ----------------------------------------------------------------------


def test_record_older_than_the_last_applied_changes_nothing():
    state, _ = feed(record(at(60), sensor="bin", fill=10.0))
    assert update(state, record(at(30), sensor="bin", fill=99.0), DEFAULTS) == (state, [])


def test_state_of_one_sensor_refuses_another_sensors_record():
    state, _ = feed(record(at(0), bat=90.0))
    other = SensorReading("mh-620105-0008", COMPONENT, at(1), at(2), MessageKind.STATUS, SensorType.MANHOLE, bat=90.0)
    with pytest.raises(ValueError):
        update(state, other, DEFAULTS)


def test_alarm_carries_the_component_the_sensor_now_reports():
    assert events_of(record(at(0), bat=5.0, component="6201050102000003"))[0].component == "6201050102000003"


def test_update_leaves_the_given_state_untouched():
    state, _ = feed(record(at(0), "alarm", alarm="tilt", tilt=30.0))
    before = dict(state.conditions)
    update(state, record(at(3), tilt=30.0), DEFAULTS)
    assert state.conditions == before


def test_advancing_a_fresh_state_does_nothing():
    assert advance(SensorState(), at(0), DEFAULTS) == (SensorState(), [])


def test_alarm_identity_is_device_and_kind():
    assert alarm("tilt", at(0), True, 30.0, "").key == (DEVICE, "tilt")


@pytest.mark.parametrize(
    "bad",
    [
        {"tilt_threshold_deg": 0.0},
        {"tilt_threshold_deg": 95.0},
        {"tilt_debounce_ms": -1},
        {"bin_clear_pct": 90.0},
        {"low_battery_pct": 40.0},
        {"gas_alarm_ppm": 100.0, "gas_clear_ppm": 200.0},
        {"flap_toggles": 1},
    ],
)
def test_inconsistent_thresholds_are_refused(bad):
    with pytest.raises(ValueError):
        SensorRuleParams(**bad)


# --- silent sensors ------------------------------------------------------------------------


def test_sensors_silent_longer_than_the_timeout_longest_silent_first():
    last_seen = {"mh-0001": at(0), "bin-0412": at(-600), "wl-0031": at(3000), "mh-0002": at(-600)}
    assert silent_sensors(last_seen, at(3600), 30 * MINUTE) == ["bin-0412", "mh-0002", "mh-0001"]


def test_sensor_silent_for_exactly_the_timeout_is_not_yet_silent():
    assert silent_sensors({"mh-0001": at(0)}, at(1800), 30 * MINUTE) == []


def test_silence_timeout_must_be_positive():
    with pytest.raises(ValueError):
        silent_sensors({}, at(0), 0)


# --- surviving a restart -------------------------------------------------------------------


def through_the_database(state: SensorState) -> SensorState:
    """Saved and read back as PostgreSQL's jsonb would give it: object keys reordered."""
    return SensorState.from_dict(json.loads(json.dumps(state.to_dict(), sort_keys=True)))


def test_a_tilt_raised_before_a_restart_is_cleared_by_the_recovery_after_it():
    state, raised = feed(record(at(0), "alarm", alarm="tilt", tilt=40.0), record(at(3), tilt=40.0))
    _, after = feed(record(at(600), "recovery", alarm="tilt", tilt=0.5), state=through_the_database(state))
    assert (raised, after) == (
        [alarm("tilt", at(0), True, 40.0, tilt_detail(40.0))],
        [alarm("tilt", at(600), False, 0.5, tilt_detail(0.5))],
    )


def test_a_tilt_being_debounced_across_a_restart_is_raised_once_dated_from_its_onset():
    state, before = feed(record(at(0), "alarm", alarm="tilt", tilt=61.0), at(1))
    restored = through_the_database(state)
    _, after = feed(at(2), at(3), record(at(4), tilt=61.0), state=restored)
    assert (before, after) == ([], [alarm("tilt", at(0), True, 61.0, tilt_detail(61.0))])


def test_a_passing_truck_across_a_restart_is_still_passing_traffic():
    state, _ = feed(record(at(0), "alarm", alarm="tilt", tilt=24.0))
    assert feed(record(at(0.8), "recovery", alarm="tilt", tilt=0.5), at(10), state=through_the_database(state))[1] == []


def test_flapping_across_a_restart_settles_fifteen_minutes_after_the_last_change():
    state, _ = feed(*lift_and_replace(0), *lift_and_replace(60), *lift_and_replace(120))
    quiet = at(130) + 15 * MINUTE
    assert [(e.kind, e.t_ms, e.raised) for e in feed(quiet - 1, quiet, state=through_the_database(state))[1]] == [
        ("tilt", quiet, False), (FLAPPING, quiet, False)
    ]


def test_conditions_keep_their_order_through_a_store_that_sorts_keys():
    state, _ = feed(record(at(0), sensor="bin", fill=95.0, bat=10.0), record(at(1), "alarm", sensor="bin", alarm="lamp_fault"))
    assert list(through_the_database(state).conditions) == list(state.conditions) == ["full", "low_battery", "lamp_fault"]


@pytest.mark.parametrize("broken", [
    {},
    {"version": 2, "device": DEVICE, "component": COMPONENT, "last_t_ms": None, "conditions": [], "flapping_raised": False},
    {"version": 1, "device": DEVICE, "component": COMPONENT, "last_t_ms": "10:00", "conditions": [], "flapping_raised": False},
    {"version": 1, "device": DEVICE, "component": "62010501", "last_t_ms": None, "conditions": [], "flapping_raised": False},
    {"version": 1, "device": DEVICE, "component": COMPONENT, "last_t_ms": None, "conditions": [["tilt", {}]], "flapping_raised": False},
    {"version": 1, "device": DEVICE, "component": COMPONENT, "last_t_ms": None, "conditions": {"tilt": {}}, "flapping_raised": False},
    {"version": 1, "device": DEVICE, "component": COMPONENT, "last_t_ms": None, "conditions": []},
    [1, 2],
])
def test_a_saved_state_this_code_would_not_write_is_refused(broken):
    with pytest.raises(ValueError):
        SensorState.from_dict(broken)


def test_a_state_resumed_from_the_outbox_clears_on_the_next_recovery():
    state = resumed(DEVICE, COMPONENT, {"tilt": 40.0, "lamp_fault": None}, None)
    _, events = feed(
        record(at(600), "recovery", alarm="tilt", tilt=0.5),
        record(at(660), "recovery", sensor="generic", alarm="lamp_fault"),
        state=state,
    )
    assert [(e.kind, e.t_ms, e.raised) for e in events] == [("tilt", at(600), False), ("lamp_fault", at(660), False)]


def test_flapping_resumed_from_the_outbox_is_cleared_by_the_next_tick():
    state = resumed(DEVICE, COMPONENT, {FLAPPING: 6.0}, None)
    assert [(e.kind, e.t_ms, e.raised) for e in advance(state, at(0), DEFAULTS)[1]] == [(FLAPPING, at(0), False)]


# Records of one cover over a day, with ticks between them: any mix of kinds and readings
# the decoder accepts, now and then one older than the last.
_PARAMS = st.sampled_from([
    DEFAULTS,
    SensorRuleParams(flap_toggles=3, flap_window_ms=2 * MINUTE, flap_quiet_ms=3 * MINUTE, water_alarm_cm=150.0,
                     water_clear_cm=120.0, gas_alarm_ppm=1000.0),
    SensorRuleParams(tilt_debounce_ms=0, flap_toggles=2, flap_window_ms=MINUTE, flap_quiet_ms=MINUTE),
])
_KINDS = [("status", None), ("alarm", "tilt"), ("recovery", "tilt"), ("alarm", "gas"), ("recovery", "gas"),
          ("alarm", "lamp_fault"), ("recovery", "lamp_fault"), ("low_battery", None)]


@st.composite
def _cover_day(draw) -> list:
    t = T0
    steps: list = []
    for _ in range(draw(st.integers(0, 30))):
        t += draw(st.sampled_from([0, 500, 1_000, 1_999, 2_000, 3 * SECOND, MINUTE, 16 * MINUTE]))
        if draw(st.booleans()):
            steps.append(t)
            continue
        kind, code = draw(st.sampled_from(_KINDS))
        readings = {}
        if draw(st.booleans()):
            readings["tilt"] = draw(st.sampled_from([0.0, 9.5, 10.5, 35.0, 95.0]))
        if draw(st.booleans()):
            readings["gas"] = draw(st.sampled_from([0.0, 999.0, 1500.0]))
        if draw(st.booleans()):
            readings["water"] = draw(st.sampled_from([10.0, 130.0, 160.0]))
        if draw(st.booleans()):
            readings["bat"] = draw(st.sampled_from([5.0, 25.0, 80.0]))
        late = draw(st.sampled_from([0, 0, 0, 30 * SECOND]))
        steps.append(record(t - late, kind, alarm=code, **readings))
    return steps


@settings(max_examples=300, deadline=None)
@given(_cover_day(), _PARAMS)
def test_restoring_a_saved_state_anywhere_gives_the_same_events_as_never_stopping(steps, params):
    never_stopped, expected = feed(*steps, params=params)
    state, said = SensorState(), []
    for cut in range(len(steps) + 1):
        restored = through_the_database(state)
        assert restored == state
        final, rest = feed(*steps[cut:], params=params, state=restored)
        assert (said + rest, final) == (expected, never_stopped)
        if cut < len(steps):
            state, new = feed(steps[cut], params=params, state=state)
            said += new
