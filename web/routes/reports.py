"""Reports over a past or current day."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web.context import context
from web.params import accepts, date_param
from web.principal import principal
from web.routes.patrol import patrol_engine


@accepts("date")
async def coverage_report(request: Request) -> Response:
    """Patrol coverage of one day of the city (``date=YYYY-MM-DD``, default today in the
    city's zone), of the caller's district's collectors and grids."""
    ctx = context(request)
    patrol = patrol_engine(request)
    today = datetime.fromtimestamp(ctx.clock_ms() / 1000, ZoneInfo(ctx.zone())).date()
    day = date_param(request, "date", today)
    return JSONResponse(await patrol.report(day, principal(request).district))
