"""The OpenAPI description is true to the routes: every case, taxonomy and department
route of the application is in it with its method, and it names nothing that is not a
route (tests/web/test_policy.py: it is served to any signed-in account)."""

from __future__ import annotations

from starlette.routing import Route

from web.app import ROUTES
from web.openapi import document

DESCRIBED = ("/api/cases", "/api/taxonomy", "/api/departments", "/api/openapi.json")


def routes_described() -> set[tuple[str, str]]:
    return {(method.lower(), route.path) for route in ROUTES if isinstance(route, Route)
            and route.path.startswith(DESCRIBED) for method in (route.methods or {"GET"}) - {"HEAD"}}


def test_every_case_route_is_described_and_nothing_else():
    doc = document()
    described = {(method, path) for path, operations in doc["paths"].items() for method in operations}
    assert routes_described() == described
    assert ("post", "/api/cases/{case_id}/actions/{action}") in described
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert names == set(part[1:-1] for part in path.split("/") if part.startswith("{")), (method, path)
            assert "403" in operation["responses"] and operation["summary"]


def test_the_actions_path_lists_every_lifecycle_action_and_its_409():
    from alerts.cases.lifecycle import Action

    operation = document()["paths"]["/api/cases/{case_id}/actions/{action}"]["post"]
    (action,) = [p for p in operation["parameters"] if p["name"] == "action"]
    assert set(action["schema"]["enum"]) == {a.value for a in Action}
    assert "409" in operation["responses"]
