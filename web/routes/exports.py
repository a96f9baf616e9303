"""``GET /api/exports/{kind}.{format}``: the lists of the API as files for people
(``web.exports``): alarms, patrol alerts and the day's coverage report as CSV or Excel, a
device's track also as GPX or GeoJSON. Scoped like the lists themselves: the caller's
district only. Query parameters are those of the list exported."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from protocols.epoch import datetime_to_ms, ms_to_datetime
from web.context import context
from web.exports import Column, to_csv, to_gpx, to_xlsx
from web.params import accepts, date_param, flag_param, limit_param, only_params, time_param
from web.principal import principal
from web.routes.devices import EARLIEST, TRACK_DEFAULT, _known, _label, track_geojson
from web.routes.patrol import patrol_engine

ALARMS = (Column("id", "编号", "id", "number"), Column("t", "时间", "time", "time"), Column("device", "设备", "device"),
          Column("label", "名称", "label"),
          Column("source", "来源", "source"), Column("component", "部件编码", "component"), Column("kind", "类型", "kind"),
          Column("raised", "报警", "raised", "bool"), Column("value", "数值", "value", "number"),
          Column("grid", "单元网格", "grid"), Column("lat", "纬度", "lat", "number"), Column("lon", "经度", "lon", "number"),
          Column("detail", "详情", "detail"))
ALERTS = (Column("id", "编号", "id", "number"), Column("raised_at", "发生时间", "raised at", "time"),
          Column("updated_at", "更新时间", "updated at", "time"), Column("resolved_at", "解除时间", "resolved at", "time"),
          Column("open", "未解除", "open", "bool"), Column("kind", "类型", "kind"), Column("collector", "采集员", "collector"),
          Column("collector_name", "姓名", "name"), Column("area", "责任区", "area"), Column("grid", "单元网格", "grid"),
          Column("resolution", "处理结果", "resolution"), Column("text", "说明", "text"))
COVERAGE = (Column("collector", "采集员", "collector"), Column("area", "责任区", "area"),
            Column("start", "班次开始", "slot start", "time"), Column("end", "班次结束", "slot end", "time"),
            Column("status", "状态", "status"), Column("complete", "已结束", "complete", "bool"),
            Column("grids_total", "网格数", "grids", "number"), Column("grids_covered", "已覆盖网格", "grids covered", "number"),
            Column("share", "覆盖率", "share", "number"), Column("passes", "经过次数", "passes", "number"),
            Column("inside_min", "区内分钟", "minutes inside", "number"), Column("fixes", "定位点数", "fixes", "number"))
TRACK = (Column("t", "定位时间", "fix time", "time"), Column("device", "设备", "device"), Column("label", "名称", "label"),
         Column("lat", "纬度", "lat", "number"), Column("lon", "经度", "lon", "number"))

FORMATS = {"alarms": ("csv", "xlsx"), "alerts": ("csv", "xlsx"), "coverage": ("csv", "xlsx"),
           "track": ("csv", "xlsx", "gpx", "geojson")}
PARAMS = {"alarms": ("limit",), "alerts": ("open", "limit"), "coverage": ("date",), "track": ("device", "from", "to")}
MEDIA = {"csv": "text/csv; charset=utf-8", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "gpx": "application/gpx+xml", "geojson": "application/geo+json"}


@accepts(*sorted({p for params in PARAMS.values() for p in params}))
async def export(request: Request) -> Response:
    kind, _, fmt = request.path_params["name"].partition(".")
    if kind not in FORMATS:
        raise HTTPException(404, f"no export {kind!r}; there are: {', '.join(FORMATS)}")
    if fmt not in FORMATS[kind]:
        raise HTTPException(404, f"{kind} exports as {', '.join(FORMATS[kind])}, not {fmt!r}")
    only_params(request, PARAMS[kind])
    zone = context(request).zone()
    if kind == "track":
        return await _track(request, fmt, zone)
    columns, records, title = await _table(request, kind)
    body = to_csv(columns, records, zone) if fmt == "csv" else to_xlsx(columns, records, zone, title)
    return _file(body, fmt, title)


async def _table(request: Request, kind: str) -> tuple[tuple[Column, ...], list[dict[str, Any]], str]:
    ctx = context(request)
    district = principal(request).district
    if kind == "alarms":
        rows = await ctx.records.alarm_events(limit_param(request, 1000, 100_000), district)
        return ALARMS, [{c.key: r[c.key] for c in ALARMS if c.key != "label"} | {"label": _label(ctx, r["device"])}
                        for r in rows], "alarms"
    if kind == "alerts":
        open_only = flag_param(request, "open")
        rows = await ctx.records.patrol_alerts(open_only, limit_param(request, 5000, 100_000), district)
        return ALERTS, [{c.key: r[c.key] for c in ALERTS if c.key not in ("open", "collector_name")}
                        | {"open": r["resolved_at"] is None, "collector_name": _label(ctx, r["collector"])} for r in rows], "alerts"
    today = datetime.fromtimestamp(ctx.clock_ms() / 1000, ZoneInfo(ctx.zone())).date()
    day = date_param(request, "date", today)
    report = await patrol_engine(request).report(day, district)
    return COVERAGE, report["collectors"], f"coverage-{day.isoformat()}"


async def _track(request: Request, fmt: str, zone: str) -> Response:
    ctx = context(request)
    district = principal(request).district
    device_id = request.query_params.get("device")
    if not device_id:
        raise HTTPException(400, "missing query parameter 'device'")
    end = time_param(request, "to", ms_to_datetime(ctx.clock_ms()))
    start = time_param(request, "from", max(end, EARLIEST + TRACK_DEFAULT) - TRACK_DEFAULT)
    if start > end:
        raise HTTPException(400, "'from' is after 'to'")
    if not await _known(ctx, device_id, district):
        raise HTTPException(404, f"unknown device {device_id!r}")
    rows = await ctx.records.track(device_id, start, end, ctx.settings.track_max_points, district)
    title = f"track-{device_id}"
    label = _label(ctx, device_id)  # the name the map gives it, as the track route does
    if fmt == "geojson":
        return _file(json.dumps(track_geojson(device_id, start, end, rows, label=label), ensure_ascii=False).encode(), fmt, title)
    if fmt == "gpx":
        return _file(to_gpx(label, ((r["lat"], r["lon"], r["t"]) for r in rows)), fmt, title)
    records = [{"t": datetime_to_ms(r["t"]), "device": device_id, "label": label, "lat": r["lat"], "lon": r["lon"]} for r in rows]
    body = to_csv(TRACK, records, zone) if fmt == "csv" else to_xlsx(TRACK, records, zone, title)
    return _file(body, fmt, title)


def _file(body: bytes, fmt: str, title: str) -> Response:
    return Response(body, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{title}.{fmt}"'})
