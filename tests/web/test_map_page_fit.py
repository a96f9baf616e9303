"""The command map's first view frames the unit grids the page receives, at any window
size, whatever centre and zoom /api/config proposes: against the throwaway server of
test_map_page_static, in headless Chromium windows of a laptop's and a 4K screen's size."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.browser import after_paint, open_browser, wait_for_js
from tests.web.fake_map import FakeService, Page, canned_grids, loaded_page
from tests.web.legibility import Box, box, extent

FILLED = 0.6  # the grids span at least this share of the map's width or of its height


def framed(page: Page) -> tuple[Box, Box]:
    """The map's box and the box around every grid drawn, in viewport pixels."""
    after_paint(page.driver)
    return box(page, "#gw-map"), extent(page, "path.gw-grid")


INSIDE = ("(() => { const m = document.getElementById('gw-map').getBoundingClientRect();"
          " const ps = [...document.querySelectorAll('path.gw-grid')].map((p) => p.getBoundingClientRect());"
          " return ps.length > 0 && ps.every((r) => r.left >= m.left - 1 && r.right <= m.right + 1"
          " && r.top >= m.top - 1 && r.bottom <= m.bottom + 1); })()")


# the widest grid drawn: a grid scrolled out of the view is clipped away (width 0)
WIDEST_GRID = "Math.max(...[...document.querySelectorAll('path.gw-grid')].map((p) => p.getBoundingClientRect().width))"


def first_view(page: Page) -> tuple[Box, Box]:
    """``framed`` once the page has fitted its first view (the grids arrive, are drawn,
    then framed: a measure between the two would see the fallback view)."""
    wait_for_js(page.driver, INSIDE, timeout=10)
    return framed(page)


def assert_frames(map_box: Box, grids: Box) -> None:
    assert map_box.contains(grids), (map_box, grids)
    assert grids.width >= map_box.width * FILLED or grids.height >= map_box.height * FILLED, (map_box, grids)


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (3840, 2160)])
def test_the_first_view_frames_the_grids_at_any_window_size(width: int, height: int) -> None:
    with open_browser(width=width, height=height) as driver, loaded_page(driver, FakeService()) as page:
        map_box, grids = first_view(page)
        assert map_box.width > width * 0.5  # the map, not a sliver of it, is what is measured
        assert_frames(map_box, grids)
        page.assert_no_console_errors()


def test_the_proposed_centre_and_zoom_give_way_to_the_grids_received() -> None:
    """A service proposing a view far off and far out (and the page of a district's
    account, which receives only its district's grids) still opens on the grids it has."""
    one_street = canned_grids()
    one_street["features"] = [f for f in one_street["features"] if f["properties"]["street"].endswith("002")]
    service = FakeService(grids=one_street, centre=(36.0, 103.5), zoom=11)
    with open_browser(width=1440, height=900) as driver, loaded_page(driver, service) as page:
        map_box, grids = framed(page)
        assert_frames(map_box, grids)
        assert page.js("return document.querySelectorAll('path.gw-grid').length") == len(one_street["features"])
        assert page.driver.find_element(By.ID, "gw-district").text == "辖区 安宁区"
        page.assert_no_console_errors()


def test_a_resized_window_is_framed_again_until_the_view_is_moved() -> None:
    with open_browser(width=1440, height=900) as driver, loaded_page(driver, FakeService()) as page:
        before = first_view(page)[1]
        driver.set_window_size(2560, 1600)
        wait_for_js(driver, "document.getElementById('gw-map').getBoundingClientRect().width > 2000")
        wait_for_js(driver, f"{WIDEST_GRID} > {before.width / 12 * 1.2}", timeout=5)  # one grid of the 12 across, drawn larger
        map_box, grids = framed(page)
        assert_frames(map_box, grids)

        driver.find_element(By.CSS_SELECTOR, ".leaflet-control-zoom-in").click()
        wait_for_js(driver, f"{WIDEST_GRID} > {grids.width / 12 * 1.5}", timeout=5)
        # Leaflet marks the map while a zoom animates: measure once it has settled
        wait_for_js(driver, "!document.querySelector('.leaflet-zoom-anim')", timeout=5)
        zoomed = framed(page)[1]
        driver.set_window_size(1440, 900)
        wait_for_js(driver, "document.getElementById('gw-map').getBoundingClientRect().width < 1400")
        map_box, grids = framed(page)
        assert grids.width == pytest.approx(zoomed.width, rel=0.01)  # moved by hand: the view stays as it was
        assert not map_box.contains(grids)
        page.assert_no_console_errors()
