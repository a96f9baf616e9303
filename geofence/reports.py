"""Coverage reports for one local day: per collector and slot, per unit grid, per
community and street, and coverage over the day. Pure: fed the plan and the day's fixes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, time, timedelta

from geofence.coverage import CoverageState
from geofence.placed import Placed
from geofence.plan import PatrolPlan
from geofence.schedule import Slot
from geofence.territory import CoverageRule, CoverageRules

STEP_MS = 15 * 60_000
# The periods the service observed, as epoch ms [start, end): a time outside them has no data.
Periods = Sequence[tuple[int, int]]
ALWAYS: Periods = ((-(2**62), 2**62),)


def observed(periods: Periods, start_ms: int, end_ms: int) -> bool:
    """Whether any of ``periods`` overlaps [start_ms, end_ms]."""
    return any(s <= end_ms and e > start_ms for s, e in periods)


def slot_figure(state: CoverageState, slot: Slot, rule: CoverageRule, as_of_ms: int, periods: Periods) -> dict:
    """A slot's coverage as of ``as_of_ms``: the one computation behind every coverage
    figure (live API, day report, CLI, the map's chart and legend). A slot the service
    did not observe at all is "no_data", never 0% nor complete; one not begun is
    "scheduled"."""
    if as_of_ms <= slot.start_ms:
        return {"status": "scheduled", "grids_total": None, "grids_covered": None, "share": None, "complete": False}
    as_of = min(as_of_ms, slot.end_ms)
    cov = state.slot_coverage(slot, rule, as_of)
    if not observed(periods, slot.start_ms, as_of):
        return {"status": "no_data", "grids_total": len(cov.grids), "grids_covered": None, "share": None, "complete": False}
    final = as_of_ms >= slot.end_ms
    covered = sum(1 for g in cov.grids if not g.shortfalls(rule, final=final))
    return {"status": "complete" if final else "in_progress", "grids_total": len(cov.grids), "grids_covered": covered,
            "share": round(covered / len(cov.grids), 3) if cov.grids else 1.0, "complete": final}


def coverage_summary(figures: Iterable[dict]) -> dict:
    """Grids covered over grids scheduled, of the slots with data that have begun; slots
    without data are counted apart and excluded from the rate."""
    total = covered = slots = no_data = 0
    for f in figures:
        if f["status"] == "no_data":
            no_data += 1
        elif f["status"] in ("complete", "in_progress"):
            slots += 1
            total += f["grids_total"]
            covered += f["grids_covered"]
    return {"share": round(covered / total, 3) if total else None, "grids_total": total, "grids_covered": covered,
            "slots": slots, "slots_no_data": no_data, "status": "ok" if slots else ("no_data" if no_data else "none")}


def day_bounds(plan: PatrolPlan, day: date) -> tuple[int, int]:
    """Epoch ms of local midnight to midnight, widened to slots that cross either end."""
    schedule = plan.schedule()
    start = schedule.to_ms(day, time(0, 0))
    end = schedule.to_ms(day + timedelta(days=1), time(0, 0))
    for slot in schedule.slots_on(day):
        end = max(end, slot.end_ms)
    return start, end


def coverage_report(plan: PatrolPlan, cover: dict[int, str], rules: CoverageRules, fixes: Iterable[Placed], day: date,
                    now_ms: int, district: str | None = None, periods: Periods = ALWAYS) -> dict:
    """The day's coverage; ``district``: its grids only (the plan given is the district's
    part already, see ``PatrolPlan.scoped``); ``periods``: when the service observed."""
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
        figure = slot_figure(state, slot, rule, now_ms, periods)
        cov = state.slot_coverage(slot, rule, min(now_ms, slot.end_ms))
        finished[slot.id] = (slot, rule)
        collectors.append({
            "collector": slot.collector, "slot_id": slot.id, "area": slot.area, "start": slot.start_ms, "end": slot.end_ms,
            **figure, "passes": sum(g.passes for g in cov.grids), "inside_min": round(cov.inside_min, 1), "fixes": cov.fixes,
        })
        if figure["status"] not in ("complete", "in_progress"):
            continue
        for g in cov.grids:
            row = per_grid[g.grid]
            row["slots"] += 1
            row["covered"] += 0 if g.shortfalls(rule, final=figure["complete"]) else 1
            row["passes"] += g.passes
            row["visits"] += g.visits
    codes = sorted(set(cover.values()))
    if district is not None:
        codes = [code for code in codes if code.startswith(district)]
    grids = [{"grid": code, "last_visit": last_visit.get(code), **per_grid[code]} for code in codes]
    communities = _rollup(grids, 12)
    streets = _rollup(grids, 9)
    return {"date": day.isoformat(), "summary": coverage_summary(collectors), "collectors": collectors, "grids": grids,
            "communities": communities, "streets": streets,
            "timeline": _timeline(state, list(finished.values()), day_bounds(plan, day), now_ms, periods)}


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


def _timeline(state: CoverageState, slots: list, bounds: tuple[int, int], now_ms: int, periods: Periods) -> list[dict]:
    """The day's coverage figure (``coverage_summary``) as it stood every 15 minutes; a
    time when the slots begun had no data is a "no_data" point (share None)."""
    start, end = bounds
    points = []
    t = start + STEP_MS
    while t <= min(end, now_ms + STEP_MS):
        as_of = min(t, now_ms)
        summary = coverage_summary(slot_figure(state, slot, rule, as_of, periods) for slot, rule in slots)
        if summary["status"] != "none":
            points.append({"t": t, "share": summary["share"], "status": summary["status"]})
        t += STEP_MS
    return points
