"""The command map's patrol additions in headless Chromium, against the throwaway server of
test_map_page_static: the alerts panel fed by /api/alerts, /api/alarms and live frames,
the coverage layer from /api/coverage/live, and the chart of today's coverage report."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import after_paint, open_browser, save_screenshot, wait_for_js
from tests.web.fake_map import DLAT, DLON, GRID_COUNT, LAT0, LON0, FakeService, Page, grid_code, loaded_page
from tests.web.legibility import (
    READABLE,
    box,
    boxes,
    contrast,
    covered,
    displayed_text,
    distance,
    rgb,
    rows_whole_or_scrolled,
    screen_colours,
    style,
    text_contrast,
)

SCREENSHOT = Path("/tmp/gridwatch-patrol.png")
MINUTE = 60_000
AREA = "620105001001"  # 万里社区, the community c0001 patrols


def cell_centre(col: int, row: int) -> tuple[float, float]:
    return round(LAT0 + (row + 0.5) * DLAT, 7), round(LON0 + (col + 0.5) * DLON, 7)


def alert(id_: int, kind: str, collector: str, raised_at: int, text: str, *, grid: str | None = None,
          detail: dict[str, Any] | None = None) -> dict[str, Any]:
    slot_start = raised_at - 120 * MINUTE
    return {
        "id": id_, "kind": kind, "collector": collector,
        "slot_id": f"{collector}/{AREA}/{slot_start}/{slot_start + 240 * MINUTE}", "area": AREA, "grid": grid,
        "raised_at": raised_at, "updated_at": raised_at, "resolved_at": None, "resolution": None,
        "detail": detail or {}, "text": text,
    }


def alarm(id_: int | None, source: str, device: str, kind: str, raised: bool, t: int, *, component: str | None = None,
          value: float | None = None, detail: str = "", at: tuple[int, int] | None = None,
          grid: str | None = None) -> dict[str, Any]:
    lat, lon = cell_centre(*at) if at else (None, None)
    event = {"source": source, "device": device, "component": component, "kind": kind, "raised": raised, "t": t,
             "value": value, "detail": detail, "lat": lat, "lon": lon, "grid": grid_code(*at) if at else grid}
    return event if id_ is None else {"id": id_} | event


def canned_alerts(now: int) -> list[dict[str, Any]]:
    """Four open patrol alerts, newest first as the API answers."""
    short = [grid_code(1, 4), grid_code(2, 4), grid_code(3, 4)]
    return [
        alert(21, "grid_not_covered", "c0001", now - 2 * MINUTE,
              f"unit grid {grid_code(2, 6)} not covered: 5/14 cells (36%, needs 80%), 1/2 passes", grid=grid_code(2, 6)),
        alert(19, "coverage_warning", "c0002", now - 8 * MINUTE, "3 grids unvisited, 25 min left",
              detail={"grids": short, "unvisited": short, "minutes_left": 25}),
        alert(17, "offline", "c0003", now - 15 * MINUTE, "离线已12分钟"),
        alert(12, "battery_low", "c0003", now - 40 * MINUTE, "battery at 15%"),
    ]


def canned_alarm_history(now: int) -> list[dict[str, Any]]:
    """Newest first: a tilted manhole cover and a full bin are open; v0002's SOS was cleared."""
    return [
        alarm(9, "sensor", "mh-0007", "tilt", True, now - 1 * MINUTE, component="6201050101000007", value=35.5,
              detail="cover tilted 35.5° (limit 15°)", at=(4, 6)),
        alarm(8, "vehicle", "v0002", "sos", False, now - 3 * MINUTE, at=(10, 1)),
        alarm(7, "vehicle", "v0002", "sos", True, now - 6 * MINUTE, at=(10, 1)),
        alarm(6, "sensor", "bin-0003", "full", True, now - 20 * MINUTE, component="6201050102000003", value=96,
              detail="fill 96%", grid=grid_code(8, 2)),
    ]


# Minutes since the last visit, cycled over the grids; None: never visited.
VISIT_AGES_MIN = (5, 50, 180, None, 29, 31, 119, 121)


def expected_bucket(age_min: int | None) -> str:
    if age_min is None:
        return "never"
    return "fresh" if age_min < 30 else "recent" if age_min < 120 else "stale"


# The day's figure: the chart's last point, and the legend's "today" (slots without data left out).
TODAY = {"share": 0.83, "grids_total": 96, "grids_covered": 80, "slots": 6, "slots_no_data": 2, "status": "ok"}


def canned_coverage(now: int, codes: list[str]) -> dict[str, Any]:
    visits = {code: None if (age := VISIT_AGES_MIN[i % len(VISIT_AGES_MIN)]) is None else now - age * MINUTE
              for i, code in enumerate(codes)}
    unvisited = [grid_code(0, 4), grid_code(1, 4), grid_code(2, 4), grid_code(3, 4), grid_code(2, 5)]
    slot = now - 60 * MINUTE
    return {
        "now": now, "grids": visits, "unvisited": unvisited,
        "slots": [
            {"slot_id": f"c0001/{AREA}/{slot}/{slot + 240 * MINUTE}", "collector": "c0001", "area": AREA,
             "start": slot, "end": slot + 240 * MINUTE, "grids_total": 16, "grids_covered": 11, "share": 11 / 16},
            {"slot_id": f"c0002/620105001002/{slot}/{slot + 240 * MINUTE}", "collector": "c0002",
             "area": "620105001002", "start": slot, "end": slot + 240 * MINUTE, "grids_total": 16, "grids_covered": 5,
             "share": 5 / 16},
        ],
        "today": TODAY,
    }


def canned_timeline() -> list[dict[str, Any]]:
    """Today 06:00 to 16:00 local time, every 15 minutes: coverage rising to 83%."""
    six = datetime.combine(date.today(), datetime.min.time()) + timedelta(hours=6)
    steps = 41
    return [{"t": int((six + timedelta(minutes=15 * i)).timestamp() * 1000), "share": round(0.83 * (i / (steps - 1)) ** 0.8, 3)}
            for i in range(steps)]


def patrol_service() -> FakeService:
    service = FakeService()
    now = int(time.time() * 1000)
    service.alerts = canned_alerts(now)
    service.alarms = canned_alarm_history(now)
    service.coverage = canned_coverage(now, [f["properties"]["code"] for f in service.grids["features"]])
    service.timeline = canned_timeline()
    service.summary = TODAY
    return service


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with open_browser(width=1440, height=900) as browser:
        yield browser


@pytest.fixture
def page(driver: WebDriver) -> Iterator[Page]:
    with loaded_page(driver, patrol_service()) as loaded:
        wait_for_js(driver, "window.gridwatch.alertsLoaded")
        yield loaded


def show_alerts(page: Page) -> None:
    page.driver.find_element(By.ID, "gw-tab-alerts").click()
    wait_for_js(page.driver, "!document.getElementById('gw-panel-alerts').hidden")


def alert_ids(page: Page) -> list[str]:
    return page.js("return [...document.querySelectorAll('.gw-alert-row')].map(r => r.dataset.alertId)")


def alert_count(page: Page) -> str:
    return page.driver.find_element(By.ID, "gw-alert-count").text


def test_open_alerts_and_alarms_are_listed_newest_first_with_a_count(page: Page) -> None:
    assert alert_count(page) == "6"
    show_alerts(page)
    assert alert_ids(page) == ["21", "19", "17", "12"]
    alarm_keys = page.js("return [...document.querySelectorAll('.gw-alarm-row')].map(r => r.dataset.alarmKey)")
    assert alarm_keys == ["mh-0007/tilt", "bin-0003/full"]
    assert page.js("return [...window.gridwatch.alerts.keys()]") == [21, 19, 17, 12]
    assert page.js("return [...window.gridwatch.alarms.keys()].sort()") == ["bin-0003/full", "mh-0007/tilt"]

    first = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='21']")
    assert first.is_displayed()
    kind = first.find_element(By.CSS_SELECTOR, ".gw-row-kind")
    assert kind.text == "网格未巡查" and kind.get_attribute("title") == "网格未巡查 grid not covered"
    assert "c0001" in first.text and grid_code(2, 6) in first.text and "5/14 cells" in first.text
    assert first.find_element(By.CSS_SELECTOR, ".gw-row-age").text.startswith("2分")
    offline = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='17']")
    assert "离线" in offline.text and "万里社区" in offline.text and "离线已12分钟" in offline.text
    tilt = page.driver.find_element(By.CSS_SELECTOR, ".gw-alarm-row[data-alarm-key='mh-0007/tilt']")
    assert "井盖倾斜" in tilt.text and "35.5°" in tilt.text and grid_code(4, 6) in tilt.text

    # Only the alarm with a position is on the map; the SOS raised and cleared is not open.
    markers = page.js("return [...document.querySelectorAll('.gw-alarm-marker')].map(m => m.dataset.alarmKey)")
    assert markers == ["mh-0007/tilt"]
    page.assert_no_console_errors()


def test_live_frames_resolve_raise_and_update_alerts_and_alarms(page: Page) -> None:
    show_alerts(page)
    now = int(time.time() * 1000)
    resolved = page.service.alerts[0] | {"resolved_at": now, "resolution": "late fixes show it did not happen"}
    page.service.push({"type": "alert", "change": "resolved", "alert": resolved})
    wait_for_js(page.driver, "!window.gridwatch.alerts.has(21)")
    assert alert_count(page) == "5"
    # The resolved row stays a few seconds to say why it went away, then goes.
    lingering = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='21']")
    assert "gw-resolved" in lingering.get_attribute("class")
    assert "迟到定位表明未发生" in lingering.text and "late fixes show it did not happen" in lingering.text

    raised = alert(30, "off_grid", "c0002", now, "outside the responsibility grid for 6 min")
    page.service.push({"type": "alert", "change": "raised", "alert": raised})
    wait_for_js(page.driver, "document.querySelector(\".gw-alert-row[data-alert-id='30']\")")
    assert alert_ids(page) == ["30", "21", "19", "17", "12"]
    assert alert_count(page) == "6"
    assert "越界" in page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='30']").text

    page.service.push({"type": "alert", "change": "updated",
                       "alert": raised | {"updated_at": now + MINUTE, "text": "outside the responsibility grid for 9 min"}})
    wait_for_js(page.driver, "window.gridwatch.alerts.get(30).text.endsWith('9 min')")
    row = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='30']")
    assert "for 9 min" in row.text and "for 6 min" not in row.text
    assert alert_count(page) == "6"

    sos = alarm(None, "vehicle", "v0001", "sos", True, now, at=(2, 3))
    page.service.push({"type": "alarm"} | sos)
    wait_for_js(page.driver, "document.querySelector(\".gw-alarm-marker[data-alarm-key='v0001/sos']\")")
    assert alert_count(page) == "7"
    alarm_row = page.driver.find_element(By.CSS_SELECTOR, ".gw-alarm-row[data-alarm-key='v0001/sos']")
    assert alarm_row.get_attribute("data-level") == "critical" and "紧急报警" in alarm_row.text
    assert page.js("return document.querySelector('.gw-alarm-row').dataset.alarmKey") == "v0001/sos"
    marker = page.driver.find_element(By.CSS_SELECTOR, ".gw-alarm-marker[data-alarm-key='v0001/sos']")
    assert "紧急报警 sos" in marker.get_attribute("title")
    assert page.js("return getComputedStyle(arguments[0].querySelector('.gw-alarm-ring')).animationName",
                   marker) == "gw-alarm-pulse"
    page.driver.find_element(By.ID, "gw-tab-devices").click()
    marker.click()
    wait_for_js(page.driver, "!document.getElementById('gw-panel-alerts').hidden")
    assert page.js("return window.gridwatch.selected") == "v0001"

    page.service.push({"type": "alarm"} | sos | {"raised": False, "t": now + 5000})
    wait_for_js(page.driver, "!window.gridwatch.alarms.has('v0001/sos')")
    assert page.js("return document.querySelectorAll('.gw-alarm-marker').length") == 1
    assert alert_count(page) == "6"
    assert "gw-resolved" in alarm_row.get_attribute("class")

    wait_for_js(page.driver, "!document.querySelector(\".gw-alert-row[data-alert-id='21']\")", timeout=10)
    assert alert_ids(page) == ["30", "19", "17", "12"]
    page.assert_no_console_errors()


def grid_offset_from_map_centre(page: Page, code: str) -> float:
    return page.js(
        "const g = document.querySelector(`path.gw-grid[data-code='${arguments[0]}']`).getBoundingClientRect();"
        "const m = document.getElementById('gw-map').getBoundingClientRect();"
        "return Math.hypot(g.x + g.width / 2 - (m.x + m.width / 2), g.y + g.height / 2 - (m.y + m.height / 2));",
        code,
    )


def test_clicking_an_alert_brings_its_grid_or_its_collector_into_view(page: Page) -> None:
    show_alerts(page)
    target = grid_code(2, 6)
    page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='21']").click()
    wait_for_js(page.driver, f"document.querySelector(\"path.gw-focus[data-code='{target}']\")")
    wait_for_js(page.driver, "!document.querySelector('.leaflet-zoom-anim')", timeout=3)
    assert page.js("return window.gridwatch.selected") == "c0001"
    assert grid_offset_from_map_centre(page, target) < 30
    width = page.js(f"return document.querySelector(\"path.gw-grid[data-code='{target}']\").getBoundingClientRect().width")
    assert width > 150

    page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='17']").click()
    wait_for_js(page.driver, "window.gridwatch.selected === 'c0003'")
    wait_for_js(page.driver, (
        "(() => { const r = document.querySelector(\".gw-marker[data-device='c0003']\").getBoundingClientRect();"
        " const m = document.getElementById('gw-map').getBoundingClientRect();"
        " return Math.hypot(r.x + r.width / 2 - (m.x + m.width / 2), r.y + r.height / 2 - (m.y + m.height / 2)) < 30; })()"
    ), timeout=3)

    page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='19']").click()
    wait_for_js(page.driver, "document.querySelectorAll('path.gw-focus').length === 3")
    page.assert_no_console_errors()


def coverage_marks(page: Page) -> dict[str, list[Any]]:
    return page.js(
        "return Object.fromEntries([...document.querySelectorAll('path.gw-grid')].map(p =>"
        " [p.dataset.code, [p.dataset.coverage || null, p.classList.contains('gw-unvisited')]]))"
    )


def grid_fills(page: Page) -> dict[str, str]:
    return page.js("return Object.fromEntries([...document.querySelectorAll('path.gw-grid')]"
                   ".map(p => [p.dataset.code, p.getAttribute('fill')]))")


def test_the_coverage_layer_shades_grids_by_last_visit_and_outlines_the_unvisited(page: Page) -> None:
    codes = [f["properties"]["code"] for f in page.service.grids["features"]]
    fills_before = grid_fills(page)
    assert set(map(tuple, coverage_marks(page).values())) == {(None, False)}
    assert page.service.coverage_requests == 0

    toggle = page.driver.find_element(By.CSS_SELECTOR, ".gw-coverage-toggle")
    assert "巡查覆盖" in toggle.text
    toggle.click()
    wait_for_js(page.driver, f"document.querySelectorAll('path.gw-grid[data-coverage]').length === {GRID_COUNT}")
    unvisited = set(page.service.coverage["unvisited"])
    expected = {code: [expected_bucket(VISIT_AGES_MIN[i % len(VISIT_AGES_MIN)]), code in unvisited]
                for i, code in enumerate(codes)}
    assert coverage_marks(page) == expected
    assert toggle.get_attribute("aria-pressed") == "true"
    legend = page.driver.find_element(By.CSS_SELECTOR, ".gw-legend")
    assert legend.is_displayed()
    assert "30分钟内" in legend.text and "班次中未到" in legend.text and "进行中班次 2，今日已覆盖 83%" in legend.text
    outline = page.js(f"return document.querySelector(\"path.gw-grid[data-code='{grid_code(2, 5)}']\")"
                      ".getAttribute('stroke-dasharray')")
    assert outline == "6 4"
    fill = page.js("return Object.fromEntries(['fresh', 'recent', 'stale', 'never'].map(b => [b,"
                   " document.querySelector(`path.gw-grid[data-coverage='${b}']`).getAttribute('fill-opacity')]))")
    assert float(fill["fresh"]) > float(fill["recent"]) > float(fill["stale"])

    toggle.click()
    assert set(map(tuple, coverage_marks(page).values())) == {(None, False)}
    assert grid_fills(page) == fills_before
    assert not legend.is_displayed()
    assert page.service.coverage_requests == 1
    page.assert_no_console_errors()


def test_the_chart_draws_todays_coverage_one_point_per_timeline_entry(page: Page) -> None:
    timeline = page.service.timeline
    wait_for_js(page.driver, "document.querySelectorAll('#gw-coverage-chart svg circle.gw-chart-point').length > 0")
    # the city's day (the service's zone), whatever the machine's
    assert page.service.report_dates[-1] == datetime.now(ZoneInfo(page.service.zone)).date().isoformat()
    points = page.js("return [...document.querySelectorAll('#gw-coverage-chart svg circle.gw-chart-point')]"
                     ".map(c => [Number(c.dataset.t), Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))])")
    assert [t for t, _, _ in points] == [p["t"] for p in timeline]
    assert all(a[1] < b[1] for a, b in itertools.pairwise(points))
    assert all(a[2] >= b[2] for a, b in itertools.pairwise(points))
    assert page.driver.find_element(By.ID, "gw-chart-latest").text == "83%"

    page.driver.find_element(By.CSS_SELECTOR, "#gw-chart-panel summary").click()
    assert not page.driver.find_element(By.CSS_SELECTOR, "#gw-coverage-chart svg").is_displayed()
    page.assert_no_console_errors()


LEVEL_COLOURS = {"critical": (255, 45, 85), "high": (248, 113, 113), "warn": (245, 158, 11), "muted": (139, 151, 166)}
ALARM_CORE_COLOURS = {"critical": (255, 45, 85), "high": (220, 38, 38)}
BADGE_RED = (220, 38, 38)
CHART_GREEN = (34, 197, 94)


def test_the_patrol_view_renders_legibly(page: Page) -> None:
    page.service.push({"type": "alarm"} | alarm(None, "vehicle", "v0001", "sos", True, int(time.time() * 1000), at=(2, 3)))
    show_alerts(page)
    page.driver.find_element(By.CSS_SELECTOR, ".gw-coverage-toggle").click()
    wait_for_js(page.driver, f"document.querySelectorAll('path.gw-grid[data-coverage]').length === {GRID_COUNT}")
    wait_for_js(page.driver, "document.querySelectorAll('#gw-coverage-chart circle.gw-chart-point').length > 0")
    wait_for_js(page.driver, "window.gridwatch.alarms.has('v0001/sos')")
    after_paint(page.driver)
    save_screenshot(page.driver, SCREENSHOT)  # for a person to look at; what follows reads the page

    # The alerts tab: its badge counts three open alarms and four alerts in white on red.
    badge = style(page, "#gw-alert-count", "background-color", "color")
    assert displayed_text(page, "#gw-alert-count") == ["7"]
    assert rgb(badge["background-color"]) == BADGE_RED
    assert contrast(rgb(badge["color"]), BADGE_RED) >= READABLE

    # Alarms above alerts, newest first, each row whole inside the panel, its kind in the colour of its level.
    rows = page.js("return [...document.querySelectorAll('.gw-row')].map(r => [r.dataset.alarmKey || r.dataset.alertId,"
                   " r.dataset.level, r.querySelector('.gw-row-kind').innerText])")
    assert rows == [
        ["v0001/sos", "critical", "紧急报警"], ["mh-0007/tilt", "high", "井盖倾斜"], ["bin-0003/full", "warn", "满溢"],
        ["21", "high", "网格未巡查"], ["19", "warn", "即将超时"], ["17", "muted", "离线"], ["12", "warn", "电量低"],
    ]
    assert rows_whole_or_scrolled(page, "#gw-panel-alerts", ".gw-row")
    for key, level, _kind in rows:
        row = f".gw-row[data-alarm-key='{key}']" if "/" in key else f".gw-row[data-alert-id='{key}']"
        kind = style(page, f"{row} .gw-row-kind", "background-color", "color")
        assert rgb(kind["background-color"]) == LEVEL_COLOURS[level], key
        assert contrast(rgb(kind["color"]), LEVEL_COLOURS[level]) >= READABLE, key
        assert text_contrast(page, f"{row} .gw-row-text") >= READABLE, key

    # Coverage: each grid tinted by its last visit, the same colours as the legend's swatches, the unvisited
    # dashed in red; the legend sits on the map and its status line says how the slots are doing.
    map_box = box(page, "#gw-map")
    shading = page.js("return [...document.querySelectorAll('path.gw-grid')].map(p => [p.dataset.coverage,"
                      " p.classList.contains('gw-unvisited'), p.getAttribute('fill'), p.getAttribute('stroke'),"
                      " p.getAttribute('stroke-dasharray')])")
    fills = {bucket: {rgb(fill) for b, _u, fill, _s, _d in shading if b == bucket}
             for bucket in ("fresh", "recent", "stale", "never")}
    assert all(len(colours) == 1 for colours in fills.values())
    assert len(set.union(*fills.values())) == 4
    unvisited = {(rgb(stroke), dashes) for _b, u, _f, stroke, dashes in shading if u}
    assert unvisited == {((255, 59, 59), "6 4")}
    assert all(dashes is None for _b, u, _f, _s, dashes in shading if not u)
    legend = box(page, ".gw-legend")
    assert map_box.contains(legend) and not legend.overlaps(box(page, ".leaflet-control-zoom"))
    for bucket, colours in fills.items():
        swatch = style(page, f".gw-swatch[data-coverage='{bucket}']", "background-color")
        assert {rgb(swatch["background-color"])} == colours, bucket
    assert style(page, ".gw-swatch--unvisited", "border-top-style", "border-top-color") == {
        "border-top-style": "dashed", "border-top-color": "rgb(255, 59, 59)"}
    assert displayed_text(page, ".gw-legend-status")[0].startswith("进行中班次 2，今日已覆盖 83%")
    assert text_contrast(page, ".gw-legend-status") >= READABLE

    # Alarm markers are drawn over everything at their place, in red by level, with a pulsing ring; the
    # vehicle's own marker lies under its SOS and every other device shows (unless under a map control).
    assert covered(page, ".gw-alarm-marker", "data-alarm-key") == {"mh-0007/tilt": None, "v0001/sos": None}
    alarm_markers = {"v0001/sos": "critical", "mh-0007/tilt": "high"}
    cores = [box(page, f".gw-alarm-marker[data-alarm-key='{key}'] .gw-alarm-core") for key in alarm_markers]
    # the screen a little left of the white "!" in the core's middle
    beside_mark = [(core.centre[0] - core.width / 4, core.centre[1]) for core in cores]
    for (key, level), on_screen in zip(alarm_markers.items(), screen_colours(page, beside_mark), strict=True):
        core = f".gw-alarm-marker[data-alarm-key='{key}'] .gw-alarm-core"
        assert rgb(style(page, core, "background-color")["background-color"]) == ALARM_CORE_COLOURS[level], key
        assert map_box.contains(box(page, core)), key
        assert style(page, f".gw-alarm-marker[data-alarm-key='{key}'] .gw-alarm-ring", "animation-name") == {
            "animation-name": "gw-alarm-pulse"}
        assert distance(on_screen, ALARM_CORE_COLOURS[level]) <= 3, key
    hidden = {device: cover for device, cover in covered(page, ".gw-marker", "data-device").items()
              if cover is not None and "leaflet-control" not in cover}
    assert list(hidden) == ["v0001"] and "gw-alarm-marker--critical" in hidden["v0001"]

    # Today's chart: one point per quarter hour left to right inside the chart, the green line, 83% at the end.
    chart = box(page, "#gw-coverage-chart svg")
    assert box(page, ".gw-side").contains(chart)
    points = boxes(page, "#gw-coverage-chart circle.gw-chart-point")
    assert len(points) == len(page.service.timeline)
    assert all(chart.contains(p) for p in points)
    assert rgb(style(page, ".gw-chart-line", "stroke")["stroke"]) == CHART_GREEN
    assert displayed_text(page, "#gw-chart-latest") == ["83%"]
    assert text_contrast(page, "#gw-chart-panel summary") >= READABLE
    page.assert_no_console_errors()
