"""Names on the map without a base map: street (街道) names spread along their street's
extent, community names, and near in every grid's code, none drawn over another (a
collision pass measures them on screen), in a laptop's window and on a 4K screen."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.browser import after_paint, open_browser, wait_for_js
from tests.web.fake_map import GRID_COUNT, STREETS, FakeService, Page, loaded_page
from tests.web.legibility import Box, box, boxes, displayed_text

VISIBLE_LABELS = ".gw-label span"


def settled(page: Page, passes: int = 1) -> None:
    """Wait for the label pass after the last move, and for the browser to draw it."""
    wait_for_js(page.driver, "!document.querySelector('.leaflet-zoom-anim')")
    wait_for_js(page.driver, f"Number(document.getElementById('gw-map').dataset.labelPasses) >= {passes}")
    after_paint(page.driver)


def visible_labels(page: Page) -> list[tuple[str, Box]]:
    texts = displayed_text(page, VISIBLE_LABELS)
    found = boxes(page, VISIBLE_LABELS)
    shown = page.js("return [...document.querySelectorAll(arguments[0])].map(e => e.getClientRects().length > 0)",
                    VISIBLE_LABELS)
    return list(zip(texts, [b for b, s in zip(found, shown, strict=True) if s], strict=True))


def assert_apart(labels: list[tuple[str, Box]]) -> None:
    clashes = [(a, b) for i, (a, box_a) in enumerate(labels) for b, box_b in labels[i + 1:] if box_a.overlaps(box_b)]
    assert clashes == []


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (3840, 2160)])
def test_street_and_community_names_are_drawn_and_no_two_labels_overlap(width: int, height: int) -> None:
    with open_browser(width=width, height=height) as driver, loaded_page(driver, FakeService()) as page:
        settled(page)
        labels = visible_labels(page)
        names = {text for text, _ in labels}
        streets = {name for name, _ in STREETS.values()}
        communities = {name for _, names in STREETS.values() for name in names.values()}
        assert streets | communities <= names
        assert_apart(labels)
        map_box = box(page, "#gw-map")
        # a street's name runs along its street: wider than the same text set tight
        street = next(b for text, b in labels if text in streets)
        assert street.width > 4 * 15 * 1.5
        assert all(map_box.contains(b) for _, b in labels)
        if width >= 3840:  # near in on a 4K screen: each grid's code too
            codes = [text for text, _ in labels if text.isdigit() and len(text) == 15]
            assert len(codes) >= GRID_COUNT * 0.9
        page.assert_no_console_errors()


def test_zooming_out_keeps_the_names_apart_by_hiding_those_that_would_collide() -> None:
    with open_browser(width=1440, height=900) as driver, loaded_page(driver, FakeService()) as page:
        settled(page)
        for _ in range(3):
            passes = int(page.js("return document.getElementById('gw-map').dataset.labelPasses"))
            driver.find_element(By.CSS_SELECTOR, ".leaflet-control-zoom-out").click()
            settled(page, passes + 1)
            assert_apart(visible_labels(page))
        # far out the lattice is a few dozen pixels: some names had to give way
        hidden = page.js("return document.querySelectorAll('.gw-label.gw-collided').length")
        assert hidden >= 1
        assert page.js("return document.querySelectorAll('.gw-label--grid').length") == 0
        page.assert_no_console_errors()


def test_without_tiles_the_roads_between_grids_are_drawn_under_them_a_streets_width_wide() -> None:
    with open_browser(width=1440, height=900) as driver, loaded_page(driver, FakeService()) as page:
        settled(page)
        road = page.js("const p = document.querySelector('path.gw-road'); const pane = p.closest('.leaflet-pane');"
                       "return [Number(getComputedStyle(pane).zIndex), parseFloat(p.getAttribute('stroke-width')),"
                       " document.querySelectorAll('path.gw-road').length]")
        grids_pane = page.js("return Number(getComputedStyle(document.querySelector('path.gw-grid')"
                             ".closest('.leaflet-pane')).zIndex)")
        assert road[0] < grids_pane and road[2] == 1  # below the grids: their outlines stay on top
        # 12 m at the scale bar's metres per pixel
        metres_per_px = page.js("const bar = document.querySelector('.leaflet-control-scale-line');"
                                "return [parseFloat(bar.textContent) * (bar.textContent.includes('km') ? 1000 : 1),"
                                " bar.getBoundingClientRect().width]")
        assert road[1] == pytest.approx(12 / (metres_per_px[0] / metres_per_px[1]), rel=0.1)
        page.assert_no_console_errors()


def test_with_tiles_no_roads_are_drawn_over_them() -> None:
    with open_browser(width=1440, height=900) as driver, \
            loaded_page(driver, FakeService(tile_url="/tiles/{z}/{x}/{y}.png")) as page:
        assert page.js("return document.querySelectorAll('path.gw-road').length") == 0
        page.assert_no_console_errors()
