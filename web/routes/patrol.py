"""Patrol coverage: the plan and its exceptions, and live coverage. All answer 404 while
patrol coverage is switched off.

Scoped by district (see ``geofence.plan``): a district account sees its areas, the shifts
in them, its own exceptions and the city-wide ones, and live coverage of its grids and
slots. It may add exceptions that name only its own collectors and areas; replacing the
whole plan, and the city-wide exceptions (holidays, make-up days), are for city accounts.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from geofence.plan import PlanError
from web.audit import audited
from web.context import PatrolEngine, context
from web.params import accepts, error, json_body
from web.principal import principal


def patrol_engine(request: Request) -> PatrolEngine:
    patrol = context(request).patrol
    if patrol is None:
        raise HTTPException(404, "patrol coverage is switched off ([patrol] enabled)")
    return patrol


@accepts()
async def coverage_live(request: Request) -> Response:
    """Last visit of every grid and the progress of the slots in progress."""
    return JSONResponse(patrol_engine(request).live(principal(request).district))


@accepts()
async def plan_get(request: Request) -> Response:
    district = principal(request).district
    patrol = patrol_engine(request)
    if patrol.plan is None:
        return error(404, "no patrol plan has been loaded")
    return JSONResponse({"version": patrol.plan_version, "plan": patrol.plan.scoped(district).to_dict()})


@accepts()
async def plan_put(request: Request) -> Response:
    """Replace the whole plan; 422 names what is wrong with it ("body: ...")."""
    who = principal(request)
    patrol = patrol_engine(request)
    if who.district is not None:
        return error(403, "only a city account replaces the whole patrol plan; add exceptions with POST /api/patrol/exceptions")
    doc = await json_body(request)
    if not isinstance(doc, dict):
        return error(422, "a patrol plan is a JSON object")
    before = patrol.plan_version if patrol.plan is not None else None
    try:
        version = await patrol.replace_plan(doc, note="PUT /api/patrol/plan")
    except PlanError as exc:
        await audited(request, "plan.replace", "patrol plan", before={"version": before}, outcome="refused", detail=str(exc))
        return error(422, f"body: {exc}")
    await audited(request, "plan.replace", "patrol plan", before={"version": before}, after={"version": version})
    return JSONResponse({"version": version}, status_code=200)


@accepts()
async def plan_exception(request: Request) -> Response:
    """Add one exception (holiday, leave, swap, ...) to the plan in effect."""
    who = principal(request)
    patrol = patrol_engine(request)
    if patrol.plan is None:
        return error(404, "no patrol plan has been loaded")
    item = await json_body(request)
    if not isinstance(item, dict):
        return error(422, "a plan exception is a JSON object")
    before = patrol.plan_version
    plan = patrol.plan
    if who.district is not None and not plan.owned_by(item, who.district):
        # asked before the exception is validated: another district's collector or area
        # gets the same answer as one that does not exist
        await audited(request, "plan.exception", "patrol plan", before={"version": before}, after={"exception": item},
                      outcome="refused", detail=f"outside district {who.district}")
        return error(403, f"a district account adds exceptions only for collectors and areas of district {who.district}; "
                          "holidays, make-up days and the rest are for city accounts")
    try:
        version = await patrol.replace_plan(plan.with_exception(item).to_dict(), note=f"exception {item.get('type')}")
    except PlanError as exc:
        await audited(request, "plan.exception", "patrol plan", before={"version": before}, after={"exception": item},
                      outcome="refused", detail=str(exc))
        return error(422, f"body: {exc}")
    await audited(request, "plan.exception", "patrol plan", before={"version": before},
                  after={"version": version, "exception": item})
    return JSONResponse({"version": version}, status_code=201)
