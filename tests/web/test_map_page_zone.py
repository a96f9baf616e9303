"""The map shows times in the city's zone, labelled, whatever the browser's zone: a
supervisor's laptop set to Los Angeles reads the same clock as the reports."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

from selenium.webdriver.common.by import By

from tests.browser import open_browser, wait_for_js
from tests.web.fake_map import FakeService, loaded_page

BROWSER_ZONE = "America/Los_Angeles"  # 16 hours behind Beijing: another clock, mostly another day


def fix_time_shown(driver) -> str:
    driver.find_element(By.CSS_SELECTOR, ".gw-device-row[data-device='v0001']").click()
    wait_for_js(driver, "!document.getElementById('gw-details').hidden")
    wait_for_js(driver, "document.querySelector('.gw-downloads[data-kind=track] a') !== null")
    for row in driver.find_elements(By.CSS_SELECTOR, "#gw-details-body dt"):
        if row.text.startswith("定位时间"):
            return row.find_element(By.XPATH, "following-sibling::dd[1]").text
    raise AssertionError("no fix time in the details")


def test_a_fix_time_is_the_citys_clock_labelled_in_a_browser_of_another_zone() -> None:
    service = FakeService()
    fix_ms = next(d["t"] for d in service.devices if d["id"] == "v0001")
    with open_browser(env={"TZ": BROWSER_ZONE}) as driver, loaded_page(driver, service) as page:
        browser_zone = page.js("return Intl.DateTimeFormat().resolvedOptions().timeZone")
        browser_clock = page.js(f"const d = new Date({fix_ms}); return [d.getHours(), d.getMinutes()]")
        shown = fix_time_shown(driver)
        track_link = driver.find_element(By.CSS_SELECTOR, ".gw-downloads[data-kind=track] a[data-format=csv]")
        href = track_link.get_attribute("href")
        page.assert_no_console_errors()
    assert browser_zone == BROWSER_ZONE  # the browser really runs in another zone
    beijing = datetime.fromtimestamp(fix_ms / 1000, ZoneInfo("Asia/Shanghai"))
    los_angeles = datetime.fromtimestamp(fix_ms / 1000, ZoneInfo(BROWSER_ZONE))
    assert browser_clock == [los_angeles.hour, los_angeles.minute]
    today_in_beijing = datetime.fromtimestamp(time.time(), ZoneInfo("Asia/Shanghai")).date()
    clock = beijing.strftime("%H:%M:%S")
    expected = clock if beijing.date() == today_in_beijing else f"{beijing.date().isoformat()} {clock}"
    assert shown.startswith(f"{expected} 北京时间"), shown
    assert los_angeles.strftime("%H:%M:%S") not in shown
    assert "/api/exports/track.csv?device=v0001&from=" in href


def test_the_history_range_is_the_citys_wall_clock_in_a_browser_of_another_zone() -> None:
    """The range a dispatcher types in the history panel is read, and the range the service
    chose is shown, on the city's clock (as the summary and the stops are), not the browser's."""
    from selenium.webdriver.support.ui import Select

    from tests.web.test_map_page_watch import WatchService
    from web.params import parse_time

    service = WatchService()
    beijing = ZoneInfo("Asia/Shanghai")
    with open_browser(env={"TZ": BROWSER_ZONE}) as driver, loaded_page(driver, service) as page:
        driver.find_element(By.ID, "gw-tab-history").click()
        wait_for_js(driver, "!document.getElementById('gw-panel-history').hidden")
        Select(driver.find_element(By.ID, "gw-history-device")).select_by_value("c0001")
        driver.find_element(By.ID, "gw-history-load").click()
        wait_for_js(driver, "document.getElementById('gw-history-summary').dataset.distance !== undefined")
        answered_from = page.js("return window.gridwatch.history.result.from")
        shown_from = driver.find_element(By.ID, "gw-history-from").get_attribute("value")

        # a dispatcher asks for 09:00 to 10:30 of 1 December, Beijing time
        page.js("const h = window.gridwatch.history; h.fromInput.value = '2026-12-01T09:00';"
                "h.toInput.value = '2026-12-01T10:30';")
        driver.find_element(By.ID, "gw-history-load").click()
        deadline = time.monotonic() + 10
        while len(service.history_queries) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        query = service.history_queries[-1]
        page.assert_no_console_errors()
    assert shown_from == datetime.fromtimestamp(answered_from / 1000, beijing).strftime("%Y-%m-%dT%H:%M")
    assert parse_time(query["from"], "from", beijing) == datetime(2026, 12, 1, 9, 0, tzinfo=beijing)
    assert parse_time(query["to"], "to", beijing) == datetime(2026, 12, 1, 10, 30, tzinfo=beijing)
