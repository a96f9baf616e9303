"""The alert message catalogue: every kind speaks Chinese and English, every placeholder
is filled from a real alert's detail, severities are known and can be overridden."""

from __future__ import annotations

import re

import pytest

from alerts.messages import CATALOGUE_PATH, Catalogue, Lang, Severity, configured_catalogue, default_catalogue, describe, negotiate
from alerts.patrol import Alert, AlertKind, Resolution
from geofence.schedule import Slot

SLOT = Slot("c01", "620105001001", 1_759_104_000_000, 1_759_111_200_000)

DETAILS = {
    AlertKind.GRID_NOT_COVERED: {"share": 0.25, "min_cell_share": 0.6, "cells_visited": 3, "cells_total": 12, "passes": 0,
                                 "passes_required": 1, "shortfalls": ["cells"]},
    AlertKind.COVERAGE_WARNING: {"grids": ["620105001001001", "620105001001002", "620105001001003"],
                                 "unvisited": ["620105001001003"], "slot_end_ms": SLOT.end_ms, "minutes_left": 25},
    AlertKind.OFFLINE: {"last_fix_ms": SLOT.start_ms, "minutes": 16.0},
    AlertKind.OFF_GRID: {"since_ms": SLOT.start_ms, "minutes": 17.0},
    AlertKind.STATIONARY: {"since_ms": SLOT.start_ms, "radius_m": 30.0, "minutes": 31.0},
    AlertKind.BATTERY_LOW: {"battery_pct": 15.0, "battery_at_ms": SLOT.start_ms, "threshold_pct": 20.0},
    AlertKind.NOT_STARTED: {"minutes": 15.0},
}


def alert(kind: AlertKind, resolution: Resolution | None = None) -> Alert:
    grid = "620105001001003" if kind is AlertKind.GRID_NOT_COVERED else None
    t = SLOT.start_ms + 60_000
    return Alert(kind, SLOT, grid, t, t, DETAILS[kind], t if resolution else None, resolution)


@pytest.mark.parametrize("kind", list(AlertKind))
def test_every_kind_has_chinese_and_english_with_every_placeholder_filled(kind: AlertKind) -> None:
    zh, en = describe(alert(kind), Lang.ZH), describe(alert(kind), Lang.EN)
    assert re.search(r"[\u4e00-\u9fff]", zh), zh
    assert not re.search(r"[\u4e00-\u9fff]", en) and en != zh
    for text in (zh, en):
        assert "{" not in text and "}" not in text and "None" not in text
    assert default_catalogue().placeholders(kind), f"{kind} says nothing about the alert"


def test_the_texts_carry_the_alerts_numbers() -> None:
    assert describe(alert(AlertKind.COVERAGE_WARNING)) == "3 个网格尚未巡查到位（其中 1 个未到访），距班次结束 25 分钟"
    assert describe(alert(AlertKind.COVERAGE_WARNING), "en") == "3 grids not yet covered (1 unvisited), 25 min left"
    assert describe(alert(AlertKind.GRID_NOT_COVERED)) == (
        "单元网格 620105001001003 未巡查到位：3/12 个网格单元（25%，要求 60%），巡查 0/1 遍")
    assert describe(alert(AlertKind.NOT_STARTED)) == "班次开始 15 分钟仍无定位（未上岗）"


def test_a_resolved_alert_says_why_in_each_language() -> None:
    gone = alert(AlertKind.OFFLINE, Resolution.DISPROVED)
    assert describe(gone) == "16 分钟无定位（已解除：迟到定位表明未发生）"
    assert describe(gone, "en") == "no fix for 16 min (resolved: late fixes show it did not happen)"
    # stored rows keep the resolution's value, alert dicts its name: both read the same
    messages = default_catalogue()
    assert messages.text("offline", DETAILS[AlertKind.OFFLINE], None, "late fixes show it did not happen") == describe(gone)
    assert messages.text("offline", DETAILS[AlertKind.OFFLINE], None, "disproved") == describe(gone)


def test_every_kind_has_a_severity_and_configuration_overrides_it() -> None:
    messages = default_catalogue()
    assert {messages.severity(k) for k in AlertKind} <= set(Severity)
    assert messages.severity(AlertKind.NOT_STARTED) is Severity.CRITICAL
    assert messages.severity(AlertKind.OFFLINE) is Severity.MAJOR
    assert configured_catalogue(("offline=critical", "not_started = minor")).severity("offline") is Severity.CRITICAL
    assert configured_catalogue(("not_started = minor",)).severity("not_started") is Severity.MINOR
    for bad, why in [(("offline=urgent",), "severity 'urgent'"), (("flying=major",), "unknown alert kinds"),
                     (("offline",), "expected kind=severity")]:
        with pytest.raises(ValueError, match=why):
            configured_catalogue(bad)


def test_a_catalogue_missing_a_language_is_refused(tmp_path) -> None:
    src = CATALOGUE_PATH.read_text(encoding="utf-8")  # the shipped file, less one English template
    broken = tmp_path / "messages.toml"
    broken.write_text(src.replace('en = "no fix for {minutes:.0f} min"\n', ""), encoding="utf-8")
    with pytest.raises(ValueError, match=r"kinds\.offline has no en template"):
        Catalogue.load(broken)


@pytest.mark.parametrize(("query", "header", "lang"), [
    (None, None, Lang.ZH), ("en", None, Lang.EN), ("zh", "en-GB,en;q=0.9", Lang.ZH),
    (None, "en-GB,en;q=0.9", Lang.EN), (None, "fr-FR, zh-CN;q=0.8", Lang.ZH), ("xx", None, Lang.ZH),
])
def test_the_language_comes_from_the_query_then_accept_language(query, header, lang) -> None:
    assert negotiate(query, header) is lang
