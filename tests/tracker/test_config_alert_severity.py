"""[patrol] alert_severity: severities over the alert catalogue's, checked when the
configuration is loaded, and used by the patrol engine and the API."""

from __future__ import annotations

import pytest

from alerts.messages import Severity, configured_catalogue
from tracker.config import ConfigError, load


def test_severities_are_overridden_from_the_configuration(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[patrol]\nalert_severity = ["offline=critical", "battery_low=minor"]\n', encoding="utf-8")
    settings = load(path, environ={})
    assert settings.patrol.alert_severity == ("offline=critical", "battery_low=minor")
    messages = configured_catalogue(settings.patrol.alert_severity)
    assert (messages.severity("offline"), messages.severity("battery_low")) == (Severity.CRITICAL, Severity.MINOR)
    assert messages.severity("not_started") is Severity.CRITICAL  # the catalogue's own
    from_env = load(None, environ={"TRACKER_PATROL__ALERT_SEVERITY": "stationary=major"})
    assert configured_catalogue(from_env.patrol.alert_severity).severity("stationary") is Severity.MAJOR


@pytest.mark.parametrize(("value", "why"), [
    ('["offline=urgent"]', "severity 'urgent' is not one of"),
    ('["flying=major"]', "unknown alert kinds"),
    ('["offline"]', "expected kind=severity"),
])
def test_a_bad_severity_is_refused_when_the_configuration_is_loaded(tmp_path, value: str, why: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[patrol]\nalert_severity = {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"\[patrol\] alert_severity: .*{why}"):
        load(path, environ={})
