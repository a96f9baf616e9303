"""Configuration: the shipped file loads, env overrides apply, mistakes name their key."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing

import pytest

from protocols.jt808.session import AuthCodePolicy
from tests.harness import REPO
from tracker.config import ConfigError, Settings, load
from tracker.ingest.broker import BrokerParams
from tracker.ingest.jt808_gateway import Jt808Settings


def test_shipped_config_loads_with_documented_defaults():
    s = load(REPO / "config.toml", environ={})
    assert (s.mqtt.subscriptions, s.grid.h3_resolution, s.web.host) == (("gw/v1/+/+/+/+",), 12, "127.0.0.1")


def test_the_shipped_file_documents_every_key_at_its_default():
    documented = tomllib.loads((REPO / "config.toml").read_text(encoding="utf-8"))
    sections = typing.get_type_hints(Settings)
    assert {name: set(keys) for name, keys in documented.items()} == {
        name: {f.name for f in dataclasses.fields(cls) if f.init} for name, cls in sections.items()}
    assert load(REPO / "config.toml", environ={}) == load(None, environ={})


def test_mqtt_and_jt808_sections_are_what_the_broker_client_and_the_gateway_take():
    s = load(REPO / "config.toml", environ={"TRACKER_JT808__AUTH_SECRET": "fleet key", "TRACKER_JT808__AUTH_CODES": "any"})
    assert isinstance(s.mqtt, BrokerParams) and isinstance(s.jt808, Jt808Settings)
    assert (s.jt808.auth_secret, s.jt808.auth_codes, s.jt808.port) == (b"fleet key", AuthCodePolicy.ANY, 6808)
    assert load(None, environ={}).jt808.auth_secret is None  # empty: a random key per start


def test_environment_overrides_one_key():
    s = load(REPO / "config.toml", environ={"TRACKER_MQTT__PORT": "18830", "TRACKER_WEB__CENTER": "36.06,103.83"})
    assert (s.mqtt.port, s.web.center) == (18830, (36.06, 103.83))


@pytest.mark.parametrize("text, env, message", [
    ("[mqtt]\nprot = 1\n", {}, "unknown key [mqtt] 'prot'"),
    ("[mqt]\n", {}, "unknown section [mqt]"),
    ("[mqtt]\nport = 'x'\n", {}, "[mqtt] port: expected int"),
    ("[mqtt]\nport = 70000\n", {}, "[mqtt] port: must be 0..65535"),
    ("[grid]\nh3_resolution = 16\n", {}, "[grid] h3_resolution"),
    ("", {"TRACKER_PIPELINE__PERSIST_FLUSH_MS": "soon"}, "[pipeline] persist_flush_ms: expected int"),
    ("", {"TRACKER_NOPE__X": "1"}, "unknown section [nope]"),
    ("[web\n", {}, "config.toml"),
    ("[jt808]\nauth_timeout_s = 0\n", {}, "[jt808] auth_timeout_s: must be > 0"),
    ("", {"TRACKER_JT808__MAX_CONNECTIONS_PER_ADDRESS": "0"}, "[jt808] max_connections_per_address: must be > 0"),
    ("[jt808]\nauth_codes = 'mine'\n", {}, "[jt808] auth_codes: must be issued or any"),
    ("[jt808]\nport = 70000\n", {}, "[jt808] port: must be 0..65535"),
    ("[jt808]\ndistrict = '6201'\n", {}, "[jt808] district: must be a 6-digit admin code"),
    ("", {"TRACKER_JT808__SEND_TIMEOUT_S": "0"}, "[jt808] send_timeout_s: must be > 0"),
    ("[jt808]\nenabled = 'sometimes'\n", {}, "[jt808] enabled: expected bool"),
])
def test_bad_configuration_names_the_key(tmp_path, text, env, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path, environ=env)


def test_jt808_connection_limits_reach_the_gateway():
    s = load(REPO / "config.toml", environ={"TRACKER_JT808__AUTH_TIMEOUT_S": "30", "TRACKER_JT808__MAX_CONNECTIONS_PER_ADDRESS": "8"})
    gateway = s.jt808  # the section is the gateway's own settings class
    assert isinstance(gateway, Jt808Settings)
    assert (gateway.auth_timeout_s, gateway.max_connections_per_address, gateway.idle_timeout_s) == (30.0, 8, 300.0)


def test_the_registry_refuses_unregistered_devices_unless_told_and_keeps_the_control_account_apart():
    assert load(None, environ={}).registry.unregistered == "refuse"
    assert load(None, environ={"TRACKER_REGISTRY__UNREGISTERED": "accept"}).registry.unregistered == "accept"
    with pytest.raises(ConfigError, match=r"\[registry\] unregistered: must be refuse or accept"):
        load(None, environ={"TRACKER_REGISTRY__UNREGISTERED": "maybe"})
    with pytest.raises(ConfigError, match=r"\[registry\] control_username: must not be the ingest account"):
        load(None, environ={"TRACKER_REGISTRY__CONTROL_USERNAME": "gridwatch"})


@pytest.mark.parametrize(("text", "message"), [
    ('[cases]\nzone = "Mars/Olympus"', "[cases] zone: unknown time zone 'Mars/Olympus'"),
    ('[cases]\noffice_hours = ["8:30 to 12"]', "[cases] office_hours: '8:30 to 12' is not HH:MM-HH:MM"),
    ('[cases]\noffice_hours = ["14:00-18:00", "08:30-12:00"]', "[cases] office hours: span 08:30–12:00 overlaps"),
    ('[cases]\ndays_off = ["2025-10-32"]', "[cases] days_off: '2025-10-32' is not a date"),
    ('[cases]\ndays_on = ["2025-10-01"]\ndays_off = ["2025-10-01"]', "[cases] 2025-10-01 is both in days_on and days_off"),
    ('[cases]\nwarn_share = 1.5', "[cases] warn_share: must be in (0, 1]"),
])
def test_a_bad_working_time_calendar_names_the_key(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(path, environ={})


def test_the_working_time_calendar_is_built_from_cases_with_local_days():
    from datetime import date, datetime, time
    from zoneinfo import ZoneInfo

    settings = load(None, environ={"TRACKER_CASES__DAYS_OFF": "2025-09-22", "TRACKER_CASES__OFFICE_HOURS": "09:00-17:00"})
    calendar = settings.cases.calendar()
    assert calendar.hours == ((time(9), time(17)),) and not calendar.is_working_day(date(2025, 9, 22))
    friday = datetime(2025, 9, 19, 16, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert calendar.add_hours(friday, 2) == datetime(2025, 9, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
