"""``GET /api/audit``: the audit trail for admins, newest first, filtered and paged."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from protocols.epoch import datetime_to_ms
from web.context import context
from web.params import accepts, error, limit_param

MAX_FILTER_CHARS = 200


@accepts("actor", "action", "target", "before", "limit")
async def audit_entries(request: Request) -> Response:
    """Filters: ``actor`` (exact), ``action`` (a prefix: ``plan.`` for every plan change),
    ``target`` (exact); ``before`` (an entry id) pages back: pass the answer's ``next``."""
    filters: dict[str, str | None] = {}
    for name in ("actor", "action", "target"):
        value = request.query_params.get(name)
        if value is not None and (value == "" or len(value) > MAX_FILTER_CHARS or "\x00" in value):
            return error(400, f"{name!r} must be 1..{MAX_FILTER_CHARS} characters, none of them NUL")
        filters[name] = value
    raw = request.query_params.get("before")
    if raw is not None and not (raw.isascii() and raw.isdigit() and 0 < len(raw) <= 18):
        return error(400, f"'before' must be an entry id, got {raw!r}")
    limit = limit_param(request, 100, 1000)
    rows = await context(request).records.audit_entries(
        actor=filters["actor"], action=filters["action"], target=filters["target"],
        before_id=int(raw) if raw is not None else None, limit=limit)
    entries = [{"id": r["id"], "at": datetime_to_ms(r["at"]), "actor": r["actor"], "role": r["role"], "scope": r["scope"],
                "source": r["source"], "action": r["action"], "target": r["target"], "outcome": r["outcome"],
                "before": _json(r["before"]), "after": _json(r["after"]), "detail": r["detail"]} for r in rows]
    return JSONResponse({"entries": entries, "next": entries[-1]["id"] if len(entries) == limit else None})


def _json(value: object) -> object:
    """jsonb arrives as its text from asyncpg."""
    return json.loads(value) if isinstance(value, str) else value
