"""Cases (案卷): list, detail, timeline, a dispatcher's new case, the lifecycle's actions;
the taxonomy and the departments' members.

Thin: the service's ``Cases`` decides and scopes everything to the caller (a district
account sees and acts on its district's cases only; another district's case is a 404, as
if it were not there). A case action is audited by the service with the case change
itself; a refused one (403, 409) is audited here as refused.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web.audit import audited, client_address
from web.context import CaseRefused, Cases, context
from web.openapi import document
from web.params import accepts, error, json_body, limit_param
from web.principal import principal

T = TypeVar("T")
TEXT_FILTERS = ("state", "category", "street", "district", "source")
FLAG_FILTERS = ("urgent", "overdue", "escalated")
MAX_TAXONOMY_BYTES = 1 << 20
MAX_FILTER_CHARS = 64  # a code or a state: far below this


def cases_of(request: Request) -> Cases:
    cases = context(request).cases
    if cases is None:
        raise HTTPException(404, "cases are switched off in this service")
    return cases


def _case_id(request: Request) -> int:
    raw = request.path_params["case_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise HTTPException(400, f"case_id must be a positive integer, got {raw!r}")
    return int(raw)


async def _answer(call: Awaitable[T]) -> T:
    """The service's refusals as the web's: 400, 403, 404, 409."""
    try:
        return await call
    except CaseRefused as exc:
        raise HTTPException(409, str(exc)) from None
    except PermissionError as exc:
        raise HTTPException(403, str(exc)) from None
    except LookupError as exc:
        raise HTTPException(404, str(exc).strip("'\"")) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


@accepts(*TEXT_FILTERS, *FLAG_FILTERS, "cursor", "limit")
async def cases_list(request: Request) -> Response:
    """Cases in the caller's scope, newest first, filtered, a page at a time (``cursor``)."""
    query = request.query_params
    filters: dict[str, Any] = {}
    for key in TEXT_FILTERS:
        if query.get(key):
            if len(query[key]) > MAX_FILTER_CHARS or "\x00" in query[key]:
                return error(400, f"{key} must be 1..{MAX_FILTER_CHARS} characters, none of them NUL")
            filters[key] = query[key]
    for key in FLAG_FILTERS:
        if key in query:
            if query[key] not in ("true", "false", "1", "0"):
                return error(400, f"{key} must be true or false")
            filters[key] = query[key] in ("true", "1")
    cursor = None
    if query.get("cursor"):
        raw = query["cursor"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
            return error(400, "cursor must be the next_cursor of the page before")
        cursor = int(raw)
    limit = limit_param(request, 50, 200)
    page, next_cursor = await _answer(cases_of(request).find(principal(request), filters, limit, cursor))
    return JSONResponse({"cases": page, "next_cursor": None if next_cursor is None else str(next_cursor)})


@accepts()
async def case_figures(request: Request) -> Response:
    """The big screen's case counts, of the caller's district."""
    return JSONResponse(await _answer(cases_of(request).figures(principal(request))))


@accepts()
async def case_get(request: Request) -> Response:
    return JSONResponse(await _answer(cases_of(request).get(principal(request), _case_id(request))))


@accepts("k")
async def case_candidates(request: Request) -> Response:
    """The nearest collectors on duty to send to the case for its on-site verification
    (``k``: how many, 1 to 20, default 3)."""
    verifiers = context(request).verifiers
    if verifiers is None:
        raise HTTPException(404, "verification dispatch is switched off in this service")
    raw = request.query_params.get("k", "3")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 20:
        raise HTTPException(400, "k must be a whole number from 1 to 20")
    return JSONResponse(await _answer(verifiers.candidates(principal(request), _case_id(request), int(raw))))


@accepts()
async def case_timeline(request: Request) -> Response:
    entries = await _answer(cases_of(request).timeline(principal(request), _case_id(request)))
    return JSONResponse({"timeline": entries})


@accepts()
async def case_create(request: Request) -> Response:
    """A dispatcher's new case: category, description, lat, lon (urgent optional)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object: category, description, lat, lon")
    case = await _answer(cases_of(request).create(principal(request), client_address(request), body))
    return JSONResponse(case, status_code=201)


@accepts()
async def case_action(request: Request) -> Response:
    """One lifecycle action; the body holds the fields it needs (may be empty)."""
    case_id = _case_id(request)
    action = request.path_params["action"]
    body = await json_body(request) if await request.body() else {}
    if not isinstance(body, dict):
        return error(400, "body must be a JSON object of the action's fields (reason, department, ...)")
    try:
        case = await _answer(cases_of(request).act(principal(request), client_address(request), case_id, action, body))
    except HTTPException as exc:
        if exc.status_code in (403, 409):
            await audited(request, f"case.{action}"[:64], f"case:{case_id}", outcome="refused", detail=str(exc.detail))
        raise
    return JSONResponse(case)


@accepts()
async def taxonomy_get(request: Request) -> Response:
    return JSONResponse(await _answer(cases_of(request).taxonomy()))


@accepts()
async def taxonomy_put(request: Request) -> Response:
    """Load a taxonomy file: the body is its TOML text. 400 lists every problem in it."""
    body = await request.body()
    if len(body) > MAX_TAXONOMY_BYTES:
        return error(413, f"body must be at most {MAX_TAXONOMY_BYTES} bytes (a taxonomy file)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return error(400, "body must be UTF-8 TOML text")
    try:
        loaded = await _answer(cases_of(request).load_taxonomy(principal(request), client_address(request), text))
    except HTTPException as exc:
        await audited(request, "taxonomy.load", "taxonomy", outcome="refused", detail=str(exc.detail)[:500])
        if exc.status_code == 400:
            raise HTTPException(400, f"body: {exc.detail}") from None
        raise
    return JSONResponse(loaded, status_code=201 if loaded.get("created") else 200)


@accepts()
async def departments_get(request: Request) -> Response:
    return JSONResponse({"departments": await _answer(cases_of(request).departments())})


@accepts()
async def member_put(request: Request) -> Response:
    return await _member(request, True)


@accepts()
async def member_delete(request: Request) -> Response:
    return await _member(request, False)


async def _member(request: Request, member: bool) -> Response:
    department, account = request.path_params["department"], request.path_params["account"]
    changed = await _answer(cases_of(request).set_member(principal(request), client_address(request), department,
                                                         account, member))
    return JSONResponse({"department": department, "account": account, "member": member, "changed": changed})


@accepts()
async def openapi(request: Request) -> Response:
    return JSONResponse(document())
