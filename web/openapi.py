"""The OpenAPI 3 description of the case API, built from a small declaration next to it.

Written by hand rather than generated, to say what the routes mean (who may call them,
what a refusal says); ``tests/web/test_openapi.py`` holds it true to ``web.app.ROUTES``:
every case, taxonomy and department route is described, and nothing that is not a route.
"""

from __future__ import annotations

from typing import Any

from alerts.cases.lifecycle import Action, CaseState

_ERROR = {"description": "refused", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ERRORS = {str(code): {**_ERROR, "description": why} for code, why in (
    (400, "bad input: the message says which"), (401, "no valid session or token"),
    (403, "the caller's role or district may not"), (404, "no such case, or not in the caller's district"))}
_CASE_ID = {"name": "case_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


# (method, path, summary, who may call, parameters, request body schema or None, answer schema)
DECLARED: list[tuple[str, str, str, str, list[dict[str, Any]], dict[str, Any] | None, str]] = [
    ("get", "/api/cases", "Cases in the caller's district, newest first", "viewer and up", [
        _query("state", {"type": "string", "enum": [s.value for s in CaseState]}, "only cases in this state"),
        _query("category", {"type": "string"}, "a category code, e.g. E0102"),
        _query("street", {"type": "string"}, "a 9-digit street code"),
        _query("district", {"type": "string"}, "a 6-digit district code (city accounts)"),
        _query("source", {"type": "string", "enum": ["sensor", "vehicle", "handset", "hotline", "dispatcher"]}, ""),
        _query("urgent", {"type": "boolean"}, "only urgent (true) or only ordinary (false) cases"),
        _query("overdue", {"type": "boolean"}, "true: only cases whose running stage is past due now"),
        _query("escalated", {"type": "boolean"}, "true: only cases gone up to the city, unacknowledged in time"),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "cases per page"),
        _query("cursor", {"type": "string"}, "next_cursor of the page before")], None, "CasePage"),
    ("post", "/api/cases", "A dispatcher opens a case (source: dispatcher)", "commander, supervisor", [],
     {"$ref": "#/components/schemas/NewCase"}, "Case"),
    ("get", "/api/cases/summary", "Case counts for the big screen, of the caller's district", "viewer and up", [], None,
     "CaseFigures"),
    ("get", "/api/cases/{case_id}", "A case with its stage deadline (working time) and the caller's actions",
     "viewer and up", [_CASE_ID], None, "Case"),
    ("get", "/api/cases/{case_id}/timeline", "Every step of a case: who, role, scope, when, what", "viewer and up",
     [_CASE_ID], None, "Timeline"),
    ("get", "/api/cases/{case_id}/candidates", "The nearest collectors on duty to send to verify the case on site",
     "commander, supervisor, admin", [_CASE_ID, _query("k", {"type": "integer", "minimum": 1, "maximum": 20, "default": 3},
                                                        "how many to propose")], None, "Candidates"),
    ("post", "/api/cases/{case_id}/actions/{action}", "Take a lifecycle action (409: not allowed from the state)",
     "commander, supervisor; department members; the collector sent to verify",
     [_CASE_ID, {"name": "action", "in": "path", "required": True, "schema": {"type": "string", "enum": list(Action)}}],
     {"$ref": "#/components/schemas/ActionFields"}, "Case"),
    ("get", "/api/taxonomy", "The current taxonomy: categories, departments, version", "viewer and up", [], None,
     "Taxonomy"),
    ("put", "/api/taxonomy", "Load a taxonomy file (TOML text): a new version", "city admin", [],
     {"type": "string", "description": "the TOML file's text"}, "Taxonomy"),
    ("get", "/api/departments", "Departments with their members", "viewer and up", [], None, "Departments"),
    ("put", "/api/departments/{department}/members/{account}", "Make an account a member of a department",
     "city admin", [{"name": "department", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "account", "in": "path", "required": True, "schema": {"type": "string"}}], None, "Member"),
    ("delete", "/api/departments/{department}/members/{account}", "Remove a department's member", "city admin",
     [{"name": "department", "in": "path", "required": True, "schema": {"type": "string"}},
      {"name": "account", "in": "path", "required": True, "schema": {"type": "string"}}], None, "Member"),
    ("get", "/api/openapi.json", "This description", "any signed-in account", [], None, "OpenAPI"),
]

_OBJ: dict[str, Any] = {"type": "object"}
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Stage": {"type": "object", "properties": {
        "name": {"type": "string", "enum": ["file", "dispatch", "handle", "verify", "close"]},
        "started": {"type": "string", "format": "date-time"}, "due": {"type": "string", "format": "date-time"},
        "warn_at": {"type": "string", "format": "date-time"},
        "standing": {"type": "string", "enum": ["on_time", "warning", "overdue", "parked"]},
        "remaining_s": {"type": "number", "nullable": True, "description": "on the stage's clock (working time)"},
        "natural_clock": {"type": "boolean"}, "provisional": {"type": "boolean"}}},
    "Case": {"type": "object", "properties": {
        "id": {"type": "integer"}, "state": {"type": "string", "enum": [s.value for s in CaseState]},
        "source": {"type": "string"}, "category": {"type": "string"}, "taxonomy_version": {"type": "integer"},
        "urgent": {"type": "boolean"}, "description": {"type": "string"}, "lat": {"type": "number", "nullable": True},
        "lon": {"type": "number", "nullable": True}, "grid": {"type": "string", "nullable": True},
        "street": {"type": "string", "nullable": True}, "district": {"type": "string", "nullable": True},
        "department": {"type": "string", "nullable": True}, "escalated": {"type": "boolean"},
        "stage": {"allOf": [{"$ref": "#/components/schemas/Stage"}], "nullable": True},
        "actions": {"type": "array", "items": {"type": "string"}, "description": "detail only: what the caller may do"}}},
    "CasePage": {"type": "object", "properties": {
        "cases": {"type": "array", "items": {"$ref": "#/components/schemas/Case"}},
        "next_cursor": {"type": "string", "nullable": True}}},
    "NewCase": {"type": "object", "required": ["category"], "properties": {
        "category": {"type": "string"}, "description": {"type": "string"}, "lat": {"type": "number"},
        "lon": {"type": "number"}, "urgent": {"type": "boolean"}}},
    "ActionFields": {"type": "object", "properties": {
        "reason": {"type": "string"}, "department": {"type": "string"}, "feedback": {"type": "string"},
        "photos": {"type": "array", "items": {"type": "string"}}, "collector": {"type": "string"},
        "hours": {"type": "number"}, "grade": {"type": "string", "enum": ["satisfied", "acceptable", "unsatisfied"]},
        "note": {"type": "string"}}},
    "Timeline": {"type": "object", "properties": {"timeline": {"type": "array", "items": {"type": "object", "properties": {
        "at": {"type": "string", "format": "date-time"}, "actor": {"type": "string"}, "role": {"type": "string"},
        "scope": {"type": "string"}, "action": {"type": "string"}, "state": {"type": "string"},
        "note": {"type": "string"}, "fields": _OBJ}}}}},
    "CaseFigures": {"type": "object", "properties": {
        name: {"type": "integer"} for name in ("open", "overdue", "due_soon", "reported_today", "closed_today")}},
    "Candidates": {"type": "object", "properties": {
        "case": {"type": "integer"}, "plan": {"type": "boolean", "description": "false: no patrol plan, all count as on duty"},
        "candidates": {"type": "array", "items": {"type": "object", "properties": {
            "device": {"type": "string"}, "name": {"type": "string", "description": "the registry's name, else the id"},
            "lat": {"type": "number"}, "lon": {"type": "number"}, "distance_m": {"type": "number"},
            "t": {"type": "integer", "description": "epoch ms of the collector's position"},
            "in_grid": {"type": "boolean", "description": "the case lies in the collector's responsibility area"},
            "area": {"type": "string", "nullable": True}}}}}},
    "Taxonomy": _OBJ, "Departments": _OBJ, "Member": _OBJ, "OpenAPI": _OBJ,
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, who, parameters, body, answer in DECLARED:
        operation: dict[str, Any] = {"summary": summary, "description": f"Who: {who}.", "parameters": parameters,
                                     "responses": {"200": {"description": "ok", "content": _json(answer)}, **_ERRORS}}
        if method == "post" and path.endswith("/actions/{action}"):
            operation["responses"]["409"] = {**_ERROR, "description": "the lifecycle does not allow it from the state"}
        if body is not None:
            kind = "text/plain" if body.get("type") == "string" else "application/json"
            operation["requestBody"] = {"required": path != "/api/cases/{case_id}/actions/{action}",
                                        "content": {kind: {"schema": body}}}
        paths.setdefault(path, {})[method] = operation
    return {"openapi": "3.0.3",
            "info": {"title": "Gridwatch cases", "version": "1",
                     "description": "Cases (案卷): filed, dispatched, handled, verified on site and closed in working "
                                    "time. Authenticate with a session cookie (and X-CSRF-Token) or a bearer token."},
            "components": {"schemas": SCHEMAS,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}], "paths": paths}
