"""Reading requests: query parameters and bodies checked, bad input a 4xx ``HTTPException``
that the application answers as ``{"error": message}``."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def time_param(request: Request, name: str, default: datetime) -> datetime:
    """An ISO 8601 time (naive means UTC) or epoch milliseconds; ``default`` when absent."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        if value.lstrip("-").isdigit():
            ms = int(value)
            if abs(ms) > 10**14:
                raise ValueError
            return datetime.fromtimestamp(ms / 1000, UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed.astimezone(UTC)  # refuse a time whose UTC instant a datetime cannot hold
    except (ValueError, OverflowError, OSError):
        raise HTTPException(400, f"{name!r} must be an ISO 8601 time or epoch milliseconds, got {value!r}") from None
    return parsed


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
