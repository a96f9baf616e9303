"""The patrol plan: responsibility grids, who patrols them when, and the exceptions.

One document, read from and written to JSON by the CLI and the API, stored in PostgreSQL
(table ``patrol_plan``, one version per change), turned here into the ``Schedule`` and
``Territory`` the coverage engine works on::

    {"zone": "Asia/Shanghai",
     "areas": {"620105001001": {"name": "培黎第1社区", "grids": ["620105001001001", ...]}},
     "shifts": [{"collector": "c0001", "area": "620105001001", "days": "Mon-Fri",
                 "start": "08:00", "end": "10:00", "valid_from": null, "valid_until": null}],
     "exceptions": [{"type": "holiday", "day": "2026-10-01", "name": "国庆节"},
                    {"type": "leave", "collector": "c0003", "day": "2026-11-24"},
                    {"type": "swap", "day": "2026-11-25", "giver": "c0001", "taker": "c0002"},
                    {"type": "reassign", "collector": "c0004", "day": "2026-11-25", "area": "..."},
                    {"type": "extra", "collector": "c0005", "area": "...", "day": "...", "start": "19:00", "end": "21:00"},
                    {"type": "makeup", "day": "2026-09-28", "follows": 0}],
     "rules": {"areas": {"620105001001": {"passes_required": 2}}}}

The city-wide default rule comes from ``[patrol]`` in config.toml; ``rules.areas`` holds
per-area exceptions. Collectors are identified by their handset's device id.

Districts: a responsibility area lies in one district (its grids' codes all begin with the
same 6-digit district code; a plan that mixes them is refused). A collector is a district's
when every shift of theirs is in its areas. An exception is a district's when everything
it names (collectors, areas) is; a holiday or a make-up day names nothing and applies to
the whole city. ``scoped(district)`` is the part of the plan a district account sees;
``owned_by(item, district)`` decides whether it may add an exception. Only city accounts
replace the whole plan or add the city-wide exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from geofence.schedule import ExtraDuty, Holiday, Leave, MakeupDay, Reassignment, Schedule, Shift, Swap
from geofence.territory import CoverageRule, CoverageRules, Territory

GRID = re.compile(r"^\d{15}$")
_EXCEPTIONS = {"holiday", "makeup", "leave", "swap", "reassign", "extra"}
_CITY_WIDE = {"holiday", "makeup"}  # exceptions that name no collector or area
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class PlanError(ValueError):
    """The plan document is not usable; the message says where."""


@dataclass(frozen=True, slots=True)
class PatrolPlan:
    zone: str = "Asia/Shanghai"
    areas: Mapping[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # area → (name, grids)
    shifts: tuple[Shift, ...] = ()
    exceptions: tuple[Any, ...] = ()
    area_rules: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    # --- districts --------------------------------------------------------------------

    def area_district(self, area: str) -> str | None:
        """The district an area lies in (None for an area the plan does not hold)."""
        found = self.areas.get(area)
        return found[1][0][:6] if found else None

    def district_areas(self, district: str) -> set[str]:
        return {area for area in self.areas if self.area_district(area) == district}

    def district_collectors(self, district: str) -> set[str]:
        """Collectors every shift of whom is in ``district``."""
        districts: dict[str, set[str | None]] = {}
        for s in self.shifts:
            districts.setdefault(s.collector, set()).add(self.area_district(s.area))
        return {who for who, found in districts.items() if found == {district}}

    def owned_by(self, item: Mapping[str, Any], district: str) -> bool:
        """Whether an exception (as a plan document holds it) names only collectors and
        areas of ``district``, and at least one of them: city-wide ones (holidays,
        make-up days) are no district's."""
        collectors = [item[k] for k in ("collector", "giver", "taker") if isinstance(item.get(k), str)]
        areas = [item["area"]] if isinstance(item.get("area"), str) else []
        if not collectors and not areas:
            return False
        mine = self.district_collectors(district)
        return all(c in mine for c in collectors) and all(self.area_district(a) == district for a in areas)

    def scoped(self, district: str | None) -> PatrolPlan:
        """The part of the plan ``district`` sees (None: all of it): its areas, the shifts
        in them, the exceptions that are its own or the whole city's, its areas' rules."""
        if district is None:
            return self
        doc = self.to_dict()
        areas = self.district_areas(district)
        doc["areas"] = {a: body for a, body in doc["areas"].items() if a in areas}
        doc["shifts"] = [s for s in doc["shifts"] if s["area"] in areas]
        doc["exceptions"] = [e for e in doc["exceptions"] if e["type"] in _CITY_WIDE or self.owned_by(e, district)]
        doc["rules"] = {"areas": {a: r for a, r in doc["rules"]["areas"].items() if a in areas}}
        return PatrolPlan.from_dict(doc)

    def schedule(self) -> Schedule:
        return Schedule(self.shifts, self.exceptions, self.zone)

    def territory(self, cover: Mapping[int, str]) -> Territory:
        known = set(cover.values())
        areas = {}
        for area, (_name, grids) in self.areas.items():
            missing = [g for g in grids if g not in known]
            if missing:
                raise PlanError(f"area {area}: unit grid(s) not imported: {', '.join(missing[:5])}")
            areas[area] = grids
        return Territory.from_cover(cover, areas)

    def rules(self, default: CoverageRule) -> CoverageRules:
        try:
            return CoverageRules(default, {a: CoverageRule.from_dict(r, default) for a, r in self.area_rules.items()})
        except (TypeError, ValueError) as exc:
            raise PlanError(f"rules: {exc}") from None

    # --- JSON ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> PatrolPlan:
        if not isinstance(doc, Mapping):
            raise PlanError("a patrol plan is a JSON object")
        unknown = set(doc) - {"zone", "areas", "shifts", "exceptions", "rules"}
        if unknown:
            raise PlanError(f"unknown keys {sorted(unknown)}")
        areas = {}
        for area, body in _mapping(doc.get("areas", {}), "areas").items():
            body = _mapping(body, f"areas.{area}")
            grids = body.get("grids")
            if not isinstance(grids, list) or not grids or not all(isinstance(g, str) and GRID.match(g) for g in grids):
                raise PlanError(f"areas.{area}.grids must be a non-empty list of 15-digit grid codes")
            if len({g[:6] for g in grids}) > 1:
                raise PlanError(f"areas.{area}.grids: an area lies in one district, got grids of {sorted({g[:6] for g in grids})}")
            areas[str(area)] = (str(body.get("name") or area), tuple(grids))
        shifts = []
        for n, s in enumerate(_list(doc.get("shifts", []), "shifts")):
            where = f"shifts[{n}]"
            s = _mapping(s, where)
            area = _str(s, "area", where)
            if area not in areas:
                raise PlanError(f"{where}: unknown area {area!r}")
            shifts.append(_build(Shift, where, _str(s, "collector", where), area, s.get("days", "Mon-Sun"),
                                 _time(s, "start", where), _time(s, "end", where),
                                 _date(s, "valid_from", where, optional=True), _date(s, "valid_until", where, optional=True)))
        exceptions = [_exception(e, f"exceptions[{n}]", areas) for n, e in enumerate(_list(doc.get("exceptions", []), "exceptions"))]
        rules = _mapping(doc.get("rules", {}), "rules")
        if set(rules) - {"areas"}:
            raise PlanError("rules: only 'areas' (per-area exceptions) belongs here; the city default is [patrol] in config.toml")
        area_rules = {str(k): dict(_mapping(v, f"rules.areas.{k}")) for k, v in _mapping(rules.get("areas", {}), "rules.areas").items()}
        plan = cls(str(doc.get("zone", "Asia/Shanghai")), areas, tuple(shifts), tuple(exceptions), area_rules)
        try:
            plan.schedule()
            plan.rules(CoverageRule())
        except (ValueError, KeyError) as exc:
            raise PlanError(str(exc)) from None
        return plan

    def to_dict(self) -> dict[str, Any]:
        def hhmm(t: time | None) -> str | None:
            return None if t is None else t.strftime("%H:%M")

        def days(d: frozenset[int] | str) -> str:
            assert not isinstance(d, str)  # Shift turns a spec such as "Mon-Fri" into weekday numbers
            return ",".join(_DAYS[i] for i in sorted(d))

        out_exceptions: list[dict[str, Any]] = []
        for e in self.exceptions:
            if isinstance(e, Holiday):
                out_exceptions.append({"type": "holiday", "day": e.day.isoformat(), "name": e.name})
            elif isinstance(e, MakeupDay):
                out_exceptions.append({"type": "makeup", "day": e.day.isoformat(), "follows": e.follows})
            elif isinstance(e, Leave):
                out_exceptions.append({"type": "leave", "collector": e.collector, "day": e.day.isoformat(), "start": hhmm(e.start)})
            elif isinstance(e, Swap):
                out_exceptions.append({"type": "swap", "day": e.day.isoformat(), "giver": e.giver, "taker": e.taker, "start": hhmm(e.start)})
            elif isinstance(e, Reassignment):
                out_exceptions.append({"type": "reassign", "collector": e.collector, "day": e.day.isoformat(), "area": e.area,
                                       "start": hhmm(e.start)})
            elif isinstance(e, ExtraDuty):
                out_exceptions.append({"type": "extra", "collector": e.collector, "area": e.area, "day": e.day.isoformat(),
                                       "start": hhmm(e.start), "end": hhmm(e.end)})
        return {
            "zone": self.zone,
            "areas": {a: {"name": name, "grids": list(grids)} for a, (name, grids) in self.areas.items()},
            "shifts": [{"collector": s.collector, "area": s.area, "days": days(s.days), "start": hhmm(s.start), "end": hhmm(s.end),
                        "valid_from": s.valid_from.isoformat() if s.valid_from else None,
                        "valid_until": s.valid_until.isoformat() if s.valid_until else None} for s in self.shifts],
            "exceptions": out_exceptions,
            "rules": {"areas": {a: dict(r) for a, r in self.area_rules.items()}},
        }

    def with_exception(self, item: Mapping[str, Any]) -> PatrolPlan:
        """The plan with one more exception. The collectors it names must have a shift in
        the plan: an exception for nobody would be kept, versioned and never apply."""
        known = {s.collector for s in self.shifts}
        for key in ("collector", "giver", "taker"):
            who = item.get(key)
            if isinstance(who, str) and who not in known:
                raise PlanError(f"exception.{key}: unknown collector {who!r}: no shift of the plan names them")
        doc = self.to_dict()
        doc["exceptions"].append(dict(item))
        return PatrolPlan.from_dict(doc)


def _exception(e: Any, where: str, areas: Mapping) -> Any:
    e = _mapping(e, where)
    kind = e.get("type")
    if kind not in _EXCEPTIONS:
        raise PlanError(f"{where}.type must be one of {sorted(_EXCEPTIONS)}, got {kind!r}")
    day = _date(e, "day", where)
    if kind == "holiday":
        return _build(Holiday, where, day, str(e.get("name", "")))
    if kind == "makeup":
        follows = e.get("follows")
        if not isinstance(follows, int) or not 0 <= follows <= 6:
            raise PlanError(f"{where}.follows must be a weekday number 0 (Mon) to 6 (Sun)")
        return _build(MakeupDay, where, day, follows)
    start = _time(e, "start", where, optional=True)
    if kind == "leave":
        return _build(Leave, where, _str(e, "collector", where), day, start)
    if kind == "swap":
        return _build(Swap, where, day, _str(e, "giver", where), _str(e, "taker", where), start)
    area = _str(e, "area", where)
    if area not in areas:
        raise PlanError(f"{where}: unknown area {area!r}")
    if kind == "reassign":
        return _build(Reassignment, where, _str(e, "collector", where), day, area, start)
    return _build(ExtraDuty, where, _str(e, "collector", where), area, day, _time(e, "start", where), _time(e, "end", where))


def _build(cls, where: str, *args):
    try:
        return cls(*args)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"{where}: {exc}") from None


def _mapping(value: Any, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise PlanError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise PlanError(f"{where} must be a list")
    return value


def _str(doc: Mapping, key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise PlanError(f"{where}.{key} must be a non-empty string")
    return value


def _time(doc: Mapping, key: str, where: str, optional: bool = False) -> time | None:
    value: Any = doc.get(key)  # anything a plan document holds: fromisoformat's TypeError speaks for non-strings
    if value is None and optional:
        return None
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise PlanError(f"{where}.{key} must be a local time HH:MM, got {value!r}") from None


def _date(doc: Mapping, key: str, where: str, optional: bool = False) -> date | None:
    value: Any = doc.get(key)  # as in _time
    if value is None and optional:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise PlanError(f"{where}.{key} must be a date YYYY-MM-DD, got {value!r}") from None
