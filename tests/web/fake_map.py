"""A throwaway server for the command map page in headless Chromium.

The server here is a small Starlette app: it serves ``web/static`` and canned answers for
the page's API (who is logged in, config, 96 unit grids of district 620105, seven devices, a track, and the
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

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from selenium.webdriver.remote.webdriver import WebDriver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.browser import browser_errors, wait_for_js

STATIC = Path(__file__).resolve().parents[2] / "web" / "static"
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
    # /api/config's base map (``web.basemaps.BaseMap.to_dict()``) and datum, when a test sets them
    basemap: dict[str, Any] | None = None
    map_datum: str = "wgs84"
    # Tiles asked of other hosts (a browser started with --host-resolver-rules sends the
    # tile services' host names here): "host/path?query" in the order asked.
    foreign_tiles: list[str] = field(default_factory=list)
    # The view /api/config proposes: the lattice's centre at zoom 16.5 unless a test says
    # otherwise; the page frames the grids it receives whatever this says.
    centre: tuple[float, float] = (LAT0 + ROWS * DLAT / 2, LON0 + COLUMNS * DLON / 2)
    zoom: float = 16.5
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
    zone: str = "Asia/Shanghai"  # the city's zone ([city] timezone), as /api/config gives it
    summary: dict[str, Any] | None = None  # the day's figure, as the report and live coverage ("today") give it
    coverage_requests: int = 0
    # What GET /api/cases/summary answers; None: 404, as from a service that keeps no cases.
    cases: dict[str, Any] | None = None
    report_dates: list[str] = field(default_factory=list)
    pushed: queue.SimpleQueue[dict[str, Any]] = field(default_factory=queue.SimpleQueue)
    # [live] online_s as /api/config gives it (None: left out, the page's defaults), a
    # sensor's readings by device (GET /api/devices/{id}/readings), and every locate
    # command asked for: (device, the X-CSRF-Token header) and the answer to give.
    online_s: dict[str, float] | None = None
    readings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    locates: list[tuple[str, str | None]] = field(default_factory=list)
    locate_answer: tuple[int, dict[str, Any]] = (202, {"via": "mqtt", "sent": True})
    # Who the page is logged in as (GET /api/session); None: nobody, the page goes to /login.
    user: dict[str, Any] | None = field(default_factory=lambda: {
        "account": "zhang.wei", "role": "commander", "scope": "city", "district": None, "device": None,
        "via": "session", "csrf": "fake-csrf"})

    def push(self, frame: dict[str, Any]) -> None:
        """Send ``frame`` on the open feed connection (from any thread)."""
        self.pushed.put(frame)

    def by_id(self, id_: str) -> dict[str, Any]:
        return next(d for d in self.devices if d["id"] == id_)

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/", self.index),
            Route("/wall", self.index),
            Route("/login", self.login_page),
            Route("/api/session", self.session),
            Route("/api/config", self.config),
            Route("/api/grids", self.grid_collection),
            Route("/api/devices", self.device_list),
            Route("/api/devices/{device}/track", self.track),
            Route("/api/devices/{device}/readings", self.device_readings),
            Route("/api/devices/{device}/locate", self.locate, methods=["POST"]),
            Route("/api/alerts", self.open_alerts),
            Route("/api/alarms", self.alarm_history),
            Route("/api/coverage/live", self.live_coverage),
            Route("/api/reports/coverage", self.coverage_report),
            Route("/api/cases/summary", self.case_summary),
            Route("/api/cases", self.case_list),
            Route("/open311/v2/services.json", self.no_services),
            Route("/api/departments", self.no_departments),
            Route("/tiles/{z:int}/{x:int}/{y:int}.png", self.tile),
            WebSocketRoute("/ws", self.live),
            Mount("/static", StaticFiles(directory=STATIC)),
            Route("/{path:path}", self.foreign_tile),
        ])

    async def index(self, request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def login_page(self, request: Request) -> FileResponse:
        return FileResponse(STATIC / "login.html")

    async def session(self, request: Request) -> JSONResponse:
        if self.user is None:
            return JSONResponse({"error": "authentication required"}, status_code=401)
        return JSONResponse(self.user)

    async def config(self, request: Request) -> JSONResponse:
        codes = [f["properties"]["code"] for f in self.grids["features"]]
        lons = [p[0] for f in self.grids["features"] for p in f["geometry"]["coordinates"][0]]
        lats = [p[1] for f in self.grids["features"] for p in f["geometry"]["coordinates"][0]]
        districts = [{"code": DISTRICT, "name": "安宁区", "grids": len(codes),
                      "bbox": [min(lons), min(lats), max(lons), max(lats)]}] if codes else []
        extra = {"basemap": self.basemap} if self.basemap is not None else {}
        body = {**extra, "tile_url": self.tile_url, "map_datum": self.map_datum, "center": list(self.centre), "zoom": self.zoom,
                "district": DISTRICT, "districts": districts, "zone": self.zone}
        if self.online_s is not None:
            body["online_s"] = self.online_s
        return JSONResponse(body)

    async def device_readings(self, request: Request) -> JSONResponse:
        id_ = request.path_params["device"]
        if id_ not in self.readings:
            return JSONResponse({"error": f"unknown device {id_!r}"}, status_code=404)
        return JSONResponse({"device": id_, "readings": self.readings[id_]})

    async def locate(self, request: Request) -> JSONResponse:
        id_ = request.path_params["device"]
        self.locates.append((id_, request.headers.get("x-csrf-token")))
        status, body = self.locate_answer
        return JSONResponse(body | {"device": id_} if status < 400 else body, status_code=status)

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

    # cases: none, and no taxonomy yet (the case tab's own test runs on the real service)
    async def case_list(self, request: Request) -> JSONResponse:
        return JSONResponse({"cases": [], "next_cursor": None})

    async def no_services(self, request: Request) -> JSONResponse:
        return JSONResponse([])

    async def no_departments(self, request: Request) -> JSONResponse:
        return JSONResponse({"departments": []})

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
        return JSONResponse({"date": day, "summary": self.summary, "timeline": self.timeline, "collectors": [], "grids": [],
                             "communities": [], "streets": []})

    async def case_summary(self, request: Request) -> JSONResponse:
        if self.cases is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse(self.cases)

    async def tile(self, request: Request) -> Response:
        self.tiles_served += 1
        return Response(TILE_PNG, media_type="image/png")

    async def foreign_tile(self, request: Request) -> Response:
        host = request.headers.get("host", "").split(":")[0]
        if host in ("127.0.0.1", "localhost", ""):
            return JSONResponse({"error": "not found"}, status_code=404)
        query = f"?{request.url.query}" if request.url.query else ""
        self.foreign_tiles.append(f"{host}{request.url.path}{query}")
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
