"""Reports over a past or current day."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web.context import context
from web.params import error
from web.principal import principal
from web.routes.patrol import patrol_engine

# Days whose local midnights, in any zone, are epoch milliseconds a datetime can hold.
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9999, 12, 30)


async def coverage_report(request: Request) -> Response:
    """Patrol coverage of one local day (``date=YYYY-MM-DD``, default today in the plan's
    zone), of the caller's district's collectors and grids."""
    ctx = context(request)
    patrol = patrol_engine(request)
    raw = request.query_params.get("date")
    try:
        day = date.fromisoformat(raw) if raw else datetime.fromtimestamp(ctx.clock_ms() / 1000, ZoneInfo(ctx.zone())).date()
    except ValueError:
        return error(400, f"'date' must be YYYY-MM-DD, got {raw!r}")
    if not FIRST_DAY <= day <= LAST_DAY:
        return error(400, f"'date' must be between {FIRST_DAY} and {LAST_DAY}, got {raw!r}")
    return JSONResponse(await patrol.report(day, principal(request).district))
