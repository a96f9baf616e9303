"""Two districts for the scoping tests: Anning (620105) and Qilihe (620103), eight unit
grids each, a collector, a vehicle and a manhole-cover sensor in each, and a patrol plan
with one responsibility area and one collector per district. Also the check, shared by the
test against a web application called as a principal and the one against the running
service: while both districts' devices move and raise alarms, a district's live feed
shows its own and nothing of the other's, and a city client sees both.

    Anning  620105: 4 x 2 grids from 36.1050 N, 103.7150 E (north of the Yellow River)
    Qilihe  620103: 4 x 2 grids from 36.0700 N, 103.7500 E (south of it)
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import msgpack
import trio
from websockets.trio.client import connect as ws_connect

from geofence.citygen import City
from protocols.epoch import ms_to_datetime
from tests.harness import store_task
from tests.helpers import apublish
from tracker.app.service import import_grids, run_service
from tracker.storage.store import Store
from web.principal import Principal, Role

ANNING, QILIHE = "620105", "620103"
NORTH_WEST = {ANNING: (36.1050, 103.7150), QILIHE: (36.0700, 103.7500)}

ANNING_COMMANDER = Principal("anning-commander", Role.COMMANDER, ANNING, 11)
QILIHE_COMMANDER = Principal("qilihe-commander", Role.COMMANDER, QILIHE, 12)
CITY_COMMANDER = Principal("city-commander", Role.COMMANDER, None, 13)


@dataclass(frozen=True)
class Device:
    id: str
    cls: str
    district: str
    component: str | None = None  # sensors: the component they watch

    def topic(self, kind: str) -> str:
        return f"gw/v1/{self.district}/{self.cls}/{self.id}/{kind}"


DEVICES = {
    ANNING: (Device("c1001", "collector", ANNING), Device("v1001", "vehicle", ANNING),
             Device("mh-1001", "sensor", ANNING, "6201050101000001")),
    QILIHE: (Device("c3001", "collector", QILIHE), Device("v3001", "vehicle", QILIHE),
             Device("mh-3001", "sensor", QILIHE, "6201030101000001")),
}
COLLECTOR = {ANNING: "c1001", QILIHE: "c3001"}


def ids(district: str) -> set[str]:
    return {d.id for d in DEVICES[district]}


def city_of(district: str) -> City:
    return City(8, district=district, north_west=NORTH_WEST[district], cols=4, community=(2, 2), street=(2, 2),
                projected_crs=None, fixed_border=True, bent_edges=False, seed=int(district),
                title=f"district {district}, 8 unit grids")


@dataclass(frozen=True)
class Place:
    grid: str
    lat: float
    lon: float


def places(district: str) -> list[Place]:
    """The middle of each unit grid of the district."""
    out = []
    for g in city_of(district).grids:
        corners = g.ring[:-1] if g.ring[0] == g.ring[-1] else g.ring
        lon = sum(p[0] for p in corners) / len(corners)
        lat = sum(p[1] for p in corners) / len(corners)
        out.append(Place(g.code, lat, lon))
    return out


def grid_codes(district: str) -> set[str]:
    return {g.code for g in city_of(district).grids}


def area(district: str) -> str:
    """The district's responsibility area: its first community."""
    return min(grid_codes(district))[:12]


def plan() -> dict:
    """One area per district, its collector on two-hour slots round the clock (so a slot
    is always in progress), a city-wide holiday and a leave for each collector."""
    areas, shifts, exceptions = {}, [], [{"type": "holiday", "day": "2020-10-01", "name": "国庆节"}]
    for district in (ANNING, QILIHE):
        code = area(district)
        areas[code] = {"name": f"community {code}", "grids": sorted(g for g in grid_codes(district) if g.startswith(code))}
        for start in range(0, 24, 2):
            shifts.append({"collector": COLLECTOR[district], "area": code, "days": "Mon-Sun",
                           "start": f"{start:02d}:00", "end": f"{(start + 2) % 24:02d}:00"})
        exceptions.append({"type": "leave", "collector": COLLECTOR[district], "day": "2020-11-24"})
    return {"zone": "Asia/Shanghai", "areas": areas, "shifts": shifts, "exceptions": exceptions,
            "rules": {"areas": {code: {"min_cell_share": 0.25} for code in areas}}}


async def start_two_districts(nursery, settings, tmp_path: Path):
    """A store with both districts' grids and the plan, and the service on it."""
    store = await nursery.start(store_task, settings.database.dsn)
    for district in (ANNING, QILIHE):
        path = city_of(district).write(tmp_path / f"{district}.geojson")
        report = await import_grids(store, str(path), settings.grid.h3_resolution)
        assert not report.errors, report.errors
    await store.save_plan(plan(), "two districts")
    running = await nursery.start(lambda task_status: run_service(settings, store, task_status=task_status))
    return store, running


def position(device: Device, place: Place, t_ms: int) -> tuple[str, bytes]:
    return device.topic("pos"), msgpack.packb({"t": t_ms, "lat": place.lat, "lon": place.lon, "acc": 5.0})


def tilt(device: Device, t_ms: int) -> list[tuple[str, bytes]]:
    """A manhole cover lifted at ``t_ms`` and still tilted 5 s later: past the debounce, an alarm."""
    assert device.component is not None
    record = {"dev": device.id, "comp": device.component, "type": "manhole", "bat": 87}
    return [(device.topic("alarm"), msgpack.packb(record | {"t": t_ms, "kind": "alarm", "alarm": "tilt", "tilt": 35.5})),
            (device.topic("status"), msgpack.packb(record | {"t": t_ms + 5000, "kind": "status", "tilt": 35.0}))]


STEP_MS = 60_000  # a minute between moves: a grid's width at walking pace, well within the speed filters


def moves(step: int, t_ms: int) -> list[tuple[str, bytes]]:
    """Every collector and vehicle of both districts at its ``step``-th grid; the sensors
    (which stay put) at their grid on step 0."""
    out = []
    for district in (ANNING, QILIHE):
        grid_places = places(district)
        for n, device in enumerate(DEVICES[district]):
            if device.cls != "sensor":
                out.append(position(device, grid_places[(step + n) % len(grid_places)], t_ms))
            elif step == 0:
                out.append(position(device, grid_places[n], t_ms))
    return out


async def seed_records(store: Store) -> None:
    """What the store holds of each district besides positions: component bindings, and
    patrol alert episodes with a grid and without one (their area names the district)."""
    now = ms_to_datetime(int(time.time() * 1000))
    rows = []
    for district in (ANNING, QILIHE):
        code, grid = area(district), min(grid_codes(district))
        for kind, where in (("grid_not_covered", grid), ("not_started", None)):
            rows.append((kind, COLLECTOR[district], f"{COLLECTOR[district]}-slot", code, where, now - timedelta(hours=1), now,
                         now, now, None, None, {"district": district}, f"{kind} in {district}"))
    await store.record_patrol_alerts(rows)


@dataclass
class Watched:
    """What one WebSocket client received."""

    frames: list[dict] = field(default_factory=list)

    def devices(self) -> set[str]:
        return {d["id"] for f in self.frames if f["type"] in ("snapshot", "snapshot_part", "delta") for d in f["devices"]}

    def snapshot(self) -> set[str]:
        return {d["id"] for f in self.frames if f["type"] in ("snapshot", "snapshot_part") for d in f["devices"]}

    def deltas(self) -> int:
        return sum(1 for f in self.frames if f["type"] == "delta")

    def alarms(self) -> set[str]:
        return {f["device"] for f in self.frames if f["type"] == "alarm"}

    def districts(self) -> set[str]:
        """Districts of the devices shown, as each device view states it."""
        return {d["district"] for f in self.frames if f["type"] in ("snapshot", "snapshot_part", "delta") for d in f["devices"]}


async def _watch(url: str, headers: dict[str, str], into: Watched, connected: trio.Event) -> None:
    async with ws_connect(url, additional_headers=headers) as ws:
        connected.set()
        while True:
            into.frames.append(json.loads(await ws.recv()))


async def check_live_feeds(broker, urls: dict[str | None, str], headers: dict[str | None, dict[str, str]],
                           delivered: Callable[[], Awaitable[None]] | None = None) -> dict[str | None, Watched]:
    """``urls``/``headers``: the /ws address and handshake headers of a client of Anning,
    of Qilihe and of the city (key None). Both districts' devices are live before the
    clients connect (the snapshot), then move for 20 rounds while each district's sensor
    raises a tilt alarm; returns what each client received once every client has seen
    what it should, for the caller's assertions."""
    t0 = int(time.time() * 1000) - 25 * STEP_MS
    await apublish(broker, moves(0, t0))
    if delivered is not None:
        await delivered()
    watched = {who: Watched() for who in urls}
    async with trio.open_nursery() as nursery:
        for who, url in urls.items():
            connected = trio.Event()
            nursery.start_soon(_watch, url, headers[who], watched[who], connected)
            with trio.fail_after(10):
                await connected.wait()
        for step in range(1, 21):
            batch = moves(step, t0 + step * STEP_MS)
            if step == 10:
                batch += [m for d in (ANNING, QILIHE) for m in tilt(DEVICES[d][2], t0 + step * STEP_MS)]
            await apublish(broker, batch)
            await trio.sleep(0.05)

        def everyone_saw_enough() -> bool:
            city = watched.get(None)
            return (all(watched[d].alarms() >= {DEVICES[d][2].id} and watched[d].deltas() >= 3 for d in (ANNING, QILIHE) if d in watched)
                    and (city is None or city.alarms() >= {"mh-1001", "mh-3001"}))

        with trio.fail_after(20):
            while not everyone_saw_enough():
                await trio.sleep(0.05)
        await trio.sleep(0.5)  # anything another district's client should not get has had time to come
        nursery.cancel_scope.cancel()
    return watched


def assert_isolated(watched) -> None:
    """What ``check_live_feeds`` gathered: each district's client its own devices (in its
    snapshot and its deltas) and alarms, never the other's; the city's both."""
    for district in (ANNING, QILIHE):
        seen = watched[district]
        assert seen.snapshot() == ids(district), district
        assert seen.devices() == ids(district), district
        assert seen.districts() == {district}
        assert seen.alarms() == {DEVICES[district][2].id}, district
    city = watched[None]
    assert city.snapshot() == ids(ANNING) | ids(QILIHE)
    assert {"c1001", "v1001", "c3001", "v3001"} <= city.devices()
    assert city.alarms() == {"mh-1001", "mh-3001"}
