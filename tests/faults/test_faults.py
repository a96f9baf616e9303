"""Nothing lost, nothing doubled, nothing brought down: faults on real processes.

Each test streams 5,000 numbered handset fixes at QoS 1 (and ten manhole tilt alarm
episodes) from a publisher process through a private Mosquitto into the service, run as
``python -m tracker serve``, strikes one fault mid-stream and counts, number by number, what
PostgreSQL kept (bench.faultlab). Every fix the broker acknowledged must be stored exactly
once, every acknowledged alarm episode must leave one raised and one cleared tilt event
and one case (the alarm outbox consumed exactly once), and the service must not fall over
on its own.
"""

from __future__ import annotations

import pytest

from bench.faultlab import Lab, Outcome, Scenario, table

FIXES = 5000
DEVICES = 100
EPISODES = 10


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab(tmp_path_factory.mktemp("faultlab"), durable=False) as lab:
        yield lab


def intact(outcome: Outcome) -> tuple[int, int, int, int, int]:
    return outcome.lost, outcome.duplicated, outcome.episodes_lost, outcome.episodes_doubled, outcome.service_crashes


def explain(outcome: Outcome) -> str:
    return (f"\n{table([outcome])}\nfirst lost numbers: {outcome.lost_sample}\nnotes: {outcome.notes}\n"
            f"cases lost/doubled: {outcome.cases_lost}/{outcome.cases_doubled}, alarms pending: {outcome.alarms_pending}")


def test_without_a_fault_every_acknowledged_fix_is_stored_once(lab):
    outcome = lab.run(Scenario("baseline", "none", FIXES, rate=1000, devices=DEVICES, episodes=EPISODES, settle_s=20))
    assert outcome.acknowledged == FIXES, explain(outcome)
    assert outcome.episodes_acknowledged == EPISODES, explain(outcome)
    assert intact(outcome) == (0, 0, 0, 0, 0), explain(outcome)
    assert outcome.stored == FIXES, explain(outcome)
    assert (outcome.cases_lost, outcome.cases_doubled, outcome.alarms_pending) == (0, 0, 0), explain(outcome)


def test_sigkill_of_the_service_under_qos1_load_loses_and_doubles_nothing(lab):
    outcome = lab.run(Scenario("kill -9", "kill", FIXES, rate=500, devices=DEVICES, at=0.4, episodes=EPISODES, settle_s=20))
    assert intact(outcome) == (0, 0, 0, 0, 0), explain(outcome)
    assert outcome.episodes_acknowledged == EPISODES, explain(outcome)
    assert (outcome.cases_lost, outcome.cases_doubled, outcome.alarms_pending) == (0, 0, 0), explain(outcome)
    assert outcome.service_starts == 2, explain(outcome)


def test_a_clean_stop_and_restart_loses_and_doubles_nothing(lab):
    outcome = lab.run(Scenario("SIGTERM", "term", FIXES, rate=500, devices=DEVICES, at=0.4, episodes=EPISODES, settle_s=20))
    assert intact(outcome) == (0, 0, 0, 0, 0), explain(outcome)
    assert outcome.service_starts == 2, explain(outcome)
    assert not outcome.notes, explain(outcome)  # it exited with 0, on its own schedule


def test_a_broker_restart_loses_and_doubles_nothing(lab):
    outcome = lab.run(Scenario("broker restart", "broker", FIXES, rate=500, devices=DEVICES, at=0.4, outage_s=1.0,
                               episodes=EPISODES, settle_s=20))
    assert intact(outcome) == (0, 0, 0, 0, 0), explain(outcome)


def test_a_thirty_second_database_stop_loses_and_doubles_nothing_and_the_service_stays_up(lab):
    # 40 s of fixes, the database stopped from the 8th second to the 38th
    outcome = lab.run(Scenario("db stop 30 s", "db", FIXES, rate=125, devices=DEVICES, at=0.2, outage_s=30.0,
                               episodes=EPISODES, settle_s=40))
    assert intact(outcome) == (0, 0, 0, 0, 0), explain(outcome)
    assert outcome.service_starts == 1, explain(outcome)
    # the alarm intake waited the outage out: every episode's case, once
    assert (outcome.cases_lost, outcome.cases_doubled, outcome.alarms_pending) == (0, 0, 0), explain(outcome)
