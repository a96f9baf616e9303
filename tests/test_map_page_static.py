"""The command map page in headless Chromium, against a throwaway server.

The server here is a small Starlette app: it serves ``web/static`` and canned answers for
the page's API (config, 96 unit grids of district 620105, seven devices, a track, and the
patrol routes: open alerts, alarm history, live coverage and the day's coverage report,
empty unless a test fills them in), and a ``/ws`` feed that sends a snapshot, then moves
vehicle v0001 east and collector c0001 north in delta frames once a test releases them,
and passes on any frame a test pushes.
"""

from __future__ import annotations

import contextlib
import queue
import random
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from browser import after_paint, browser_errors, open_browser, save_screenshot, wait_for_js, wait_until_still

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
SCREENSHOT = Path("/tmp/gridwatch-map.png")

DISTRICT = "620105"
# Two streets of three communities each; every community is a 4 x 4 block of unit grids.
STREETS = {
    "001": ("培黎街道", {"001": "万里社区", "002": "桃林社区", "003": "北街社区"}),
    "002": ("西路街道", {"001": "沙井驿社区", "002": "费家营社区", "003": "刘家堡社区"}),
}
BLOCK = 4
COLUMNS = 3 * BLOCK
ROWS = 2 * BLOCK
GRID_COUNT = COLUMNS * ROWS
# South-west corner and cell size of the lattice: about 100 m x 100 m at latitude 36.1.
LAT0, LON0 = 36.0960, 103.7100
DLAT, DLON = 0.0009, 0.00111

DELTA_STEPS = 6
DELTA_INTERVAL_S = 0.25
VEHICLE_STEP_DEG = DLON * 0.6
COLLECTOR_STEP_DEG = DLAT * 0.08
STALE_AGE_MS = 12 * 60 * 1000


def vertex(col: int, row: int) -> tuple[float, float]:
    """Lattice vertex as (lon, lat), inner vertices nudged so grids look surveyed."""
    lon, lat = LON0 + col * DLON, LAT0 + row * DLAT
    if 0 < col < COLUMNS and 0 < row < ROWS:
        jitter = random.Random(col * 1000 + row)
        lon += jitter.uniform(-0.12, 0.12) * DLON
        lat += jitter.uniform(-0.12, 0.12) * DLAT
    return round(lon, 7), round(lat, 7)


def grid_code(col: int, row: int) -> str:
    street = "001" if row >= BLOCK else "002"
    community = f"{col // BLOCK + 1:03d}"
    number = (ROWS - 1 - row) % BLOCK * BLOCK + col % BLOCK + 1
    return f"{DISTRICT}{street}{community}{number:03d}"


def canned_grids() -> dict[str, Any]:
    features = []
    for row in range(ROWS):
        for col in range(COLUMNS):
            code = grid_code(col, row)
            street, community = code[6:9], code[9:12]
            street_name, communities = STREETS[street]
            ring = [vertex(col, row), vertex(col + 1, row), vertex(col + 1, row + 1), vertex(col, row + 1)]
            features.append({
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [[*ring, ring[0]]]},
                "properties": {
                    "code": code,
                    "street": DISTRICT + street,
                    "street_name": street_name,
                    "community": DISTRICT + street + community,
                    "community_name": communities[community],
                    "district": DISTRICT,
                },
            })
    return {"type": "FeatureCollection", "features": features}


def device(id_: str, cls: str, col: float, row: float, t: int, **extra: Any) -> dict[str, Any]:
    lat, lon = LAT0 + (row + 0.5) * DLAT, LON0 + (col + 0.5) * DLON
    inside = 0 <= col < COLUMNS and 0 <= row < ROWS
    return {
        "id": id_, "class": cls, "district": DISTRICT, "t": t,
        "lat": round(lat, 7), "lon": round(lon, 7),
        "acc": 5.0, "spd": 1.2, "hdg": None, "bat": 80,
        "cell": "8c3c1a2b4d6e1ff",
        "grid": grid_code(int(col), int(row)) if inside else None,
    } | extra


def canned_devices(now_ms: int) -> list[dict[str, Any]]:
    return [
        device("c0001", "collector", 1, 5, now_ms - 4_000, hdg=0, bat=76),
        device("c0002", "collector", 6, 2, now_ms - 9_000, bat=54),
        device("c0003", "collector", 9, 6, now_ms - STALE_AGE_MS, bat=15, spd=None),
        device("v0001", "vehicle", 2, 3, now_ms - 1_000, hdg=90, spd=8.3, acc=3.0),
        device("v0002", "vehicle", 10, 1, now_ms - 20_000, spd=0.0, bat=None),
        device("s0001", "sensor", 5, 6, now_ms - 30_000, spd=None, acc=None, bat=91),
        device("s0002", "sensor", 3, -0.8, now_ms - 45_000, spd=None, acc=None, bat=None),
    ]


def solid_png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


TILE_PNG = solid_png((232, 226, 214))


def moved(d: dict[str, Any], step: int, now_ms: int) -> dict[str, Any]:
    if d["class"] == "vehicle":
        lat, lon = d["lat"], d["lon"] + step * VEHICLE_STEP_DEG
    else:
        lat, lon = d["lat"] + step * COLLECTOR_STEP_DEG, d["lon"]
    col, row = int((lon - LON0) / DLON), int((lat - LAT0) / DLAT)
    return d | {"lat": round(lat, 7), "lon": round(lon, 7), "t": now_ms, "grid": grid_code(col, row)}


@dataclass
class FakeService:
    """Canned state behind the throwaway server, shared with the test thread."""

    grids: dict[str, Any] = field(default_factory=canned_grids)
    devices: list[dict[str, Any]] = field(default_factory=lambda: canned_devices(int(time.time() * 1000)))
    tile_url: str = ""
    # The first ``drop_connections`` feed connections close right after their snapshot;
    # later connections snapshot ``devices_after_reconnect`` when it is set.
    drop_connections: int = 0
    devices_after_reconnect: list[dict[str, Any]] | None = None
    connections: int = 0
    tiles_served: int = 0
    release_deltas: threading.Event = field(default_factory=threading.Event)
    deltas_sent: list[dict[str, Any]] = field(default_factory=list)
    track_queries: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    # The patrol routes: open alerts and alarm history (newest first), live coverage (None
    # answers every grid never visited), and the timeline of today's coverage report.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    coverage: dict[str, Any] | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    coverage_requests: int = 0
    report_dates: list[str] = field(default_factory=list)
    pushed: queue.SimpleQueue[dict[str, Any]] = field(default_factory=queue.SimpleQueue)

    def push(self, frame: dict[str, Any]) -> None:
        """Send ``frame`` on the open feed connection (from any thread)."""
        self.pushed.put(frame)

    def by_id(self, id_: str) -> dict[str, Any]:
        return next(d for d in self.devices if d["id"] == id_)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self.index),
            Route("/api/config", self.config),
            Route("/api/grids", self.grid_collection),
            Route("/api/devices", self.device_list),
            Route("/api/devices/{device}/track", self.track),
            Route("/api/alerts", self.open_alerts),
            Route("/api/alarms", self.alarm_history),
            Route("/api/coverage/live", self.live_coverage),
            Route("/api/reports/coverage", self.coverage_report),
            Route("/tiles/{z:int}/{x:int}/{y:int}.png", self.tile),
            WebSocketRoute("/ws", self.live),
            Mount("/static", StaticFiles(directory=STATIC)),
        ])

    async def index(self, request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def config(self, request: Request) -> JSONResponse:
        centre = [LAT0 + ROWS * DLAT / 2, LON0 + COLUMNS * DLON / 2]
        return JSONResponse({"tile_url": self.tile_url, "center": centre, "zoom": 16.5, "district": DISTRICT})

    async def grid_collection(self, request: Request) -> JSONResponse:
        return JSONResponse(self.grids)

    async def device_list(self, request: Request) -> JSONResponse:
        return JSONResponse({"devices": self.devices})

    async def track(self, request: Request) -> JSONResponse:
        id_ = request.path_params["device"]
        start = datetime.fromisoformat(request.query_params["from"])
        end = datetime.fromisoformat(request.query_params["to"])
        self.track_queries.append((id_, start, end))
        current = self.by_id(id_)
        for frame in self.deltas_sent:
            current = next((d for d in frame["devices"] if d["id"] == id_), current)
        # Twenty-five fixes a minute apart: east along a street, then a turn north to here.
        end_ms = int(end.timestamp() * 1000)
        points, times = [], []
        for i in range(24, -1, -1):
            north = min(i, 10) * 0.3 * DLAT
            east = max(0, i - 10) * 0.35 * DLON
            points.append([round(current["lon"] - east, 7), round(current["lat"] - north, 7)])
            times.append(end_ms - i * 60_000)
        return JSONResponse({
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": points},
            "properties": {"device": id_, "times": times},
        })

    async def open_alerts(self, request: Request) -> JSONResponse:
        if dict(request.query_params) != {"open": "1", "limit": "200"}:
            return JSONResponse({"error": f"expected ?open=1&limit=200, got {request.url.query!r}"}, status_code=400)
        return JSONResponse({"alerts": self.alerts})

    async def alarm_history(self, request: Request) -> JSONResponse:
        limit = request.query_params.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 1000:
            return JSONResponse({"error": f"'limit' must be 1..1000, got {limit!r}"}, status_code=400)
        return JSONResponse({"alarms": self.alarms[: int(limit)]})

    async def live_coverage(self, request: Request) -> JSONResponse:
        self.coverage_requests += 1
        if self.coverage is not None:
            return JSONResponse(self.coverage)
        codes = [f["properties"]["code"] for f in self.grids["features"]]
        return JSONResponse({"now": int(time.time() * 1000), "grids": dict.fromkeys(codes), "unvisited": [], "slots": []})

    async def coverage_report(self, request: Request) -> JSONResponse:
        day = request.query_params.get("date", "")
        try:
            date.fromisoformat(day)
        except ValueError:
            return JSONResponse({"error": f"'date' must be YYYY-MM-DD, got {day!r}"}, status_code=400)
        self.report_dates.append(day)
        return JSONResponse({"date": day, "timeline": self.timeline, "collectors": [], "grids": [],
                             "communities": [], "streets": []})

    async def tile(self, request: Request) -> Response:
        self.tiles_served += 1
        return Response(TILE_PNG, media_type="image/png")

    async def live(self, ws: WebSocket) -> None:
        connection = self.connections
        self.connections += 1
        await ws.accept()
        if connection < self.drop_connections:
            await ws.send_json({"type": "snapshot", "devices": self.devices})
            await ws.close(code=1012)
            return
        devices = self.devices if self.devices_after_reconnect is None else self.devices_after_reconnect
        await ws.send_json({"type": "snapshot", "devices": devices})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.feed, ws)
            nursery.start_soon(self.pass_on_pushed, ws)
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await ws.receive_text()
            nursery.cancel_scope.cancel()

    async def feed(self, ws: WebSocket) -> None:
        # An alert frame the page cannot use (no change, no id): it must be ignored.
        await ws.send_json({"type": "alert", "alert": {"kind": "coverage", "grid": grid_code(0, 0)}})
        while not self.release_deltas.is_set():
            await trio.sleep(0.02)
        for step in range(1, DELTA_STEPS + 1):
            await trio.sleep(DELTA_INTERVAL_S)
            now_ms = int(time.time() * 1000)
            frame = {"type": "delta", "devices": [
                moved(self.by_id("v0001"), step, now_ms),
                moved(self.by_id("c0001"), step, now_ms),
            ]}
            await ws.send_json(frame)
            self.deltas_sent.append(frame)
        await ws.send_json({"type": "incident", "incident": {"id": 1}})
        await ws.send_text('{"type": "not-yet-invented"}')

    async def pass_on_pushed(self, ws: WebSocket) -> None:
        while True:
            try:
                frame = self.pushed.get_nowait()
            except queue.Empty:
                await trio.sleep(0.02)
            else:
                await ws.send_json(frame)


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Run ``app`` under hypercorn on trio in a background thread; yield its base URL."""
    started: queue.Queue[tuple[str, trio.lowlevel.TrioToken, trio.Event] | BaseException] = queue.Queue()

    async def main() -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.graceful_timeout = 0.2
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
            started.put((binds[0], trio.lowlevel.current_trio_token(), stop))

    def run() -> None:
        try:
            trio.run(main)
        except BaseException as error:
            started.put(error)
            raise

    thread = threading.Thread(target=run, name="map-page-server", daemon=True)
    thread.start()
    item = started.get(timeout=10)
    if isinstance(item, BaseException):
        raise item
    url, token, stop = item
    try:
        yield url
    finally:
        trio.from_thread.run_sync(stop.set, trio_token=token)
        thread.join(timeout=10)
        assert not thread.is_alive(), "the throwaway server did not stop"


@dataclass
class Page:
    driver: WebDriver
    service: FakeService
    url: str

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def marker_centre(self, id_: str) -> tuple[float, float]:
        return self.js(
            "const r = document.querySelector(`.gw-marker[data-device='${arguments[0]}']`)"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];",
            id_,
        )

    def assert_no_console_errors(self) -> None:
        assert browser_errors(self.driver) == []


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with open_browser(width=1440, height=900) as browser:
        yield browser


@contextlib.contextmanager
def loaded_page(driver: WebDriver, service: FakeService) -> Iterator[Page]:
    with serving(service.app()) as url:
        browser_errors(driver)
        driver.get(url + "/")
        try:
            wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded")
            wait_for_js(driver, "window.gridwatch.wsState === 'open' && window.gridwatch.framesReceived >= 1")
            yield Page(driver, service, url)
        finally:
            driver.get("about:blank")


@pytest.fixture
def page(driver: WebDriver) -> Iterator[Page]:
    with loaded_page(driver, FakeService()) as loaded:
        yield loaded


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


def test_the_command_map_renders_legibly(page: Page) -> None:
    page.driver.find_element(By.CSS_SELECTOR, ".gw-device-row[data-device='v0001']").click()
    wait_for_js(page.driver, "document.querySelector(\".gw-track[data-device='v0001']\")")
    target = page.driver.find_element(By.CSS_SELECTOR, f"path.gw-grid[data-code='{grid_code(4, 6)}']")
    ActionChains(page.driver).move_to_element(target).perform()
    wait_for_js(page.driver, f"document.getElementById('gw-hover-grid').dataset.code === '{grid_code(4, 6)}'")
    after_paint(page.driver)
    shot = save_screenshot(page.driver, SCREENSHOT)
    assert shot.stat().st_size > 20_000
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
