"""Base maps in headless Chromium: the page asks the configured tile service for its tiles
(the service's real host names, sent to a fake tile server by the browser's resolver
rules) and draws the grids where the tiles put them: unshifted over Tianditu (CGCS2000),
shifted by the GCJ-02 offset over Amap."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

from protocols.coords import wgs84_to_gcj02
from tests.browser import after_paint, open_browser, wait_for_js
from tests.web.fake_map import GRID_COUNT, LAT0, LON0, FakeService, Page, grid_code, serving
from tests.web.legibility import box
from web.basemaps import base_map

TILE_HOSTS = ("*.tianditu.gov.cn", "*.is.autonavi.com")


@contextlib.contextmanager
def page_with_tile_hosts(service: FakeService) -> Iterator[Page]:
    with serving(service.app()) as url:
        port = url.rsplit(":", 1)[1]
        rules = ", ".join(f"MAP {host} 127.0.0.1:{port}" for host in TILE_HOSTS)
        with open_browser(width=1440, height=900, extra_args=(f"--host-resolver-rules={rules}",)) as driver:
            driver.get(url + "/")
            wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded")
            wait_for_js(driver, "document.querySelectorAll('img.leaflet-tile-loaded').length >= 4")
            after_paint(driver)
            yield Page(driver, service, url)


def mercator_px(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    size = 256 * 2**zoom
    sin = math.sin(math.radians(lat))
    return (lon + 180) / 360 * size, (0.5 - math.log((1 + sin) / (1 - sin)) / (4 * math.pi)) * size


def where_the_tiles_put(page: Page, lat: float, lon: float, tile_selector: str, zxy) -> tuple[float, float]:
    """The screen point of (lat, lon) by the tiles drawn: a loaded tile's box and its z/x/y."""
    tiles = page.js("return [...document.querySelectorAll(arguments[0])].map(t => { const r = t.getBoundingClientRect();"
                    " return [t.src, r.left, r.top, r.width]; })", tile_selector)
    assert tiles, tile_selector
    src, left, top, width = tiles[0]
    z, x, y = zxy(src)
    px, py = mercator_px(lat, lon, z)
    scale = width / 256
    return left + (px - x * 256) * scale, top + (py - y * 256) * scale


def corner_of_first_grid(page: Page) -> tuple[float, float]:
    """The south-west corner of grid (0, 0) on screen: its lattice corner, never nudged."""
    grid = box(page, f"path.gw-grid[data-code='{grid_code(0, 0)}']")
    return grid.left, grid.bottom


def tianditu_zxy(src: str) -> tuple[int, int, int]:
    q = {k: v[0] for k, v in parse_qs(urlsplit(src).query).items()}
    return int(q["TILEMATRIX"]), int(q["TILECOL"]), int(q["TILEROW"])


def amap_zxy(src: str) -> tuple[int, int, int]:
    q = {k: v[0] for k, v in parse_qs(urlsplit(src).query).items()}
    return int(q["z"]), int(q["x"]), int(q["y"])


def test_tianditu_tiles_come_from_its_hosts_with_the_key_and_the_grids_sit_unshifted_on_them() -> None:
    service = FakeService(basemap=base_map("tianditu", tianditu_key="a1b2c3").to_dict())
    with page_with_tile_hosts(service) as page:
        asked = list(service.foreign_tiles)
        assert asked and all(urlsplit("//" + a).hostname in {f"t{i}.tianditu.gov.cn" for i in range(8)} for a in asked)
        layers = {urlsplit("//" + a).path for a in asked}
        assert layers == {"/vec_w/wmts", "/cva_w/wmts"}  # the vector map and its annotation
        for a in asked:
            q = parse_qs(urlsplit("//" + a).query)
            assert q["tk"] == ["a1b2c3"] and q["SERVICE"] == ["WMTS"] and q["TILEMATRIXSET"] == ["w"]
        assert page.js("return document.getElementById('gw-map').dataset.basemap") == "tianditu"
        assert page.js("return document.querySelectorAll('path.gw-grid').length") == GRID_COUNT
        x, y = where_the_tiles_put(page, LAT0, LON0, ".gw-basemap--tianditu img.leaflet-tile-loaded", tianditu_zxy)
        corner = corner_of_first_grid(page)
        assert abs(corner[0] - x) < 1.5 and abs(corner[1] - y) < 1.5, (corner, (x, y))
        page.assert_no_console_errors()


def test_amap_tiles_are_in_gcj02_so_a_known_grid_is_drawn_shifted_by_the_gcj02_offset() -> None:
    service = FakeService(basemap=base_map("amap").to_dict(), map_datum="gcj02")
    with page_with_tile_hosts(service) as page:
        asked = list(service.foreign_tiles)
        assert asked and all(urlsplit("//" + a).hostname in {f"webrd0{i}.is.autonavi.com" for i in range(1, 5)}
                             for a in asked)
        assert all(urlsplit("//" + a).path == "/appmaptile" and "style=8" in a for a in asked)
        tiles = ".gw-basemap--amap img.leaflet-tile-loaded"
        shifted = where_the_tiles_put(page, *wgs84_to_gcj02(LAT0, LON0), tiles, amap_zxy)
        unshifted = where_the_tiles_put(page, LAT0, LON0, tiles, amap_zxy)
        corner = corner_of_first_grid(page)
        assert abs(corner[0] - shifted[0]) < 1.5 and abs(corner[1] - shifted[1]) < 1.5, (corner, shifted)
        # the offset is hundreds of metres: on screen, far more than the tolerance above
        assert math.dist(corner, unshifted) > 50, (corner, unshifted)
        page.assert_no_console_errors()
