"""The store answers a district's questions in SQL, deriving each record's district where
none is stored: a device's from its row; an alarm's from its component, else its device,
else the grid it was raised in; a patrol alert's from its grid, else its area in the
newest plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tracker.storage.store import DAY_MS, open_store

ANNING, QILIHE = "620105", "620103"
A_GRID, Q_GRID = "620105001001001", "620103001001001"
T = 1_764_000_000_000
AT = datetime.fromtimestamp(T / 1000, UTC)


def device_row(device: str, cls: str, district: str, grid: str) -> tuple:
    # id, class, district, t, rx, lat, lon, acc, spd, hdg, bat, cell, grid
    return (device, cls, district, T, T, 36.1, 103.7, 5.0, None, None, None, 631_000_000_000_000_001, grid)


def ping(device: str, t_ms: int, grid: str) -> tuple:
    return (device, t_ms, 36.1, 103.7, t_ms, 5.0, None, None, None, 80.0, "wgs84", None, 631_000_000_000_000_001, grid, False)


def alarm(source: str, device: str, component: str | None, grid: str | None, n: int) -> tuple:
    # ALARM_COLUMNS: source, device, component, kind, raised, t, value, detail, lat, lon, grid
    return (source, device, component, "tilt" if component else "sos", True, AT + timedelta(seconds=n), None, "", None, None, grid)


async def test_devices_tracks_components_and_alarms_of_one_district(database):
    async with open_store(database) as store:
        await store.migrate()
        await store.write_pings(
            [ping("c3001", T - 1000, Q_GRID), ping("c3001", T, Q_GRID), ping("v1001", T, Q_GRID)], {T // DAY_MS},
            [device_row("c3001", "collector", QILIHE, Q_GRID), device_row("v1001", "vehicle", ANNING, Q_GRID)],
            alarms=[alarm("sensor", "mh-3001", "6201030101000001", None, 1),  # a sensor never placed: its component's
                    alarm("vehicle", "v1001", None, Q_GRID, 2),  # an Anning vehicle in Qilihe: its own district's
                    alarm("vehicle", "v9999", None, Q_GRID, 3),  # never placed: the grid's
                    alarm("handset", "h0001", None, None, 4)],  # nothing to tell: the city's only
            components=[("6201050101000001", "mh-1001", None, None, None), ("6201030101000001", "mh-3001", None, None, None)])
        has = {(d, who): await store.has_device(d, who) for d in ("c3001", "v1001") for who in (ANNING, QILIHE, None)}
        tracks = {who: len(await store.track("c3001", AT - timedelta(hours=1), AT, 100, who)) for who in (ANNING, QILIHE, None)}
        components = {who: [r["code"] for r in await store.components("", 10, who)] for who in (ANNING, QILIHE, None)}
        anning_asks_qilihe = await store.components("620103", 10, ANNING)
        alarms = {who: sorted(r["device"] for r in await store.alarm_events(10, who)) for who in (ANNING, QILIHE, None)}
    assert has == {("c3001", ANNING): False, ("c3001", QILIHE): True, ("c3001", None): True,
                   ("v1001", ANNING): True, ("v1001", QILIHE): False, ("v1001", None): True}
    assert tracks == {ANNING: 0, QILIHE: 2, None: 2}
    assert components == {ANNING: ["6201050101000001"], QILIHE: ["6201030101000001"], None: ["6201030101000001", "6201050101000001"]}
    assert anning_asks_qilihe == []
    assert alarms == {ANNING: ["v1001"], QILIHE: ["mh-3001", "v9999"], None: ["h0001", "mh-3001", "v1001", "v9999"]}


def alert(kind: str, collector: str, area: str, grid: str | None, n: int, resolved: bool = False) -> tuple:
    # kind, collector, slot_id, area, grid, slot_start, slot_end, raised_at, updated_at, resolved_at, resolution, detail, text
    at = AT + timedelta(minutes=n)
    return (kind, collector, f"{collector}-{n}", area, grid, at, at + timedelta(hours=2), at, at,
            at if resolved else None, "late fixes show it did not happen" if resolved else None, {}, kind)


async def test_patrol_alerts_of_one_district_by_grid_else_by_area_in_the_newest_plan(database):
    old_area = "620103009009"
    areas = {"620105001001": {"name": "A", "grids": [A_GRID]}, "620103001001": {"name": "Q", "grids": [Q_GRID]}}
    async with open_store(database) as store:
        await store.migrate()
        await store.save_plan({"areas": areas | {old_area: {"name": "gone", "grids": ["620103009009001"]}}}, "older")
        await store.save_plan({"areas": areas}, "newest")
        await store.record_patrol_alerts([
            alert("grid_not_covered", "c1001", "620105001001", A_GRID, 1),
            alert("not_started", "c1001", "620105001001", None, 2, resolved=True),
            alert("offline", "c3001", "620103001001", None, 3),
            alert("grid_not_covered", "c3001", "620103001001", Q_GRID, 4),
            alert("offline", "c3002", old_area, None, 5),  # its area left the plan: no district's any more
        ])
        seen = {(who, open_only): [r["slot_id"] for r in await store.patrol_alerts(open_only, 10, who)]
                for who in (ANNING, QILIHE, None) for open_only in (False, True)}
    assert seen == {
        (ANNING, False): ["c1001-2", "c1001-1"], (ANNING, True): ["c1001-1"],
        (QILIHE, False): ["c3001-4", "c3001-3"], (QILIHE, True): ["c3001-4", "c3001-3"],
        (None, False): ["c3002-5", "c3001-4", "c3001-3", "c1001-2", "c1001-1"],
        (None, True): ["c3002-5", "c3001-4", "c3001-3", "c1001-1"],
    }
