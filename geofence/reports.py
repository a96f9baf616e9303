"""Coverage reports for one local day: per collector and slot, per unit grid, per
community and street, and coverage over the day. Pure: fed the plan and the day's fixes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, time, timedelta

from geofence.coverage import CoverageState
from geofence.placed import Placed
from geofence.plan import PatrolPlan
from geofence.territory import CoverageRules

STEP_MS = 15 * 60_000


def day_bounds(plan: PatrolPlan, day: date) -> tuple[int, int]:
    """Epoch ms of local midnight to midnight, widened to slots that cross either end."""
    schedule = plan.schedule()
    start = schedule.to_ms(day, time(0, 0))
    end = schedule.to_ms(day + timedelta(days=1), time(0, 0))
    for slot in schedule.slots_on(day):
        end = max(end, slot.end_ms)
    return start, end


def coverage_report(plan: PatrolPlan, cover: dict[int, str], rules: CoverageRules, fixes: Iterable[Placed], day: date,
                    now_ms: int, district: str | None = None) -> dict:
    """The day's coverage; ``district``: its grids only (the plan given is the district's
    part already, see ``PatrolPlan.scoped``)."""
    schedule = plan.schedule()
    state = CoverageState(schedule, plan.territory(cover))
    last_visit: dict[str, int] = {}
    for p in fixes:
        state.observe(p)
        if p.grid is not None and p.fix.t_ms > last_visit.get(p.grid, 0):
            last_visit[p.grid] = p.fix.t_ms
    slots = schedule.slots_on(day)
    collectors: list[dict] = []
    per_grid: defaultdict[str, dict[str, int]] = defaultdict(lambda: {"slots": 0, "covered": 0, "passes": 0, "visits": 0})
    finished = {}
    for slot in slots:
        rule = rules.for_area(slot.area)
        as_of = min(now_ms, slot.end_ms)
        cov = state.slot_coverage(slot, rule, as_of)
        finished[slot.id] = (slot, rule)
        covered = [g for g in cov.grids if not g.shortfalls(rule)]
        collectors.append({
            "collector": slot.collector, "slot_id": slot.id, "area": slot.area, "start": slot.start_ms, "end": slot.end_ms,
            "grids_total": len(cov.grids), "grids_covered": len(covered),
            "share": round(len(covered) / len(cov.grids), 3) if cov.grids else 1.0,
            "passes": sum(g.passes for g in cov.grids), "inside_min": round(cov.inside_min, 1), "fixes": cov.fixes,
            "complete": now_ms >= slot.end_ms,
        })
        for g in cov.grids:
            row = per_grid[g.grid]
            row["slots"] += 1
            row["covered"] += 0 if g.shortfalls(rule) else 1
            row["passes"] += g.passes
            row["visits"] += g.visits
    codes = sorted(set(cover.values()))
    if district is not None:
        codes = [code for code in codes if code.startswith(district)]
    grids = [{"grid": code, "last_visit": last_visit.get(code), **per_grid[code]} for code in codes]
    communities = _rollup(grids, 12)
    streets = _rollup(grids, 9)
    return {"date": day.isoformat(), "collectors": collectors, "grids": grids, "communities": communities, "streets": streets,
            "timeline": _timeline(state, list(finished.values()), day_bounds(plan, day), now_ms)}


def _rollup(grids: list[dict], width: int) -> list[dict]:
    groups: dict[str, dict] = {}
    for g in grids:
        row = groups.setdefault(g["grid"][:width], {"code": g["grid"][:width], "grids": 0, "scheduled": 0, "covered": 0, "last_visit": None})
        row["grids"] += 1
        row["scheduled"] += g["slots"]
        row["covered"] += g["covered"]
        if g["last_visit"] is not None and (row["last_visit"] is None or g["last_visit"] > row["last_visit"]):
            row["last_visit"] = g["last_visit"]
    for row in groups.values():
        row["share"] = round(row["covered"] / row["scheduled"], 3) if row["scheduled"] else None
    return sorted(groups.values(), key=lambda r: r["code"])


def _timeline(state: CoverageState, slots: list, bounds: tuple[int, int], now_ms: int) -> list[dict]:
    """Share of the grids of slots begun by t that were covered by t, every 15 minutes."""
    start, end = bounds
    points = []
    t = start + STEP_MS
    while t <= min(end, now_ms + STEP_MS):
        total = covered = 0
        for slot, rule in slots:
            if slot.start_ms >= t:
                continue
            cov = state.slot_coverage(slot, rule, min(t, slot.end_ms))
            total += len(cov.grids)
            covered += sum(1 for g in cov.grids if not g.shortfalls(rule, final=False))
        if total:
            points.append({"t": t, "share": round(covered / total, 3)})
        t += STEP_MS
    return points
