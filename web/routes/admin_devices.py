"""The device registry, for administrators: list, register, disable, enable, rotate.

Each change is written to the audit trail (without the password). A device's MQTT
password is in the answer to its registration or rotation, once: it is kept nowhere.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from protocols.model import DEVICE_ID
from web.audit import audited
from web.context import Conflict, DeviceAdmin, context
from web.params import accepts, error, json_body

_FIELDS = {"id", "class", "district", "name", "person", "plate", "phone", "terminal_id", "component"}
_REQUIRED = ("id", "class", "district")


def _admin(request: Request) -> DeviceAdmin | None:
    return context(request).devices_admin


def _unknown(device: str) -> Response:
    return error(404, f"unknown device {device!r}: not registered")


@accepts()
async def devices_list(request: Request) -> Response:
    admin = _admin(request)
    if admin is None:
        return error(404, "this service has no device registry")
    return JSONResponse({"devices": await admin.devices()})


@accepts()
async def devices_add(request: Request) -> Response:
    admin = _admin(request)
    if admin is None:
        return error(404, "this service has no device registry")
    body = await json_body(request)
    if not isinstance(body, dict):
        return error(422, "body: a device is a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        return error(422, f"body: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(_FIELDS))}")
    missing = [key for key in _REQUIRED if not body.get(key)]
    if missing:
        return error(422, f"body: missing field(s) {', '.join(missing)}")
    if not all(value is None or isinstance(value, str) for value in body.values()):
        return error(422, "body: every field is a string")
    fields: dict[str, Any] = {key: value for key, value in body.items() if value is not None}
    try:
        device, password = await admin.add(fields)
    except ValueError as exc:
        return error(422, f"body: {exc}")
    except Conflict as exc:
        await audited(request, "device.add", str(fields["id"]), outcome="refused", detail=str(exc))
        return error(409, str(exc))
    await audited(request, "device.add", device["id"], after=device)
    return JSONResponse({"device": device, "mqtt": {"username": device["id"], "password": password}}, status_code=201)


async def _enabled(request: Request, enabled: bool) -> Response:
    admin = _admin(request)
    if admin is None:
        return error(404, "this service has no device registry")
    device = request.path_params["device"]
    if not DEVICE_ID.fullmatch(device):
        return _unknown(device)
    try:
        before, after = await admin.set_enabled(device, enabled)
    except LookupError:
        return _unknown(device)
    await audited(request, "device.enable" if enabled else "device.disable", device, before=before, after=after)
    return JSONResponse({"device": after})


@accepts()
async def device_disable(request: Request) -> Response:
    return await _enabled(request, False)


@accepts()
async def device_enable(request: Request) -> Response:
    return await _enabled(request, True)


@accepts()
async def device_rotate(request: Request) -> Response:
    admin = _admin(request)
    if admin is None:
        return error(404, "this service has no device registry")
    device = request.path_params["device"]
    if not DEVICE_ID.fullmatch(device):
        return _unknown(device)
    try:
        known, password = await admin.rotate(device)
    except LookupError:
        return _unknown(device)
    await audited(request, "device.rotate", device, detail="MQTT password replaced")
    return JSONResponse({"device": known, "mqtt": {"username": device, "password": password}})
