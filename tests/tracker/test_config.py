"""Configuration: the shipped file loads, env overrides apply, mistakes name their key."""

from __future__ import annotations

import pytest

from tests.harness import REPO
from tracker.config import ConfigError, load


def test_shipped_config_loads_with_documented_defaults():
    s = load(REPO / "config.toml", environ={})
    assert (s.mqtt.subscriptions, s.grid.h3_resolution, s.web.host) == (("gw/v1/+/+/+/+",), 12, "127.0.0.1")


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
])
def test_bad_configuration_names_the_key(tmp_path, text, env, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(path, environ=env)
