"""A device's history as a person reads it: the track with GPS jitter filtered out, its
distance measured on the filtered track, and the stops (``geofence.tracks``).

Default range: the shift so far, i.e. from the start of the collector's slot running now
in the patrol plan; for a device with no slot now, the last 8 hours. Scoped like
``/track``: another district's device is unknown to a district account.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from geofence.tracks import Point, TrackSettings, length_m, smoothed, stops
from protocols.epoch import datetime_to_ms, ms_to_datetime
from web.context import WebContext, context
from web.params import accepts, error, time_param
from web.principal import principal
from web.routes.devices import _known

HISTORY_DEFAULT = timedelta(hours=8)
HISTORY_MAX = timedelta(days=7)
EARLIEST = datetime.min.replace(tzinfo=UTC)
TRACK = TrackSettings()
METHOD = {
    "zh": (f"去抖：剔除精度差于 {TRACK.max_acc_m:.0f} 米的定位；每个定位取前后 {TRACK.window_ms // 1000} 秒内定位按精度加权"  # noqa: RUF001 (Chinese punctuation)
           f"（权重 1/精度²）的平均位置；与上一保留点的距离不超过两者精度半径（至少 {TRACK.min_move_m:.0f} 米）的移动不计。"  # noqa: RUF001
           "里程按去抖后的轨迹计算。"),
    "en": (f"Jitter filter: fixes worse than {TRACK.max_acc_m:.0f} m dropped; each fix moved to the accuracy-weighted "
           f"(1/accuracy²) mean of the fixes within {TRACK.window_ms // 1000} s of it; moves within the accuracy radius "
           f"(at least {TRACK.min_move_m:.0f} m) left out. The distance is measured on the filtered track."),
}


@accepts("from", "to", "stop_min", "stop_radius_m")
async def history(request: Request) -> Response:
    """``from``/``to`` (ISO 8601 or epoch ms), ``stop_min`` (minutes a dwell lasts to be
    a stop, default 5) and ``stop_radius_m`` (default 30)."""
    ctx = context(request)
    district = principal(request).district
    device_id = request.path_params["device"]
    now_ms = ctx.clock_ms()
    stop_min = _number(request, "stop_min", TRACK.min_stop_ms / 60_000, 0.5, 24 * 60)
    stop_radius = _number(request, "stop_radius_m", TRACK.stop_radius_m, 5, 1000)
    if isinstance(stop_min, Response):
        return stop_min
    if isinstance(stop_radius, Response):
        return stop_radius
    end = time_param(request, "to", ms_to_datetime(now_ms))
    slot = _slot_now(ctx, device_id, now_ms)
    default_start = (ms_to_datetime(slot["start"]) if slot is not None
                     else max(end, EARLIEST + HISTORY_DEFAULT) - HISTORY_DEFAULT)
    start = time_param(request, "from", min(default_start, end))
    if start > end:
        return error(400, "'from' is after 'to'")
    if end - start > HISTORY_MAX:
        return error(400, f"a history covers at most {HISTORY_MAX.days} days; narrow 'from'..'to'")
    if not await _known(ctx, device_id, district):
        return error(404, f"unknown device {device_id!r}")
    limit = ctx.settings.track_max_points
    rows = await ctx.records.history(device_id, start, end, limit, district)
    raw = [Point(datetime_to_ms(r["t"]), r["lat"], r["lon"], r["acc"]) for r in rows]
    settings = replace(TRACK, min_stop_ms=round(stop_min * 60_000), stop_radius_m=stop_radius)
    filtered, found, raw_m = await trio.to_thread.run_sync(_analyse, raw, settings)
    return JSONResponse({
        "device": device_id, "from": datetime_to_ms(start), "to": datetime_to_ms(end), "slot": slot,
        "raw": {"points": len(raw), "distance_m": round(raw_m, 1), "truncated": len(raw) >= limit},
        "distance_m": round(length_m(filtered), 1),
        "track": {
            "type": "Feature",
            "geometry": {"type": "LineString", "coordinates": [[p.lon, p.lat] for p in filtered]},
            "properties": {"times": [p.t_ms for p in filtered]},
        },
        "stops": [{"start": s.start_ms, "end": s.end_ms, "lat": s.lat, "lon": s.lon, "fixes": s.fixes,
                   "minutes": round(s.minutes, 1)} for s in found],
        "settings": {"stop_min": stop_min, "stop_radius_m": stop_radius, "max_acc_m": settings.max_acc_m,
                     "window_s": settings.window_ms / 1000, "min_move_m": settings.min_move_m},
        "method": METHOD,
    })


def _analyse(raw: list[Point], settings: TrackSettings) -> tuple[list[Point], list, float]:
    # stops are looked for in the fixes good enough to draw, before sub-accuracy moves are
    # dropped: dropping them would leave a dwell one point long
    good = [p for p in raw if p.acc is None or p.acc <= settings.max_acc_m]
    return smoothed(raw, settings), stops(good, settings), length_m(raw)


def _number(request: Request, name: str, default: float, low: float, high: float) -> float | Response:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not low <= number <= high:
        return error(400, f"{name!r} must be a number from {low:g} to {high:g}, got {value!r}")
    return number


def _slot_now(ctx: WebContext, device_id: str, now_ms: int) -> dict | None:
    """The slot of the plan in effect that ``device_id`` (as a collector) is on at ``now_ms``."""
    plan = ctx.patrol.plan if ctx.patrol is not None else None
    if plan is None:
        return None
    try:
        slot = plan.schedule().slot_at(device_id, now_ms)
    except ValueError:  # not an id a collector can have
        return None
    if slot is None:
        return None
    return {"start": slot.start_ms, "end": slot.end_ms, "area": slot.area}
