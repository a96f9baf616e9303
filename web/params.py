"""Reading requests: query parameters and bodies checked, bad input a 4xx ``HTTPException``
that the application answers as ``{"error": message}``."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from web.context import context

Endpoint = Callable[[Request], Awaitable[Response]]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# The times the API takes: anything outside is a typo or a unit mix-up, not a question.
FIRST_YEAR, LAST_YEAR = 2000, 2100
TIME_RULE = ("an ISO 8601 time with an offset (2026-12-01T15:00:00+08:00, ...Z), a local time without one "
             "(2026-12-01T15:00:00, read in the city's zone), or epoch milliseconds")


ANY_PARAMS: frozenset[str] = frozenset({"*"})


def accepts(*names: str) -> Callable[[Endpoint], Endpoint]:
    """Declares the query parameters an endpoint takes; a request with any other is a 400
    that names it (a misspelt filter must not silently answer everything)."""
    allowed = frozenset(names)

    def declare(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            only_params(request, allowed)
            return await endpoint(request)

        checked.accepted_params = allowed  # type: ignore[attr-defined]
        return checked

    return declare


def page_params(endpoint: Endpoint) -> Endpoint:
    """Declares an HTML page: its query string is the page script's to read (view state in
    a bookmark), not the server's, so none is refused."""
    endpoint.accepted_params = ANY_PARAMS  # type: ignore[attr-defined]
    return endpoint


def accepted_params(endpoint: object) -> frozenset[str] | None:
    """What ``accepts`` declared for ``endpoint`` (None: nothing declared)."""
    return getattr(endpoint, "accepted_params", None)


def only_params(connection: HTTPConnection, allowed: Iterable[str]) -> None:
    known = set(allowed)
    unknown = sorted(set(connection.query_params) - known)
    if unknown:
        takes = ", ".join(sorted(known)) if known else "none"
        raise HTTPException(400, f"unknown query parameter {unknown[0]!r} (this endpoint takes: {takes})")
    # every parameter is read once: a second value would be silently dropped
    repeated = sorted(name for name in set(connection.query_params) if len(connection.query_params.getlist(name)) > 1)
    if repeated:
        raise HTTPException(400, f"query parameter {repeated[0]!r} given twice or more: give it once")


def city_zone(request: Request) -> ZoneInfo:
    return ZoneInfo(context(request).zone())


def parse_time(value: str, name: str, zone: ZoneInfo) -> datetime:
    """``value`` by the API's one rule for time (see ``TIME_RULE``); HTTPException 400
    naming ``name`` otherwise."""
    digits = value[1:] if value[:1] in "+-" else value
    if digits.isascii() and digits.isdigit():
        if 9 <= len(digits) <= 10:
            raise HTTPException(400, f"{name!r} looks like epoch seconds ({value!r}): send epoch milliseconds")
        try:
            parsed = datetime.fromtimestamp(int(value) / 1000, UTC) if len(digits) <= 15 else None
        except (OverflowError, ValueError, OSError):
            parsed = None
        if parsed is None:
            raise HTTPException(400, f"{name!r} must be between {FIRST_YEAR} and {LAST_YEAR}, got {value!r}")
    else:
        try:
            if not value.isascii() or len(value) > 40:
                raise ValueError
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise HTTPException(400, f"{name!r} must be {TIME_RULE}; got {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
    try:
        local = parsed.astimezone(zone)
    except (OverflowError, ValueError):
        local = None
    if local is None or not FIRST_YEAR <= local.year <= LAST_YEAR:
        raise HTTPException(400, f"{name!r} must be between {FIRST_YEAR} and {LAST_YEAR}, got {value!r}")
    return parsed


def time_param(request: Request, name: str, default: datetime) -> datetime:
    """A time by the API's one rule (``TIME_RULE``): ISO 8601 with an offset, a local time
    without one read in the city's zone, or epoch milliseconds; ``default`` when absent."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    return parse_time(value, name, city_zone(request))


def date_param(request: Request, name: str, default: date) -> date:
    """A day (``YYYY-MM-DD``) of the city, years ``FIRST_YEAR``..``LAST_YEAR``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        if not (raw.isascii() and len(raw) == 10):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise HTTPException(400, f"{name!r} must be YYYY-MM-DD, got {raw!r}") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise HTTPException(400, f"{name!r} must be between {FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31, got {raw!r}")
    return day


def float_param(request: Request, name: str, low: float, high: float) -> float:
    """A required finite number between ``low`` and ``high``."""
    raw = request.query_params.get(name)
    if raw is None:
        raise HTTPException(400, f"missing query parameter {name!r}")
    try:
        value = float(raw)
    except ValueError:
        raise HTTPException(400, f"{name!r} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise HTTPException(400, f"{name!r} must be between {low} and {high}, got {raw!r}")
    return value


YES, NO = ("1", "true", "yes"), ("0", "false", "no", "")


def flag_param(request: Request, name: str) -> bool:
    """A yes/no parameter: 1, true, yes or 0, false, no (absent: no); anything else a 400
    naming it, never read as no (``open=on`` would answer every alert, not the open ones)."""
    raw = request.query_params.get(name, "")
    if raw in YES:
        return True
    if raw in NO:
        return False
    raise HTTPException(400, f"{name!r} must be 1 or 0 (true/false, yes/no), got {raw!r}")


def limit_param(request: Request, default: int, high: int) -> int:
    """``limit``: how many rows, 1..``high``."""
    raw = request.query_params.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= high:
        raise HTTPException(400, f"'limit' must be 1..{high}, got {raw!r}")
    return int(raw)


async def json_body(request: Request) -> object:
    """The JSON body; its size is held to ``[web] max_body_bytes`` by ``web.guards.LimitBody``."""
    try:
        body = await request.body()
    except ClientDisconnect:
        raise HTTPException(400, "the body ended early: the client went away") from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(400, "body must be JSON") from None
