"""Exports read back with the libraries people's tools use (csv, openpyxl, an XML parser,
json): two header rows, times in the city's zone, 是/否, and only the caller's district."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import trio
from openpyxl import load_workbook

from protocols.epoch import datetime_to_ms
from tests.web.districts import ANNING, COLLECTOR, DEVICES, QILIHE, start_two_districts
from tests.web.test_district_scope import clients, ingest_both_districts

SHANGHAI = ZoneInfo("Asia/Shanghai")
GPX = "{http://www.topografix.com/GPX/1/1}"


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())  # Excel reads the Chinese headers as UTF-8 only with it
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


async def test_exports_open_in_their_readers_with_city_times_and_the_callers_district_only(settings, broker, tmp_path):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_two_districts(nursery, settings, tmp_path)
        await ingest_both_districts(broker, running, store)
        stored_alarms = await store.fetch("SELECT device, t FROM alarm_events WHERE device = $1 ORDER BY id DESC",
                                          DEVICES[ANNING][2].id)
        stored_track = await store.fetch("SELECT t, lat, lon FROM pings WHERE device = $1 ORDER BY t", COLLECTOR[ANNING])
        since = datetime_to_ms(stored_track[0]["t"]) - 1
        async with clients(running) as http:
            anning = http[ANNING]
            got = {name: await anning.get(f"/api/exports/{name}", params=params) for name, params in {
                "alarms.csv": {},
                "alerts.xlsx": {},
                "coverage.csv": {},
                "coverage.xlsx": {},
                "track.gpx": {"device": COLLECTOR[ANNING], "from": str(since)},
                "track.geojson": {"device": COLLECTOR[ANNING], "from": str(since)},
                "track.csv": {"device": COLLECTOR[ANNING], "from": str(since)},
            }.items()}
            other_track = await anning.get("/api/exports/track.gpx", params={"device": COLLECTOR[QILIHE], "from": str(since)})
            unknown_kind = await anning.get("/api/exports/devices.csv")
            wrong_format = await anning.get("/api/exports/alarms.gpx")
            wrong_param = await anning.get("/api/exports/alarms.csv", params={"date": "2026-12-01"})
            report = (await anning.get("/api/reports/coverage")).json()
        nursery.cancel_scope.cancel()
    for name, response in got.items():
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-disposition"].startswith("attachment; filename=")

    alarms = read_csv(got["alarms.csv"].content)
    assert alarms[0][:3] == ["编号", "时间 (北京时间)", "设备"]
    assert alarms[1][:3] == ["id", "time (Asia/Shanghai)", "device"]
    assert {row[2] for row in alarms[2:]} == {DEVICES[ANNING][2].id}  # Qilihe's sensor is not Anning's to export
    assert [row[1] for row in alarms[2:]] == [r["t"].astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") for r in stored_alarms]
    raised = alarms[0].index("报警")
    assert {row[raised] for row in alarms[2:]} <= {"是", "否"} and "是" in {row[raised] for row in alarms[2:]}

    sheet = load_workbook(io.BytesIO(got["alerts.xlsx"].content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[1][:2] == ("id", "raised at (Asia/Shanghai)")
    collector, still_open = rows[0].index("采集员"), rows[0].index("未解除")
    assert {r[collector] for r in rows[2:]} == {COLLECTOR[ANNING]}
    assert {r[still_open] for r in rows[2:]} == {"是"}  # the seeded episodes are still open
    assert all(isinstance(r[1], datetime) for r in rows[2:])

    coverage = read_csv(got["coverage.csv"].content)
    assert len(coverage) - 2 == len(report["collectors"]) > 0
    status = coverage[1].index("status")
    assert [row[status] for row in coverage[2:]] == [c["status"] for c in report["collectors"]]
    book = load_workbook(io.BytesIO(got["coverage.xlsx"].content)).active
    assert book.max_row == len(coverage)

    gpx = ElementTree.fromstring(got["track.gpx"].content)
    points = gpx.findall(f"{GPX}trk/{GPX}trkseg/{GPX}trkpt")
    assert [(float(p.get("lat")), float(p.get("lon"))) for p in points] == \
        [(round(r["lat"], 7), round(r["lon"], 7)) for r in stored_track]
    times = [datetime.fromisoformat(p.find(f"{GPX}time").text) for p in points]
    assert times == [r["t"].replace(microsecond=0) for r in stored_track]
    feature = json.loads(got["track.geojson"].content)
    assert feature["geometry"]["type"] == "LineString" and len(feature["geometry"]["coordinates"]) == len(stored_track)
    track = read_csv(got["track.csv"].content)
    assert [row[1] for row in track[2:]] == [COLLECTOR[ANNING]] * len(stored_track)

    assert other_track.status_code == 404  # another district's device: unknown, as in /api/devices/{device}/track
    assert unknown_kind.status_code == 404 and "'devices'" in unknown_kind.json()["error"]
    assert wrong_format.status_code == 404 and "'gpx'" in wrong_format.json()["error"]
    assert wrong_param.status_code == 400 and "'date'" in wrong_param.json()["error"]


async def test_exports_name_the_devices_as_the_map_does(settings, broker):
    """A dispatcher's file says who and what, as the map does: the collector's name, the
    sensor's name, beside the id; the GeoJSON export is the track route's answer."""
    import time

    import httpx
    import msgpack

    from tests.harness import auth_headers, start_service
    from tests.helpers import apublish, wait_for
    from tests.tracker.test_names_readings_e2e import ANNING_BIN, _bin
    from tracker.registry.model import RegisteredDevice

    now = int(time.time() * 1000)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        for device in (RegisteredDevice.new("c0001", "collector", ANNING, name="采集员 王芳", person="王芳"),
                       RegisteredDevice.new("bin-0001", "sensor", ANNING, name="果皮箱 桃林 3 号", component=ANNING_BIN)):
            await store.register_device(device.row())
        await running.registry.load(store)
        await apublish(broker, [
            *[("gw/v1/620105/collector/c0001/pos",
               msgpack.packb({"t": now - 30_000 + 10_000 * i, "lat": 36.1050 + 0.0003 * i, "lon": 103.7200, "acc": 5.0}))
              for i in range(3)],
            *_bin("bin-0001", ANNING_BIN, ANNING, now - 60_000, 91.0),  # over 80 % full: an alarm
        ])
        await wait_for(lambda: running.pipeline.metrics.get("gridwatch_persisted_total") >= 4)
        with trio.fail_after(10):
            while not await store.fetch("SELECT id FROM alarm_events WHERE device = 'bin-0001'"):
                await trio.sleep(0.05)
        await store.fetch(  # a patrol alert of the named collector, as the patrol engine stores one
            "INSERT INTO patrol_alerts (kind, collector, slot_id, area, grid, slot_start, slot_end, raised_at, updated_at, "
            "detail, text) VALUES ('battery_low', 'c0001', 's', '620105001001', '620105001001001', now(), now(), now(), now(), "
            "'{}', '电量低') RETURNING id")
        window = {"from": str(now - 60_000), "to": str(now + 1000)}
        async with httpx.AsyncClient(base_url=running.url,
                                     headers=await auth_headers(store, role="viewer", district=ANNING)) as http:
            route = (await http.get("/api/devices/c0001/track", params=window)).json()
            got = {fmt: await http.get(f"/api/exports/track.{fmt}", params={"device": "c0001", **window})
                   for fmt in ("csv", "xlsx", "gpx", "geojson")}
            alarms = await http.get("/api/exports/alarms.csv")
            alerts = await http.get("/api/exports/alerts.csv")
        nursery.cancel_scope.cancel()

    assert route["properties"]["label"] == "王芳"
    assert json.loads(got["geojson"].content) == route
    gpx = ElementTree.fromstring(got["gpx"].content)
    assert gpx.find(f"{GPX}trk/{GPX}name").text == "王芳"
    track = read_csv(got["csv"].content)
    name = track[0].index("名称")
    assert track[1][name] == "label" and [row[name] for row in track[2:]] == ["王芳"] * 3
    sheet = list(load_workbook(io.BytesIO(got["xlsx"].content)).active.iter_rows(values_only=True))
    assert [row[name] for row in sheet[2:]] == ["王芳"] * 3
    table = read_csv(alarms.content)
    name = table[0].index("名称")
    assert {row[name] for row in table[2:]} == {"果皮箱 桃林 3 号"}
    table = read_csv(alerts.content)
    collector, name = table[0].index("采集员"), table[0].index("姓名")
    assert [(row[collector], row[name]) for row in table[2:]] == [("c0001", "王芳")]
