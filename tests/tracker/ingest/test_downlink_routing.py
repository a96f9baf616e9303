"""The router tells the platform's own commands (``…/cmd``) from devices' messages: they
are set aside as downlinks, whatever their payload, and nothing else is."""

from __future__ import annotations

import pytest

from protocols.handset import HandsetLimits
from tracker.ingest.routing import Routed, Router, is_downlink


@pytest.mark.parametrize(("topic", "downlink"), [
    ("gw/v1/620105/collector/c0001/cmd", True),
    ("gw/v1/620105/vehicle/jt013912345678/cmd", True),
    ("owntracks/alice/phone/cmd", True),
    ("gw/v1/620105/collector/c0001/pos", False),
    ("gw/v1/620105/collector/cmd", False),  # five levels: not a device's command topic
    ("gw/v2/620105/collector/c0001/cmd", False),
    ("owntracks/alice/cmd", False),  # alice's phone called "cmd": a location topic
    ("owntracks/alice/phone/event/cmd", False),
    ("other/v1/620105/collector/c0001/cmd", False),
])
def test_command_topics_are_told_from_uplinks(topic: str, downlink: bool) -> None:
    assert is_downlink(topic) is downlink


def test_a_command_is_ignored_as_a_downlink_not_rejected() -> None:
    router = Router(HandsetLimits(65536, 500, 300_000, 7 * 86_400_000), {})
    out = Routed()
    router.route("gw/v1/620105/collector/c0001/cmd", b'{"cmd":"reportLocation"}', 1, out)
    router.route("owntracks/alice/phone/cmd", b'{"_type":"cmd","action":"reportLocation"}', 2, out)
    router.route("gw/v1/620105/collector/c0001/bogus", b"", 3, out)
    assert out.ignored == [("handset", "downlink"), ("owntracks", "downlink")]
    assert [(protocol, error.reason, topic) for protocol, error, topic, *_ in out.rejected] == [
        ("handset", "bad_topic", "gw/v1/620105/collector/c0001/bogus")]
    assert out.heard == {}
