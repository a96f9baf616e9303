"""What a person watching the map reads about a device: its registry name, plate or
collector instead of a bare id; online while it keeps sending anything (a sensor's
status reports), not only while it moves; a sensor's readings and their day; an alarm's
value against its limit; and the "定位" command for those who may send it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import wait_for_js
from tests.web.fake_map import FakeService, Page, device, grid_code, loaded_page

COVER = "6201050101000007"
BIN = "6201050302000003"


def registered_fleet(now_ms: int) -> list[dict]:
    return [
        device("c0001", "collector", 1, 5, now_ms - 4_000, label="王芳", person="王芳", name="采集员 王芳", heard=now_ms - 4_000),
        device("jt013901050001", "vehicle", 2, 3, now_ms - 1_000, label="甘A·D1234", plate="甘A·D1234", name="环卫车 3 号",
               heard=now_ms - 1_000),
        # a cover that sits still: its fix is from long ago, its status came a moment ago
        device("mh-0007", "sensor", 5, 6, now_ms - 50 * 60_000, label="上水井盖 北街 7 号", name="上水井盖 北街 7 号",
               component=COVER, heard=now_ms - 20_000, readings={"tilt": 1.5, "bat": 88, "t": now_ms - 20_000}, bat=88),
        device("bin-0-620105001", "sensor", 6, 6, now_ms - 50 * 60_000, label="果皮箱 桃林 3 号", name="果皮箱 桃林 3 号",
               component=BIN, heard=now_ms - 30_000, readings={"fill": 64, "bat": 77, "t": now_ms - 30_000}),
        device("c0999", "collector", 7, 2, now_ms - 2_000, heard=now_ms - 2_000),  # not registered: its id
    ]


@pytest.fixture
def fleet() -> FakeService:
    return FakeService(devices=registered_fleet(int(time.time() * 1000)), online_s={"collector": 300, "vehicle": 300, "sensor": 1800})


@pytest.fixture
def named(driver: WebDriver, fleet: FakeService) -> Iterator[Page]:
    with loaded_page(driver, fleet) as loaded:
        yield loaded


def _row_text(page: Page, device_id: str) -> str:
    return page.js("return document.querySelector(`.gw-device-row[data-device='${arguments[0]}'] .gw-col-id`).textContent", device_id)


def _open(page: Page, device_id: str) -> None:
    page.driver.find_element(By.CSS_SELECTOR, f".gw-device-row[data-device='{device_id}']").click()
    wait_for_js(page.driver, f"!document.getElementById('gw-details').hidden && "
                             f"document.getElementById('gw-details-title').textContent.includes('{device_id}')")


def test_the_list_names_collectors_vehicles_and_sensors_as_the_registry_does(named: Page) -> None:
    rows = {d: _row_text(named, d) for d in ("c0001", "jt013901050001", "mh-0007", "bin-0-620105001", "c0999")}
    assert rows == {
        "c0001": "王芳c0001",
        "jt013901050001": "甘A·D1234jt013901050001",
        "mh-0007": "上水井盖 北街 7 号mh-0007",
        "bin-0-620105001": "果皮箱 桃林 3 号bin-0-620105001",
        "c0999": "c0999",  # unregistered: its id, once
    }
    named.driver.find_element(By.ID, "gw-filter").send_keys("D1234")
    shown = named.js("return [...document.querySelectorAll('.gw-device-row')].filter((r) => !r.hidden).map((r) => r.dataset.device)")
    assert shown == ["jt013901050001"]
    named.assert_no_console_errors()


def test_the_details_name_the_vehicle_and_its_plate(named: Page) -> None:
    _open(named, "jt013901050001")
    wait_for_js(named.driver, "document.getElementById('gw-track-info').textContent.includes('轨迹：')")
    track = named.js("return document.getElementById('gw-track-info').textContent")
    title = named.js("return document.getElementById('gw-details-title').textContent")
    body = named.js("return document.getElementById('gw-details-body').textContent")
    assert title.startswith("甘A·D1234jt013901050001")
    assert "车牌甘A·D1234" in body and "名称环卫车 3 号" in body
    assert track.startswith("甘A·D1234 近30分钟轨迹")


def test_a_sensor_shows_its_latest_readings_and_a_chart_of_its_day(named: Page) -> None:
    now = int(time.time() * 1000)
    named.service.readings["bin-0-620105001"] = [{"t": now - h * 3_600_000, "kind": "status", "fill": 64 - 2 * h, "bat": 77}
                                                  for h in range(23, -1, -1)]
    _open(named, "bin-0-620105001")
    wait_for_js(named.driver, "document.querySelector('#gw-readings-chart svg[data-field]') !== null")
    body = named.js("return document.getElementById('gw-details-body').textContent")
    chart = named.js("const s = document.querySelector('#gw-readings-chart svg'); return [s.dataset.field, s.dataset.points,"
                     " document.getElementById('gw-readings-chart').textContent]")
    assert "满溢度64%" in body and "电池77%" in body and f"部件{BIN}" in body
    assert chart[:2] == ["fill", "24"] and "满溢度（近24小时）" in chart[2]


def test_a_still_sensor_reporting_status_every_minute_stays_online_for_an_hour(driver: WebDriver, fleet: FakeService) -> None:
    # the page's clock, moved by the test: an hour passes in a few seconds
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "(() => { const real = Date.now.bind(Date); window.gwClockShift = 0; Date.now = () => real() + window.gwClockShift; })();")})
    try:
        with loaded_page(driver, fleet) as page:
            start = page.js("return Date.now()")
            cover = fleet.by_id("mh-0007")
            live_before = page.js("return document.getElementById('gw-live-count').textContent")
            for minute in range(1, 61):
                frames = page.js("return window.gridwatch.framesReceived")
                page.js("window.gwClockShift = arguments[0]", minute * 60_000)
                # a status report: the cover is heard from, its position (and its time) stays
                fleet.push({"type": "delta", "devices": [cover | {"heard": start + minute * 60_000 - 5_000}]})
                wait_for_js(driver, f"window.gridwatch.framesReceived > {frames}")
            wait_for_js(driver, "document.querySelector(\".gw-device-row[data-device='bin-0-620105001']\").classList.contains('gw-stale')")
            cover_row = page.js("return document.querySelector(\".gw-device-row[data-device='mh-0007']\").className")
            live_after = page.js("return document.getElementById('gw-live-count').textContent")
            _open(page, "mh-0007")
            status = page.js("return document.querySelector('#gw-details-title .gw-status').textContent")
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
    assert "gw-stale" not in cover_row and status == "在线"
    # of five: the cover stays; the bin fell silent half an hour ago, the handsets and the truck did too
    assert (live_before, live_after) == ("5", "1")


def test_alarms_show_the_measured_value_against_the_limit(driver: WebDriver, fleet: FakeService) -> None:
    now = int(time.time() * 1000)
    fleet.alarms = [
        {"id": 2, "source": "vehicle", "device": "jt013901050001", "label": "甘A·D1234", "component": None, "kind": "overspeed",
         "raised": True, "t": now - 60_000, "value": 72.4, "limit": 60, "detail": "speed 72.4 km/h, limit 60 km/h",
         "lat": 36.0995, "lon": 103.7135, "grid": grid_code(2, 3)},
        {"id": 1, "source": "sensor", "device": "mh-0007", "label": "上水井盖 北街 7 号", "component": COVER, "kind": "tilt",
         "raised": True, "t": now - 120_000, "value": 35.5, "limit": 10, "detail": "tilt 35.5° against installed 0°",
         "lat": 36.1020, "lon": 103.7160, "grid": grid_code(5, 6)},
    ]
    with loaded_page(driver, fleet) as page:
        page.driver.find_element(By.ID, "gw-tab-alerts").click()
        wait_for_js(driver, "document.querySelectorAll('#gw-alarm-rows li').length === 2")
        rows = page.js("return [...document.querySelectorAll('#gw-alarm-rows li')].map((li) => li.textContent)")
        tooltips = page.js("return [...document.querySelectorAll('#gw-alarm-rows li .gw-row-text')].map((t) => t.title)")
    overspeed, tilt = sorted(rows, key=lambda text: "超速" not in text)
    assert "甘A·D1234" in overspeed and "72.4 km/h / 限值 60 km/h" in overspeed
    assert "上水井盖 北街 7 号" in tilt and "35.5° / 限值 10°" in tilt
    # the list reads in Chinese: the service's English detail is the tooltip, not the text
    assert "speed" not in overspeed and "installed" not in tilt
    assert sorted(tooltips) == ["speed 72.4 km/h, limit 60 km/h", "tilt 35.5° against installed 0°"]


def test_a_commander_sends_locate_from_the_details_and_sees_the_device_answer(named: Page) -> None:
    _open(named, "jt013901050001")
    wait_for_js(named.driver, "!document.getElementById('gw-commands').hidden")
    named.driver.find_element(By.CSS_SELECTOR, "#gw-commands .gw-command-locate").click()
    wait_for_js(named.driver, "document.querySelector('.gw-command-result').dataset.state === 'sent'")
    sent = named.js("return document.querySelector('.gw-command-result').textContent")
    truck = named.service.by_id("jt013901050001")
    named.service.push({"type": "delta", "devices": [truck | {"t": int(time.time() * 1000), "heard": int(time.time() * 1000)}]})
    wait_for_js(named.driver, "document.querySelector('.gw-command-result').dataset.state === 'answered'")
    answered = named.js("return document.querySelector('.gw-command-result').textContent")
    assert named.service.locates == [("jt013901050001", "fake-csrf")]
    assert sent == "已发送（MQTT），等待回报…" and answered.startswith("设备已回报")


def test_a_failed_locate_says_why(driver: WebDriver, fleet: FakeService) -> None:
    fleet.locate_answer = (503, {"error": "terminal jt013901050001 is not connected to the JT/T 808 gateway"})
    with loaded_page(driver, fleet) as page:
        _open(page, "jt013901050001")
        page.driver.find_element(By.CSS_SELECTOR, "#gw-commands .gw-command-locate").click()
        wait_for_js(driver, "document.querySelector('.gw-command-result').dataset.state === 'failed'")
        text = page.js("return document.querySelector('.gw-command-result').textContent")
    assert text == "发送失败：terminal jt013901050001 is not connected to the JT/T 808 gateway"


def test_a_viewer_has_no_locate_button(driver: WebDriver, fleet: FakeService) -> None:
    fleet.user = fleet.user | {"role": "viewer"}
    with loaded_page(driver, fleet) as page:
        _open(page, "c0001")
        hidden = page.js("return document.getElementById('gw-commands').hidden")
    assert hidden is True and fleet.locates == []


def test_patrol_alerts_name_the_collector_as_the_list_does(driver: WebDriver, fleet: FakeService) -> None:
    from tests.web.test_map_page_watch import WANLI, alert

    now = int(time.time() * 1000)
    fleet.alerts = [alert(2, "offline", "c0001", WANLI, now - 60_000, {"last_fix_ms": now - 20 * 60_000, "minutes": 16.0}),
                    alert(1, "battery_low", "c0999", WANLI, now - 90_000, {"battery_pct": 15.0, "threshold_pct": 20.0})]
    with loaded_page(driver, fleet) as page:
        page.driver.find_element(By.ID, "gw-tab-alerts").click()
        wait_for_js(driver, "document.querySelectorAll('#gw-alert-rows .gw-alert-row').length === 2")
        who = page.js("return Object.fromEntries([...document.querySelectorAll('#gw-alert-rows .gw-alert-row')]"
                      ".map((li) => [li.dataset.alertId, li.querySelector('.gw-row-who').textContent]))")
        page.assert_no_console_errors()
    assert who == {"2": "王芳", "1": "c0999"}  # a collector the registry does not know: its id


@pytest.mark.parametrize(("field", "values", "top"), [("fill", [51.3, 79.8], "79.8%"), ("fill", [20.0, 100.0], "100%"),
                                                      ("level", [0.0, 12.5], "12.5 cm"), ("gas", [0.0, 1234.0], "1,234 ppm")])
def test_the_readings_chart_shows_its_scale_whole(driver: WebDriver, fleet: FakeService, field: str, values: list[float],
                                                  top: str) -> None:
    """The top of the scale reads 79.8%, not a clipped "9.8%" a dispatcher would take for the figure."""
    now = int(time.time() * 1000)
    fleet.readings["bin-0-620105001"] = [{"t": now - (len(values) - i) * 60_000, "kind": "status", field: v, "bat": 77}
                                         for i, v in enumerate(values)]
    with loaded_page(driver, fleet) as page:
        _open(page, "bin-0-620105001")
        wait_for_js(driver, "document.querySelector('#gw-readings-chart svg[data-field]') !== null")
        labels = page.js(
            "const s = document.querySelector('#gw-readings-chart svg').getBoundingClientRect();"
            "return [...document.querySelectorAll('#gw-readings-chart svg text')].map((t) => {"
            "  const r = t.getBoundingClientRect();"
            "  return [t.textContent, r.left >= s.left - 0.5 && r.right <= s.right + 0.5]; });")
    assert labels[0] == [top, True] and all(inside for _, inside in labels), labels


def test_the_device_list_stays_in_view_beside_a_selected_sensors_details(driver: WebDriver, fleet: FakeService) -> None:
    """Selecting a device keeps the list beside its details: a dispatcher goes from one to the
    next without closing the panel (the details scroll within their share of the side)."""
    now = int(time.time() * 1000)
    fleet.readings["bin-0-620105001"] = [{"t": now - h * 3_600_000, "kind": "status", "fill": 64 - 2 * h, "bat": 77}
                                         for h in range(23, -1, -1)]
    with loaded_page(driver, fleet) as page:
        _open(page, "bin-0-620105001")
        wait_for_js(driver, "document.querySelector('#gw-readings-chart svg[data-field]') !== null")
        shown = page.js(
            "const list = document.querySelector('.gw-devices tbody').parentElement.parentElement.getBoundingClientRect();"
            "return [...document.querySelectorAll('.gw-device-row')].filter((row) => {"
            "  const r = row.getBoundingClientRect();"
            "  return r.top >= list.top && r.bottom <= list.bottom && r.bottom <= window.innerHeight; }).length;")
        page_scrolls = page.js("return document.documentElement.scrollHeight > window.innerHeight")
    assert shown >= 4 and not page_scrolls, (shown, page_scrolls)  # of five: a list to pick from, not a sliver


def test_a_locate_the_device_never_answers_says_so_after_a_minute(driver: WebDriver, fleet: FakeService) -> None:
    """Not "等待回报…" for ever: a device that is off, out of coverage or deaf to the command
    (a manhole cover) is reported as not having answered."""
    script = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "(() => { const real = Date.now.bind(Date); window.gwClockShift = 0; Date.now = () => real() + window.gwClockShift; })();")})
    try:
        with loaded_page(driver, fleet) as page:
            _open(page, "mh-0007")
            page.driver.find_element(By.CSS_SELECTOR, "#gw-commands .gw-command-locate").click()
            wait_for_js(driver, "document.querySelector('.gw-command-result').dataset.state === 'sent'")
            page.js("window.gwClockShift = 30_000")
            time.sleep(1.5)
            waiting = page.js("return document.querySelector('.gw-command-result').dataset.state")
            page.js("window.gwClockShift = 61_000")
            wait_for_js(driver, "document.querySelector('.gw-command-result').dataset.state === 'silent'", timeout=5)
            text = page.js("return document.querySelector('.gw-command-result').textContent")
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})
    assert waiting == "sent"
    assert text == "60 秒内未回报"
