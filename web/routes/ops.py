"""For operators: health, Prometheus metrics, and the payloads ingest could not use."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from web.context import context
from web.params import accepts, limit_param

RAW_HEX_BYTES = 512


@accepts()
async def healthz(request: Request) -> Response:
    ok, detail = context(request).healthy()
    return JSONResponse({"status": "ok" if ok else "degraded", "detail": detail}, status_code=200 if ok else 503)


@accepts()
async def metrics(request: Request) -> Response:
    return PlainTextResponse(context(request).metrics.render(), media_type="text/plain; version=0.0.4")


@accepts("limit")
async def dead_letters(request: Request) -> Response:
    """The newest payloads that failed to decode, with their first bytes in hex."""
    limit = limit_param(request, 100, 1000)
    rows = await context(request).records.dead_letters(limit)
    return JSONResponse({"dead_letters": [
        {"id": r["id"], "at": r["at"].isoformat(), "protocol": r["protocol"], "source": r["source"], "device": r["device"],
         "reason": r["reason"], "error": r["error"], "raw_hex": bytes(r["raw"][:RAW_HEX_BYTES]).hex()}
        for r in rows
    ]})
