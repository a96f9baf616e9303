"""The command map page in headless Chromium, against a throwaway server.

The server here is a small Starlette app: it serves ``web/static`` and canned answers for
the page's API (config, 96 unit grids of district 620105, seven devices, a track, and the
patrol routes: open alerts, alarm history, live coverage and the day's coverage report,
empty unless a test fills them in), and a ``/ws`` feed that sends a snapshot, then moves
vehicle v0001 east and collector c0001 north in delta frames once a test releases them,
and passes on any frame a test pushes.
"""

from __future__ import annotations

import time

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import after_paint, save_screenshot, wait_for_js, wait_until_still
from tests.web.fake_map import DELTA_STEPS, GRID_COUNT, SCREENSHOT, STREETS, FakeService, Page, device, grid_code, loaded_page
from tests.web.legibility import (
    READABLE,
    box,
    boxes,
    covered,
    displayed_text,
    distance,
    extent,
    rgb,
    rows_whole_or_scrolled,
    screen_colours,
    style,
    text_contrast,
)


def test_every_unit_grid_is_drawn_as_an_outlined_polygon_carrying_its_code(page: Page) -> None:
    codes = page.js("return [...document.querySelectorAll('path.gw-grid')].map(p => p.dataset.code)")
    assert len(codes) == GRID_COUNT
    assert sorted(codes) == sorted(f["properties"]["code"] for f in page.service.grids["features"])
    assert page.js("return document.querySelectorAll('.gw-label--street').length") == 2
    assert page.js("return document.querySelectorAll('.gw-label--community').length") == 6
    assert page.js("return document.querySelectorAll('.leaflet-tile').length") == 0
    assert page.js("return document.getElementById('gw-map').classList.contains('gw-untiled')")
    assert page.service.tiles_served == 0
    page.assert_no_console_errors()


def test_each_device_has_one_marker_of_its_class_and_one_list_row(page: Page) -> None:
    markers = page.js(
        "return Object.fromEntries([...document.querySelectorAll('.gw-marker')]"
        ".map(m => [m.dataset.device, m.className]))"
    )
    assert sorted(markers) == sorted(d["id"] for d in page.service.devices)
    for d in page.service.devices:
        assert f"gw-marker--{d['class']}" in markers[d["id"]]
    assert "gw-stale" in markers["c0003"]
    assert [id_ for id_, cls in markers.items() if "gw-stale" in cls] == ["c0003"]

    rows = page.driver.find_elements(By.CSS_SELECTOR, ".gw-device-row[data-device]")
    assert [r.get_attribute("data-device") for r in rows] == sorted(markers)
    off_grid = page.driver.find_element(By.CSS_SELECTOR, ".gw-device-row[data-device='s0002'] .gw-col-grid")
    assert off_grid.text == "网格外"
    assert page.driver.find_element(By.ID, "gw-live-count").text == "6"
    assert page.driver.find_element(By.ID, "gw-total-count").text == "7"
    assert page.js("return window.gridwatch.devices.size") == 7
    assert page.js("return Object.isFrozen(window.gridwatch)")
    page.assert_no_console_errors()


def test_delta_frames_glide_the_vehicle_east_and_the_collector_north(page: Page) -> None:
    vehicle_before = page.marker_centre("v0001")
    collector_before = page.marker_centre("c0001")
    frames_before = page.js("return window.gridwatch.framesReceived")

    page.service.release_deltas.set()
    wait_for_js(page.driver, f"window.gridwatch.framesReceived >= {frames_before + 2}", timeout=5)
    mid_glide = page.marker_centre("v0001")
    wait_for_js(page.driver, f"window.gridwatch.framesReceived >= {frames_before + DELTA_STEPS + 2}", timeout=10)
    wait_until_still(page.driver, ".gw-marker[data-device='v0001']")

    vehicle_after = page.marker_centre("v0001")
    collector_after = page.marker_centre("c0001")
    last = page.service.deltas_sent[-1]["devices"][0]
    state = page.js("const d = window.gridwatch.devices.get('v0001'); return [d.lat, d.lon, d.grid]")
    assert state == [last["lat"], last["lon"], last["grid"]]
    # About 6 x 67 m east at zoom 16.5 is roughly 290 px; a jump-free glide passes through between.
    assert vehicle_after[0] - vehicle_before[0] > 200
    assert abs(vehicle_after[1] - vehicle_before[1]) < 2
    assert vehicle_before[0] < mid_glide[0] < vehicle_after[0]
    assert collector_after[1] < collector_before[1] - 10
    row_grid = page.driver.find_element(By.CSS_SELECTOR, ".gw-device-row[data-device='v0001'] .gw-col-grid")
    assert row_grid.text == last["grid"]
    page.assert_no_console_errors()


def test_clicking_a_list_row_draws_the_devices_last_30_minutes_track_and_details(page: Page) -> None:
    page.driver.find_element(By.CSS_SELECTOR, ".gw-device-row[data-device='v0001']").click()
    wait_for_js(page.driver, "document.querySelector(\".gw-track[data-device='v0001']\")")

    id_, start, end = page.service.track_queries[-1]
    assert id_ == "v0001"
    assert start.tzinfo is not None and (end - start).total_seconds() == 30 * 60
    assert abs(end.timestamp() - time.time()) < 30
    path = page.js("return document.querySelector(\".gw-track[data-device='v0001']\").getAttribute('d')")
    assert path.startswith("M") and path.count("L") >= 2
    assert page.js("return window.gridwatch.selected") == "v0001"
    assert "gw-selected" in page.js("return document.querySelector(\".gw-marker[data-device='v0001']\").className")
    details = page.driver.find_element(By.ID, "gw-details")
    assert details.is_displayed()
    assert "v0001" in details.text and "车辆" in details.text and "25 点" in details.text

    page.driver.find_element(By.CSS_SELECTOR, ".gw-marker[data-device='c0002']").click()
    wait_for_js(page.driver, "document.querySelector(\".gw-track[data-device='c0002']\")")
    assert page.js("return document.querySelectorAll('.gw-track').length") == 1
    page.assert_no_console_errors()


def test_the_header_shows_the_grid_code_under_the_pointer(page: Page) -> None:
    code = grid_code(11, 0)
    target = page.driver.find_element(By.CSS_SELECTOR, f"path.gw-grid[data-code='{code}']")
    ActionChains(page.driver).move_to_element(target).perform()
    wait_for_js(page.driver, f"document.getElementById('gw-hover-grid').dataset.code === '{code}'", timeout=3)
    assert "刘家堡社区" in page.driver.find_element(By.ID, "gw-hover-grid").text
    page.assert_no_console_errors()


def test_the_filter_box_narrows_the_list_to_matching_devices(page: Page) -> None:
    box = page.driver.find_element(By.ID, "gw-filter")
    try:
        box.send_keys("车辆")
        visible = page.js("return [...document.querySelectorAll('.gw-device-row:not([hidden])')].map(r => r.dataset.device)")
        assert visible == ["v0001", "v0002"]
        box.clear()
        box.send_keys("桃林")
        visible = page.js("return [...document.querySelectorAll('.gw-device-row:not([hidden])')].map(r => r.dataset.device)")
        assert visible == ["s0001"]
    finally:
        page.js("const box = document.getElementById('gw-filter'); box.value = '';"
                "box.dispatchEvent(new Event('input'));")
    assert page.js("return document.querySelectorAll('.gw-device-row:not([hidden])').length") == 7
    page.assert_no_console_errors()


CLASS_COLOURS = {"collector": (34, 197, 94), "vehicle": (245, 158, 11), "sensor": (192, 132, 252)}
STALE_COLOUR = (139, 151, 166)
TRACK_COLOUR = (250, 204, 21)
WHITE = (255, 255, 255)


def marker_colour(page: Page, id_: str) -> tuple[int, int, int]:
    """The colour a marker is painted in: a vehicle's arrow fill, else its glyph's background."""
    marker = f".gw-marker[data-device='{id_}']"
    if page.js("return document.querySelector(arguments[0] + ' path') !== null", marker):
        return rgb(style(page, f"{marker} path", "fill")["fill"])
    return rgb(style(page, f"{marker} .gw-glyph", "background-color")["background-color"])


def test_the_command_map_renders_legibly(page: Page) -> None:
    page.driver.find_element(By.CSS_SELECTOR, ".gw-device-row[data-device='v0001']").click()
    wait_for_js(page.driver, "document.querySelector(\".gw-track[data-device='v0001']\")")
    hovered = grid_code(4, 6)
    target = page.driver.find_element(By.CSS_SELECTOR, f"path.gw-grid[data-code='{hovered}']")
    ActionChains(page.driver).move_to_element(target).perform()
    wait_for_js(page.driver, f"document.getElementById('gw-hover-grid').dataset.code === '{hovered}'")
    after_paint(page.driver)
    save_screenshot(page.driver, SCREENSHOT)  # for a person to look at; what follows reads the page

    # The whole district fills the map, beside the side panel and not under it.
    map_box, side = box(page, "#gw-map"), box(page, ".gw-side")
    assert map_box.right <= side.left
    lattice = extent(page, "path.gw-grid")
    assert map_box.contains(lattice)
    assert lattice.width > map_box.width * 0.6 and lattice.height > map_box.height * 0.6
    outlines = page.js("return [...document.querySelectorAll('path.gw-grid')]"
                       ".map(p => [p.getAttribute('stroke'), Number(p.getAttribute('fill-opacity'))])")
    assert all(stroke not in (None, "none") and fill_opacity > 0 for stroke, fill_opacity in outlines)

    # The six community names and the two street names, apart from each other and readable.
    communities = [name for _street, (_name, names) in STREETS.items() for name in names.values()]
    streets = [name for name, _names in STREETS.values()]
    assert sorted(displayed_text(page, ".gw-label")) == sorted(communities + streets)
    labels = boxes(page, ".gw-label--community span")
    assert all(map_box.contains(label) for label in labels)
    assert not any(a.overlaps(b) for i, a in enumerate(labels) for b in labels[i + 1:])
    assert float(style(page, ".gw-label--community span", "font-size")["font-size"].removesuffix("px")) >= 12
    assert text_contrast(page, ".gw-label--community span") >= READABLE

    # Every device is on the map in the colour of its class (grey when stale), painted over grids and labels:
    # the screen shows that colour at its centre (a stale marker is a little see-through, but still grey).
    assert covered(page, ".gw-marker", "data-device") == {d["id"]: None for d in page.service.devices}
    ids = [d["id"] for d in page.service.devices]
    markers = [box(page, f".gw-marker[data-device='{id_}']") for id_ in ids]
    on_screen = dict(zip(ids, screen_colours(page, [m.centre for m in markers]), strict=True))
    for d, marker in zip(page.service.devices, markers, strict=True):
        assert map_box.contains(marker) and marker.width >= 14, d["id"]
        if d["id"] == "c0003":
            assert marker_colour(page, d["id"]) == STALE_COLOUR
            nearest = min([STALE_COLOUR, *CLASS_COLOURS.values()], key=lambda c: distance(c, on_screen[d["id"]]))
            assert nearest == STALE_COLOUR and distance(STALE_COLOUR, on_screen[d["id"]]) < 45
        else:
            assert marker_colour(page, d["id"]) == CLASS_COLOURS[d["class"]], d["id"]
            assert distance(on_screen[d["id"]], CLASS_COLOURS[d["class"]]) <= 3, d["id"]

    # The selected vehicle's track: a bold yellow line that ends at the vehicle (it came east, then north).
    track = box(page, ".gw-track[data-device='v0001']")
    line = style(page, ".gw-track[data-device='v0001']", "stroke", "stroke-width")
    assert rgb(line["stroke"]) == TRACK_COLOUR and float(line["stroke-width"].removesuffix("px")) >= 3
    vehicle_x, vehicle_y = box(page, ".gw-marker[data-device='v0001']").centre
    assert abs(track.right - vehicle_x) < 3 and abs(track.top - vehicle_y) < 3

    # The grid under the pointer is outlined in white, and the header names it.
    assert rgb(style(page, f"path.gw-grid[data-code='{hovered}']", "stroke")["stroke"]) == WHITE
    assert rgb(style(page, f"path.gw-grid[data-code='{grid_code(5, 6)}']", "stroke")["stroke"]) != WHITE
    assert displayed_text(page, "#gw-hover-grid") == [f"{hovered} 桃林社区"]
    assert text_contrast(page, "#gw-hover-grid") >= READABLE

    # The vehicle's details above the list, and every list row, in full and readable.
    details = box(page, "#gw-details")
    assert side.contains(details) and details.height > 100
    assert displayed_text(page, "#gw-details-title .gw-details-id") == ["v0001"]
    assert text_contrast(page, "#gw-details-body dd") >= READABLE
    assert text_contrast(page, "#gw-details-body dt") >= READABLE
    assert rows_whole_or_scrolled(page, ".gw-devices", ".gw-device-row")
    assert text_contrast(page, ".gw-device-row[data-device='c0001']") >= READABLE
    assert text_contrast(page, ".gw-device-row[data-device='c0003']") >= READABLE  # stale, greyed yet legible
    page.assert_no_console_errors()


def test_a_tile_layer_is_drawn_under_the_grids_only_when_config_names_one(driver: WebDriver) -> None:
    service = FakeService(tile_url="/tiles/{z}/{x}/{y}.png")
    with loaded_page(driver, service) as page:
        wait_for_js(page.driver, "document.querySelectorAll('img.leaflet-tile-loaded').length >= 4")
        assert page.js("return document.getElementById('gw-map').classList.contains('gw-tiled')")
        assert page.js("return document.querySelectorAll('path.gw-grid').length") == GRID_COUNT
        assert service.tiles_served >= 4
        page.assert_no_console_errors()


def test_a_dropped_feed_reconnects_and_its_fresh_snapshot_replaces_the_devices(driver: WebDriver) -> None:
    service = FakeService(drop_connections=1)
    newcomer = device("c0009", "collector", 7, 7, int(time.time() * 1000), bat=99)
    service.devices_after_reconnect = [d for d in service.devices if d["id"] != "v0002"] + [newcomer]
    with loaded_page(driver, service) as page:
        wait_for_js(page.driver, "window.gridwatch.devices.has('c0009')", timeout=8)
        assert page.js("return window.gridwatch.wsState") == "open"
        assert service.connections == 2
        assert not page.js("return window.gridwatch.devices.has('v0002')")
        markers = page.js("return [...document.querySelectorAll('.gw-marker')].map(m => m.dataset.device).sort()")
        rows = page.js("return [...document.querySelectorAll('.gw-device-row')].map(r => r.dataset.device)")
        assert markers == rows == sorted(d["id"] for d in service.devices_after_reconnect)
        page.assert_no_console_errors()
