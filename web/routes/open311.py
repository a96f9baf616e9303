"""Open311 GeoReport v2 (``/open311/v2/``): citizens' service requests, as the hotline's
and any Open311 client's way in.

- ``services.json``: the taxonomy's categories as services (code, name, group = the major
  class's name); no service has attributes (``metadata`` false).
- ``requests.json`` GET and ``requests/{id}.json``: public, as the spec has them, and
  without personal data: the reporter's name, e-mail and phone are stored with the case
  and never answered here; nor is who in the city acted, only the department responsible.
- ``requests.json`` POST: form-encoded, as the spec sends it, with ``api_key``: an API
  token (``tracker token create``) of a commander's or supervisor's account, e.g. the
  hotline desk's own. A district account's key files only its district's requests. A
  client ``token`` makes the post idempotent: the same token answers the same request.

JSON only: ``.xml`` (or any other format) is a 400 that says so. Errors are Open311's
``[{"code": ..., "description": ...}]``. A request is open until its case is closed or
rejected.
"""

from __future__ import annotations

import codecs
import functools
import math
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from protocols.epoch import ms_to_datetime
from web.audit import audited, client_address
from web.context import Conflict, Open311, Unavailable, context
from web.principal import Role

Endpoint = Callable[[Request], Awaitable[Response]]

MAX_RANGE = timedelta(days=90)  # the spec's default window and widest range
MAX_REQUESTS = 1000  # the spec's cap on one answer
MAX_IDS = 200
MAX_TEXT = 4000
POSTERS = frozenset({Role.COMMANDER, Role.SUPERVISOR})
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CODE = re.compile(r"[A-Za-z0-9]{1,16}")
_PERSON = ("first_name", "last_name", "email", "phone", "device_id", "account_id")


def failure(status: int, description: str) -> JSONResponse:
    return JSONResponse([{"code": status, "description": description}], status_code=status)


def _params(*names: str) -> Callable[[Endpoint], Endpoint]:
    """The query parameters an Open311 endpoint takes (and the spec's ``jurisdiction_id``,
    which clients send with every call); any other is refused in Open311's error form,
    naming it, as the rest of the API refuses it in its own (``web.params.accepts``)."""
    allowed = frozenset((*names, "jurisdiction_id"))

    def declare(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def checked(request: Request) -> Response:
            unknown = sorted(set(request.query_params) - allowed)
            if unknown:
                return failure(400, f"unknown query parameter {unknown[0]!r} (this endpoint takes: {', '.join(sorted(allowed))})")
            return await endpoint(request)

        checked.accepted_params = allowed  # type: ignore[attr-defined]
        return checked

    return declare


def _serving(request: Request) -> Open311 | JSONResponse:
    """The Open311 backend, or the answer refusing the request before it reaches it (a
    format other than JSON; no cases behind this service)."""
    refused = _json_only(request)
    return refused if refused is not None else _open311(request)


def _json_only(request: Request) -> JSONResponse | None:
    fmt = request.path_params.get("format", "json")
    if fmt == "json":
        return None
    if fmt == "xml":
        return failure(400, "this endpoint answers JSON only: ask for .json instead of .xml")
    return failure(404, f"no such format {fmt!r}: this endpoint answers .json only")


def _open311(request: Request) -> Open311 | JSONResponse:
    found = context(request).open311
    return found if found is not None else failure(404, "no service requests are taken here (cases are off)")


@_params()
async def services(request: Request) -> Response:
    """The service list: one service per category of the current taxonomy."""
    backend = _serving(request)
    if isinstance(backend, JSONResponse):
        return backend
    try:
        found = await backend.services()
    except Unavailable as exc:
        return failure(503, str(exc))
    return JSONResponse([_service(s) for s in found])


def _service(s: dict[str, Any]) -> dict[str, Any]:
    urgent = ", 紧急" if s["urgent"] else ""
    return {"service_code": s["code"], "service_name": s["name"],
            "description": f"{s['group']}: {s['name']} ({s['name_en']}). 处置单位: {s['department']}{urgent}",
            "metadata": False, "type": "realtime",
            "keywords": ",".join(k for k in (s["group"], s["name"], s["name_en"], s["kind"]) if k),
            "group": s["group"]}


@_params()
async def service_definition(request: Request) -> Response:
    """A service's attributes: none (every service has ``metadata`` false)."""
    backend = _serving(request)
    if isinstance(backend, JSONResponse):
        return backend
    code = request.path_params["service_code"]
    try:
        found = await backend.services()
    except Unavailable as exc:
        return failure(503, str(exc))
    if not any(s["code"] == code for s in found):
        return failure(404, f"no service {code!r} (GET services.json lists them)")
    return JSONResponse({"service_code": code, "attributes": []})


@_params("service_request_id", "service_code", "start_date", "end_date", "status")
async def requests_list(request: Request) -> Response:
    """Requests by id (comma-separated; overrides the other filters), service code,
    requested between start_date and end_date (at most 90 days; default the last 90),
    status open or closed."""
    backend = _serving(request)
    if isinstance(backend, JSONResponse):
        return backend
    query = request.query_params
    try:
        if query.get("service_request_id"):
            ids = [_request_id(part) for part in query["service_request_id"].split(",")]
            if len(ids) > MAX_IDS:
                raise ValueError(f"at most {MAX_IDS} service_request_id at once")
            found = await backend.requests(ids=ids, codes=None, start=None, end=None, closed=None, limit=MAX_IDS)
            return JSONResponse([_request(r) for r in found])
        codes = None
        if query.get("service_code"):
            codes = [c.strip() for c in query["service_code"].split(",")]
            if not all(_CODE.fullmatch(c) for c in codes):
                raise ValueError("service_code: service codes (letters and digits), comma-separated")
        closed = _status(query.get("status"))
        start, end = _dates(query.get("start_date"), query.get("end_date"), now=_now(request))
        found = await backend.requests(ids=None, codes=codes, start=start, end=end, closed=closed, limit=MAX_REQUESTS)
    except ValueError as exc:
        return failure(400, str(exc))
    except Unavailable as exc:
        return failure(503, str(exc))
    return JSONResponse([_request(r) for r in found])


@_params()
async def request_one(request: Request) -> Response:
    backend = _serving(request)
    if isinstance(backend, JSONResponse):
        return backend
    try:
        case_id = _request_id(request.path_params["service_request_id"])
        found = await backend.requests(ids=[case_id], codes=None, start=None, end=None, closed=None, limit=1)
    except ValueError as exc:
        return failure(400, str(exc))
    except Unavailable as exc:
        return failure(503, str(exc))
    if not found:
        return failure(404, f"no service request {case_id}")
    return JSONResponse([_request(found[0])])


@_params()
async def request_create(request: Request) -> Response:
    """A citizen's request, form-encoded as the spec posts it: a case of source hotline."""
    backend = _serving(request)
    if isinstance(backend, JSONResponse):
        return backend
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return failure(400, "post the request form-encoded (application/x-www-form-urlencoded), as Open311 does")
    if kind == "application/x-www-form-urlencoded":
        try:
            fields = dict(_urlencoded(await request.body(), _charset(request.headers["content-type"])))
        except ValueError as exc:
            return failure(400, str(exc))
    else:
        try:
            form = await request.form()
        except Exception as exc:  # python-multipart's parse errors have no common base worth naming
            return failure(400, f"the form cannot be read: {exc}")
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        if len(fields) != len(form.multi_items()):
            return failure(400, "files are not taken: send a media_url")
    key = fields.get("api_key", "")
    if not key:
        return failure(400, "api_key is required to post a request")
    accounts = context(request).accounts
    try:
        verified = await accounts.token(key) if accounts is not None else None
    except Unavailable as exc:
        return failure(503, str(exc))
    if verified is None:
        return failure(403, "api_key is not valid (an API token of a commander's or supervisor's account)")
    who = verified.principal
    if who.role not in POSTERS:
        return failure(403, f"the api_key's account is a {who.role.value}: only a commander's or supervisor's may post")
    try:
        parsed = _submission(fields)
        case_id, created = await backend.submit(who, client_address(request), parsed)
    except ValueError as exc:
        return failure(400, str(exc))
    except PermissionError as exc:
        return failure(403, str(exc))
    except Conflict as exc:
        return failure(409, str(exc))
    except Unavailable as exc:
        return failure(503, str(exc))
    if created:
        await audited(request, "open311.request", f"case:{case_id}", after={"service_code": parsed["service_code"],
                                                                         "token": parsed.get("token")},
                      by=who)
    notice = "已受理" if created else "已受理 (同一 token 的请求已在处理)"
    return JSONResponse([{"service_request_id": str(case_id), "service_notice": notice, "account_id": None}],
                        status_code=201 if created else 200)


def _charset(content_type: str) -> str:
    """The form's declared charset (a hotline's system may well send GBK), UTF-8 when none."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"')
            try:
                name = codecs.lookup(charset).name
                "a".encode(name)  # a text encoding, not a bytes transform such as base64
                return name
            except LookupError:
                raise ValueError(f"charset {charset[:40]!r} is not one this service reads: send UTF-8") from None
    return "utf-8"


def _urlencoded(body: bytes, charset: str) -> list[tuple[str, str]]:
    """The form's fields, percent-escapes and raw bytes alike decoded in ``charset``;
    text that is not valid in it is refused, not turned into U+FFFD."""
    pairs = []
    for part in body.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        try:
            pairs.append((unquote_to_bytes(name.replace(b"+", b" ")).decode(charset),
                          unquote_to_bytes(value.replace(b"+", b" ")).decode(charset)))
        except UnicodeDecodeError:
            field = unquote_to_bytes(name).decode("ascii", "replace")[:40]
            shown = "UTF-8" if charset == "utf-8" else charset
            raise ValueError(f"{field}: not valid {shown} text (send UTF-8, or name the charset: "
                             "application/x-www-form-urlencoded; charset=GBK)") from None
    return pairs


def _submission(fields: dict[str, str]) -> dict[str, Any]:
    code = fields.get("service_code", "").strip()
    if not code:
        raise ValueError("service_code is required (GET services.json lists them)")
    if not _CODE.fullmatch(code):
        raise ValueError(f"no service {code!r} (GET services.json lists them)")
    lat_text, lon_text = fields.get("lat", "").strip(), fields.get("long", "").strip()
    if not lat_text or not lon_text:
        if fields.get("address_string") or fields.get("address_id"):
            raise ValueError("no position: give lat and long (an address_string alone cannot be placed on the grid)")
        raise ValueError("lat and long are required")
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ValueError("lat and long must be decimal degrees") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError("lat must be in [-90, 90] and long in [-180, 180]")
    attributes = {k: v for k, v in fields.items() if k.startswith("attribute[") and v}
    if attributes:
        raise ValueError(f"service {code} takes no attributes (got {', '.join(sorted(attributes))})")
    description = fields.get("description", "").strip()
    if "\x00" in description or len(description) > MAX_TEXT:
        raise ValueError(f"description: at most {MAX_TEXT} characters, no NUL")
    address = fields.get("address_string", "").strip()
    if address and "\x00" not in address:
        description = f"{description}\n地址: {address[:200]}" if description else f"地址: {address[:200]}"
    media = fields.get("media_url", "").strip()
    if media and (len(media) > 1000 or not media.startswith(("http://", "https://"))):
        raise ValueError("media_url must be an http(s) URL of at most 1000 characters")
    token = fields.get("token", "").strip()
    if token and not _TOKEN.fullmatch(token):
        raise ValueError("token: 1 to 64 letters, digits or . _ : -")
    reporter = {k: fields[k].strip()[:200] for k in _PERSON if fields.get(k, "").strip() and "\x00" not in fields[k]}
    return {"service_code": code, "lat": lat, "lon": lon, "description": description, "media_url": media or None,
            "token": token or None, "reporter": reporter or None}


def _request(r: dict[str, Any]) -> dict[str, Any]:
    finished = r["state"] in ("closed", "rejected")
    return {"service_request_id": str(r["id"]), "status": "closed" if finished else "open",
            "status_notes": r["notes"], "service_name": r["category_name"], "service_code": r["category"],
            "description": r["description"], "agency_responsible": r["department_name"], "service_notice": None,
            "requested_datetime": r["created_at"], "updated_datetime": r["updated_at"],
            "expected_datetime": r["due"], "address": f"单元网格 {r['grid']}" if r.get("grid") else None,
            "address_id": r.get("grid"), "zipcode": None, "lat": r["lat"], "long": r["lon"],
            "media_url": r["media_url"]}


def _request_id(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) == 0:
        raise ValueError(f"a service_request_id is a positive integer, got {text[:40]!r}")
    return int(text)


def _status(text: str | None) -> bool | None:
    if not text:
        return None
    wanted = {part.strip() for part in text.split(",")}
    if not wanted <= {"open", "closed"}:
        raise ValueError("status: open, closed, or both comma-separated")
    return None if len(wanted) == 2 else "closed" in wanted


def _dates(start_text: str | None, end_text: str | None, *, now: datetime) -> tuple[datetime, datetime]:
    start, end = _w3c(start_text, "start_date"), _w3c(end_text, "end_date")
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        try:
            start = end - MAX_RANGE
        except OverflowError:
            raise ValueError("end_date is too early: the 90 days before it run past year 1") from None
    if end is None:
        try:
            end = start + MAX_RANGE
        except OverflowError:
            raise ValueError("start_date is too late: the 90 days after it run past year 9999") from None
    if end <= start:
        raise ValueError("end_date must be after start_date")
    if end - start > MAX_RANGE:
        raise ValueError("start_date to end_date may span at most 90 days")
    return start, end


def _w3c(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        if re.fullmatch(r".+T.+ \d\d:?\d\d", text.strip()):  # "…T00:00:00 08:00": a raw '+' read as a space
            raise ValueError(f"{name} must be a W3C datetime: its offset's '+' came as a space "
                             "(send it as %2B in a query string, or use Z)") from None
        raise ValueError(f"{name} must be a W3C datetime such as 2026-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} needs its offset (Z or +08:00)")
    return value


def _now(request: Request) -> datetime:
    # a moment ahead: a request posted in the same millisecond is in "the last 90 days"
    return ms_to_datetime(context(request).clock_ms()) + timedelta(seconds=1)
