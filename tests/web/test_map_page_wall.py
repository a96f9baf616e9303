"""The big screen (大屏) in headless Chromium: at /wall (or /?wall=1) the city fills the
screen, text is sized for the room, panels show live figures without controls, and the
figures are fetched again by themselves; case figures show once the service has them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
import trio
from selenium.webdriver.common.by import By

from tests.browser import after_paint, browser_errors, open_browser, wait_for_js
from tests.harness import new_account, start_service
from tests.web.fake_map import FakeService, Page, serving
from tests.web.legibility import Box, box, boxes, displayed_text, extent
from tests.web.test_map_page_labels import assert_apart, settled, visible_labels

ROOM_TEXT_PX = 24  # body text at 3840×2160
FILLED = 0.6
NO_CASES = "/api/cases/summary - Failed to load resource: the server responded with a status of 404"


@contextlib.contextmanager
def wall_page(service: FakeService, path: str = "/wall", width: int = 3840, height: int = 2160) -> Iterator[Page]:
    with serving(service.app()) as url, open_browser(width=width, height=height) as driver:
        driver.get(url + path)
        wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded")
        wait_for_js(driver, "window.gridwatch.wsState === 'open' && window.gridwatch.framesReceived >= 1")
        wait_for_js(driver, "Number(document.getElementById('gw-wall-panels').dataset.refreshes) >= 1")
        yield Page(driver, service, url)


def errors_but_the_missing_cases(page: Page) -> list[str]:
    """Console errors, less the 404 of the case figures a service without cases answers."""
    return [e for e in browser_errors(page.driver) if NO_CASES not in e]


def figure(page: Page, selector: str) -> str:
    (text,) = displayed_text(page, f"#gw-wall-panels {selector} .gw-wall-value")
    return text


_TEXT_SIZES = """
const sizes = [];
for (const root of document.querySelectorAll(arguments[0])) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.textContent.trim() || n.parentElement.getClientRects().length === 0) continue;
    sizes.push([n.textContent.trim(), parseFloat(getComputedStyle(n.parentElement).fontSize)]);
  }
}
return sizes;
"""


def test_at_3840_by_2160_the_city_fills_the_screen_and_the_panels_text_is_sized_for_the_room() -> None:
    with wall_page(FakeService()) as page:
        settled(page)
        after_paint(page.driver)
        viewport = Box(0, 0, *page.js("return [window.innerWidth, window.innerHeight]"))
        grids = extent(page, "path.gw-grid")
        assert box(page, "#gw-map").contains(grids)
        assert grids.width >= viewport.width * FILLED or grids.height >= viewport.height * FILLED, (viewport, grids)

        sizes = page.js(_TEXT_SIZES, "#gw-wall-panels, .gw-header")
        assert len(sizes) > 20
        small = [(text, px) for text, px in sizes if px < ROOM_TEXT_PX]
        assert small == []

        # live figures, no controls
        assert page.js("return document.body.classList.contains('gw-wall')")
        for hidden in (".gw-side", ".leaflet-control-zoom", "#gw-logout", ".gw-coverage-control"):
            assert boxes(page, hidden) == [] or box(page, hidden).width == 0, hidden
        panels = page.js("return [...document.querySelectorAll('.gw-wall-panel')]"
                         ".filter(p => p.getClientRects().length).map(p => p.dataset.panel)")
        assert panels == ["devices", "alarms", "alerts", "coverage"]  # no cases kept: no case panel
        assert figure(page, "[data-class='collector']") == "2"  # c0003 is stale
        assert figure(page, "[data-class='vehicle']") == "2"
        assert_apart(visible_labels(page))
        assert errors_but_the_missing_cases(page) == []


def test_alarms_are_counted_by_severity_as_they_arrive_at_1920_by_1080() -> None:
    with wall_page(FakeService(), path="/?wall=1", width=1920, height=1080) as page:
        assert page.js("return document.body.classList.contains('gw-wall')")
        assert figure(page, "[data-level='critical']") == "0"
        now = int(time.time() * 1000)
        page.service.push({"type": "alarm", "source": "vehicle", "device": "v0001", "component": None, "kind": "sos",
                           "raised": True, "t": now, "value": None, "detail": "", "lat": None, "lon": None, "grid": None})
        wait_for_js(page.driver, "document.querySelector(\"#gw-wall-panels [data-level='critical'] .gw-wall-value\")"
                                 ".textContent === '1'", timeout=5)
        assert figure(page, "[data-kind='紧急报警']") == "1"
        # the room reads Chinese: the severities' English names are tooltips, not text on the wall
        (alarms,) = displayed_text(page, "#gw-wall-panels [data-panel='alarms']")
        assert not any("a" <= c.lower() <= "z" for c in alarms), alarms
        assert page.js("return document.querySelector(\"#gw-wall-panels [data-level='critical']\").title") == "紧急 critical"
        sizes = page.js(_TEXT_SIZES, "#gw-wall-panels")
        assert min(px for _, px in sizes) >= 16  # a 1080p wall still reads from a distance
        assert errors_but_the_missing_cases(page) == []


@pytest.mark.parametrize("refresh", [2])
def test_figures_are_fetched_again_by_themselves_and_case_figures_show_once_there_are_cases(refresh: int) -> None:
    service = FakeService()
    service.coverage = {"now": int(time.time() * 1000), "grids": {}, "unvisited": [], "slots": [
        {"collector": "c0001", "area": "A1", "grids_total": 16, "grids_covered": 4},
        {"collector": "c0002", "area": "A2", "grids_total": 16, "grids_covered": 12},
    ]}
    service.by_id("c0001")["label"] = "王芳"  # registered: named; c0002 is not, and keeps its id
    with wall_page(service, path=f"/wall?refresh={refresh}", width=1920, height=1080) as page:
        assert figure(page, "[data-figure='coverage-share']") == "50%"
        assert displayed_text(page, "#gw-wall-panels [data-collector='c0001'] dt") == ["王芳 A1"]
        assert displayed_text(page, "#gw-wall-panels [data-collector='c0002'] dt") == ["c0002 A2"]
        assert not page.js("return document.querySelector(\"[data-panel='cases']\").getClientRects().length")
        first = service.coverage_requests
        service.cases = {"open": 37, "overdue": 5, "by_stage": {"派遣": 12, "处置": 20}}
        service.coverage["slots"][0]["grids_covered"] = 12
        wait_for_js(page.driver, "document.querySelector(\"[data-panel='cases']\").getClientRects().length > 0",
                    timeout=refresh * 3)
        assert service.coverage_requests > first
        wait_for_js(page.driver, "document.querySelector(\"[data-figure='coverage-share'] .gw-wall-value\")"
                                 ".textContent === '75%'", timeout=refresh * 3)
        assert figure(page, "[data-figure='open']") == "37"
        assert figure(page, "[data-figure='overdue']") == "5"
        assert figure(page, "[data-figure='by_stage.派遣']") == "12"
        assert errors_but_the_missing_cases(page) == []


async def test_the_wall_logs_in_into_its_own_mode_on_the_real_service(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer", district=None)

        def in_browser() -> tuple[str, bool, list[str]]:
            with open_browser(width=1920, height=1080) as driver:
                driver.get(running.url + "/wall")
                wait_for_js(driver, "location.pathname === '/login' && window.gridwatchLogin && window.gridwatchLogin.ready")
                came_to = driver.execute_script("return location.pathname + location.search")
                driver.find_element(By.ID, "gw-login-name").send_keys(name)
                driver.find_element(By.ID, "gw-login-password").send_keys(password)
                driver.find_element(By.ID, "gw-login-submit").click()
                wait_for_js(driver, "location.pathname === '/wall' && window.gridwatch && window.gridwatch.gridsLoaded",
                            timeout=20)
                wait_for_js(driver, "document.querySelectorAll('.gw-wall-panel').length >= 4", timeout=10)
                wall = driver.execute_script("return document.body.classList.contains('gw-wall')")
                return came_to, wall, [e for e in browser_errors(driver) if "401" not in e and NO_CASES not in e]

        came_to, wall, errors = await trio.to_thread.run_sync(in_browser)
        nursery.cancel_scope.cancel()
    assert came_to == "/login?next=/wall"
    assert wall and errors == []
