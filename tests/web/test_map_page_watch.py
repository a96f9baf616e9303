"""The command map for the people who watch it all day, in headless Chromium: patrol alerts
in Chinese with their severity, grouped by responsibility grid with counts, narrowed by
filters, marked on the map, beeping and notifying when a high-severity one is raised; and
a device's history with the jitter filtered, its distance and stops, replayed in order."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from alerts.messages import default_catalogue
from geofence.tracks import Point, TrackSettings, length_m, smoothed, stops
from tests.browser import open_browser, wait_for_js
from tests.web.fake_map import DLAT, DLON, LAT0, LON0, FakeService, Page, grid_code, loaded_page

MINUTE = 60_000
WANLI, TAOLIN = "620105001001", "620105001002"  # 万里社区 (c0001), 桃林社区 (c0002)


def alert(id_: int, kind: str, collector: str, area: str, raised_at: int, detail: dict[str, Any],
          grid: str | None = None) -> dict[str, Any]:
    """An alert as /api/alerts and the live feed give it: texts from the real catalogue."""
    messages = default_catalogue()
    texts = messages.texts(kind, detail, grid)
    slot_start = raised_at - 60 * MINUTE
    return {"id": id_, "kind": kind, "collector": collector, "slot_id": f"{collector}/{area}/{slot_start}/{slot_start + 7_200_000}",
            "area": area, "grid": grid, "raised_at": raised_at, "updated_at": raised_at, "resolved_at": None,
            "resolution": None, "detail": detail, "text": texts["zh"], "texts": texts,
            "severity": messages.severity(kind).value}


def canned_alerts(now: int) -> list[dict[str, Any]]:
    short = [grid_code(1, 4), grid_code(2, 4)]
    return [
        alert(31, "grid_not_covered", "c0001", WANLI, now - 2 * MINUTE,
              {"share": 0.36, "min_cell_share": 0.6, "cells_visited": 5, "cells_total": 14, "passes": 1,
               "passes_required": 1, "shortfalls": ["cells"]}, grid=grid_code(2, 6)),
        alert(30, "coverage_warning", "c0001", WANLI, now - 5 * MINUTE,
              {"grids": short, "unvisited": short, "minutes_left": 25, "slot_end_ms": now + 25 * MINUTE}),
        alert(29, "offline", "c0002", TAOLIN, now - 9 * MINUTE, {"last_fix_ms": now - 25 * MINUTE, "minutes": 16.0}),
        alert(28, "battery_low", "c0002", TAOLIN, now - 12 * MINUTE, {"battery_pct": 15.0, "threshold_pct": 20.0}),
        alert(27, "stationary", "c0002", TAOLIN, now - 14 * MINUTE, {"minutes": 31.0, "radius_m": 30.0}),
    ]


def jittery_walk(end_ms: int) -> list[Point]:
    """Three minutes east, two minutes standing, two minutes north; a fix every 5 s, ±8 m."""
    rng = random.Random(11)
    m_lat, m_lon = 111_320.0, 111_320.0 * math.cos(math.radians(LAT0))
    lat0, lon0 = LAT0 + 2.5 * DLAT, LON0 + 1.5 * DLON
    points, east, north = [], 0.0, 0.0
    t = end_ms - 7 * MINUTE
    for count, ve, vn in ((36, 1.3, 0.0), (24, 0.0, 0.0), (24, 0.0, 1.3)):
        for _ in range(count):
            points.append(Point(t, lat0 + (north + rng.uniform(-8, 8)) / m_lat, lon0 + (east + rng.uniform(-8, 8)) / m_lon, 10.0))
            east, north, t = east + ve * 5, north + vn * 5, t + 5000
    return points


class WatchService(FakeService):
    """The fake service, answering /api/devices/{id}/history as the real one does (on the
    same filter, geofence.tracks) over a recorded jittery walk."""

    history_queries: list[dict[str, str]]

    def app(self):  # type: ignore[no-untyped-def]
        app = super().app()
        self.history_queries = []
        app.router.routes.insert(0, Route("/api/devices/{device}/history", self.history))
        return app

    async def history(self, request: Request) -> JSONResponse:
        self.history_queries.append(dict(request.query_params))
        end = int(time.time() * 1000)
        raw = jittery_walk(end)
        settings = TrackSettings(min_stop_ms=int(float(request.query_params.get("stop_min", "5")) * MINUTE))
        track = smoothed(raw, settings)
        found = stops(raw, settings)
        return JSONResponse({
            "device": request.path_params["device"], "from": raw[0].t_ms, "to": end, "slot": None,
            "raw": {"points": len(raw), "distance_m": round(length_m(raw), 1), "truncated": False},
            "distance_m": round(length_m(track), 1),
            "track": {"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[p.lon, p.lat] for p in track]},
                      "properties": {"times": [p.t_ms for p in track]}},
            "stops": [{"start": s.start_ms, "end": s.end_ms, "lat": s.lat, "lon": s.lon, "fixes": s.fixes,
                       "minutes": round(s.minutes, 1)} for s in found],
            "method": {"zh": "去抖：按精度加权平滑，剔除精度范围内的移动", "en": "accuracy-weighted smoothing"},
        })


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with open_browser(width=1440, height=900) as browser:
        yield browser


@pytest.fixture
def page(driver: WebDriver) -> Iterator[Page]:
    service = WatchService()
    service.alerts = canned_alerts(int(time.time() * 1000))
    with loaded_page(driver, service) as loaded:
        wait_for_js(driver, "window.gridwatch.alertsLoaded")
        yield loaded


def show(page: Page, tab: str) -> None:
    page.driver.find_element(By.ID, tab).click()
    wait_for_js(page.driver, f"!document.getElementById(document.getElementById('{tab}').getAttribute('aria-controls')).hidden")


def visible_alert_ids(page: Page) -> list[str]:
    return [row.get_attribute("data-alert-id") for row in page.driver.find_elements(By.CSS_SELECTOR, ".gw-alert-row")
            if row.is_displayed()]


def test_alerts_read_in_chinese_with_their_severity_grouped_by_responsibility_grid(page: Page) -> None:
    show(page, "gw-tab-alerts")
    row = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='30']")
    assert row.find_element(By.CSS_SELECTOR, ".gw-row-text").text == "2 个网格未到访，距班次结束 25 分钟"
    assert row.find_element(By.CSS_SELECTOR, ".gw-sev").text == "提示"
    not_covered = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='31']")
    assert not_covered.find_element(By.CSS_SELECTOR, ".gw-sev").text == "重要"
    assert "未巡查到位" in not_covered.text and "cells" not in not_covered.text
    groups = {g.get_attribute("data-area"): g.text.replace("\n", " ")
              for g in page.driver.find_elements(By.CSS_SELECTOR, ".gw-alert-group")}
    assert groups == {WANLI: "万里社区 2 条 重要 1 提示 1", TAOLIN: "桃林社区 3 条 重要 1 一般 1 提示 1"}
    page.assert_no_console_errors()


def test_filters_narrow_the_list_and_a_group_picks_its_area(page: Page) -> None:
    show(page, "gw-tab-alerts")
    assert visible_alert_ids(page) == ["31", "30", "29", "28", "27"]
    Select(page.driver.find_element(By.CSS_SELECTOR, "[data-filter='severity']")).select_by_visible_text("重要")
    assert visible_alert_ids(page) == ["31", "29"]
    Select(page.driver.find_element(By.CSS_SELECTOR, "[data-filter='severity']")).select_by_value("")
    Select(page.driver.find_element(By.CSS_SELECTOR, "[data-filter='kind']")).select_by_value("offline")
    assert visible_alert_ids(page) == ["29"]
    Select(page.driver.find_element(By.CSS_SELECTOR, "[data-filter='kind']")).select_by_value("")
    page.driver.find_element(By.CSS_SELECTOR, f".gw-alert-group[data-area='{TAOLIN}']").click()
    assert visible_alert_ids(page) == ["29", "28", "27"]
    assert Select(page.driver.find_element(By.CSS_SELECTOR, "[data-filter='area']")).first_selected_option.get_attribute("value") == TAOLIN
    # the map's markers follow the filter
    shown = page.js("return [...document.querySelectorAll('.gw-alert-marker')].filter(m => !m.hidden).map(m => m.dataset.alertId)")
    assert sorted(shown) == ["27", "28", "29"]


def test_an_alert_has_a_marker_at_its_grid_or_its_collector(page: Page) -> None:
    wait_for_js(page.driver, "document.querySelectorAll('.gw-alert-marker').length === 5")
    at = page.js("const m = window.gridwatch.triage.markers; return Object.fromEntries([...m].map(([id, e]) => "
                 "[id, [e.marker.getLatLng().lat, e.marker.getLatLng().lng]]))")
    # the unit grid's centre (its vertices are nudged a little, hence the tolerance)
    lat, lon = at["31"]
    assert abs(lat - (LAT0 + 6.5 * DLAT)) < 0.2 * DLAT and abs(lon - (LON0 + 2.5 * DLON)) < 0.2 * DLON
    # the collector's own position for an alert about the collector
    c0002 = page.service.by_id("c0002")
    assert at["29"] == pytest.approx([c0002["lat"], c0002["lon"]], abs=1e-6)
    marker = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-marker[data-alert-id='31']")
    assert marker.get_attribute("data-severity") == "major" and marker.is_displayed()


SPIES = """
window.__spied = { notes: [], beeps: 0, asked: 0 };
window.Notification = class {
  static permission = 'granted';
  static requestPermission() { window.__spied.asked += 1; return Promise.resolve('granted'); }
  constructor(title, options) { window.__spied.notes.push({ title, body: options.body, tag: options.tag }); }
};
const Real = window.AudioContext;
window.AudioContext = class extends Real {
  createOscillator() { const o = super.createOscillator(); const start = o.start.bind(o);
    o.start = (...a) => { window.__spied.beeps += 1; return start(...a); }; return o; }
};
"""


def test_a_new_high_severity_alert_beeps_and_notifies_once(page: Page) -> None:
    page.js(SPIES)
    now = int(time.time() * 1000)
    critical = alert(40, "not_started", "c0003", TAOLIN, now, {"minutes": 15.0})
    minor = alert(41, "off_grid", "c0001", WANLI, now, {"since_ms": now - 16 * MINUTE, "minutes": 16.0})
    page.service.push({"type": "alert", "change": "raised", "alert": minor})
    page.service.push({"type": "alert", "change": "raised", "alert": critical})
    wait_for_js(page.driver, "window.gridwatch.alerts.has(40) && window.gridwatch.alerts.has(41)")
    wait_for_js(page.driver, "window.__spied.notes.length >= 1")
    page.service.push({"type": "alert", "change": "updated", "alert": critical | {"detail": {"minutes": 16.0}}})
    wait_for_js(page.driver, "window.gridwatch.alerts.get(40).detail.minutes === 16")
    spied = page.js("return window.__spied")
    assert spied["beeps"] == 1
    (note,) = spied["notes"]
    assert note["title"] == "【紧急】未上岗 · c0003"
    assert note["body"].startswith("班次开始 15 分钟仍无定位（未上岗）")
    row = page.driver.find_element(By.CSS_SELECTOR, ".gw-alert-row[data-alert-id='40']")
    assert row.get_attribute("data-severity") == "critical"


def test_history_shows_the_filtered_distance_and_stops_and_replays_the_points_in_order(page: Page) -> None:
    page.driver.find_element(By.CSS_SELECTOR, ".gw-marker[data-device='c0001']").click()
    show(page, "gw-tab-history")
    assert Select(page.driver.find_element(By.ID, "gw-history-device")).first_selected_option.get_attribute("value") == "c0001"
    stop_min = page.driver.find_element(By.ID, "gw-history-stop-min")
    stop_min.clear()
    stop_min.send_keys("1")
    page.driver.find_element(By.ID, "gw-history-load").click()
    wait_for_js(page.driver, "document.getElementById('gw-history-summary').dataset.distance !== undefined")
    assert page.service.history_queries[-1] == {"stop_min": "1"}  # blank range: the service's default

    raw = jittery_walk(int(time.time() * 1000))
    filtered_m = length_m(smoothed(raw))
    summary = page.driver.find_element(By.ID, "gw-history-summary").text
    assert f"原始 {len(raw)} 点" in summary
    assert f"里程 {round(filtered_m)} m" in summary and "停留 1 处" in summary
    assert abs(filtered_m - 3 * 60 * 1.3 - 2 * 60 * 1.3) < 60  # close to the 390 m really walked
    (found,) = stops(raw, TrackSettings(min_stop_ms=MINUTE))
    assert 2 <= found.minutes < 3  # two minutes standing, and the jitter-fuzzed steps either side
    (stop,) = page.driver.find_elements(By.CSS_SELECTOR, ".gw-history-stop")
    assert f"停留 {round(found.minutes)} 分钟" in stop.text
    assert len(page.driver.find_elements(By.CSS_SELECTOR, ".gw-stop-marker")) == 1
    assert page.driver.find_element(By.ID, "gw-history-method").text.startswith("去抖")

    points = page.js("return window.gridwatch.history.points.map(p => [p.lat, p.lng])")
    page.driver.find_element(By.CSS_SELECTOR, ".gw-replay-speed[data-speed='64']").click()
    page.driver.find_element(By.ID, "gw-replay-play").click()
    samples: list[tuple[int, list[float]]] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        index, at, playing = page.js("const h = window.gridwatch.history; "
                                     "return [Number(h.slider.value), h.position(), h.playing]")
        samples.append((index, at))
        if not playing:
            break
        time.sleep(0.05)
    indices = [i for i, _ in samples]
    assert indices == sorted(indices) and indices[-1] == len(points) - 1
    assert len(set(indices)) > len(points) // 4  # it went through them, not jumped to the end
    for i, (lat, lng) in samples:
        a, b = points[i], points[min(i + 1, len(points) - 1)]
        # on the segment from fix i to fix i + 1
        assert min(a[0], b[0]) - 1e-9 <= lat <= max(a[0], b[0]) + 1e-9
        assert min(a[1], b[1]) - 1e-9 <= lng <= max(a[1], b[1]) + 1e-9
    assert samples[-1][1] == pytest.approx(points[-1])
    page.assert_no_console_errors()


def test_the_history_summary_names_the_device_as_the_list_does(driver: WebDriver) -> None:
    service = WatchService()
    service.by_id("c0001")["label"] = "王芳"
    with loaded_page(driver, service) as page:
        show(page, "gw-tab-history")
        Select(driver.find_element(By.ID, "gw-history-device")).select_by_value("c0001")
        driver.find_element(By.ID, "gw-history-load").click()
        wait_for_js(driver, "document.getElementById('gw-history-summary').dataset.distance !== undefined")
        summary = driver.find_element(By.ID, "gw-history-summary").text
        page.assert_no_console_errors()
    assert summary.startswith("王芳（c0001）：原始 "), summary


def test_the_queried_history_downloads_as_the_track_files_of_that_range(driver: WebDriver) -> None:
    from urllib.parse import parse_qs, urlsplit

    with loaded_page(driver, WatchService()) as page:
        show(page, "gw-tab-history")
        Select(driver.find_element(By.ID, "gw-history-device")).select_by_value("c0001")
        driver.find_element(By.ID, "gw-history-load").click()
        wait_for_js(driver, "document.getElementById('gw-history-summary').dataset.distance !== undefined")
        answered = page.js("const r = window.gridwatch.history.result; return [r.from, r.to]")
        links = {a.get_attribute("data-format"): a.get_attribute("href")
                 for a in driver.find_elements(By.CSS_SELECTOR, "#gw-panel-history a.gw-download") if a.is_displayed()}
        page.assert_no_console_errors()
    assert sorted(links) == ["csv", "geojson", "gpx", "xlsx"]
    for fmt, href in links.items():
        url = urlsplit(href)
        assert url.path == f"/api/exports/track.{fmt}"
        assert parse_qs(url.query) == {"device": ["c0001"], "from": [str(answered[0])], "to": [str(answered[1])]}
