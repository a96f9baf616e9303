"""The city's case categories (部件/事件 大类/小类) and departments, as data.

Taxonomies differ per city (Chengdu: 6 event classes with 91 minor classes; Hangzhou
about 220 categories), so none is built in: a city loads its own file (TOML, see
``tracker/devcity/taxonomy.toml`` for the demo's example). Each minor class carries its
names, its default department, whether it is urgent, and the limit of each stage.

A category's code is its kind's letter and its four digits: ``C0101`` is component class
01 (公用设施) minor 01 (上水井盖), ``E0104`` event class 01 (市容环境) minor 04. The
component's own 16-digit code holds the same four digits after its district, so a sensor's
component code names its category (``category_of_component``).

Limits are text with a unit: ``"30min"``, ``"4h"``, ``"3d"``, counted in working time
(see ``worktime``); a minor class with ``clock = "natural"`` counts its limits around the
clock (emergencies are handled at night too). A loaded taxonomy is checked whole: every
error names where it is, and nothing of a file with an error is used.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from alerts.cases.lifecycle import Stage

_LIMIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(min|h|d)\s*$")
_TWO_DIGITS = re.compile(r"^\d{2}$")
_DISTRICT = re.compile(r"^\d{6}$")


class Kind(StrEnum):
    COMPONENT = "component"  # 部件
    EVENT = "event"  # 事件


_LETTER = {Kind.COMPONENT: "C", Kind.EVENT: "E"}


class TaxonomyError(ValueError):
    """The taxonomy file is not usable; the message lists every problem found, by place."""


@dataclass(frozen=True, slots=True)
class Limit:
    amount: float
    unit: str  # "min", "h" or "d" (a working day: the calendar's office hours of one day)

    def __str__(self) -> str:
        return f"{self.amount:g}{self.unit}"


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name: str
    district: str | None  # None: a city-level department


@dataclass(frozen=True, slots=True)
class Category:
    code: str  # C0101, E0104
    kind: Kind
    major: str
    minor: str
    major_name: str
    name: str
    name_en: str
    department: str  # a Department code
    urgent: bool
    natural_clock: bool  # limits counted around the clock, not in working time
    limits: Mapping[Stage, Limit]


@dataclass(frozen=True)
class Taxonomy:
    city: str
    version: str  # as the file names it; ``digest`` tells two files of one version apart
    example: bool  # the demo's illustration, not a city's adopted standard
    departments: Mapping[str, Department]
    categories: Mapping[str, Category]
    digest: str

    def category(self, code: str) -> Category:
        try:
            return self.categories[code]
        except KeyError:
            raise KeyError(f"unknown category {code!r}") from None

    def department_for(self, category: Category, district: str) -> Department:
        """Who handles ``category`` in ``district``: the district's own department of that
        code (``{district}-{code}``) where the city has one, else the city-level one."""
        local = self.departments.get(f"{district}-{category.department}")
        return local if local is not None else self.departments[category.department]

    def category_of_component(self, component_code: str) -> Category | None:
        """The category of a 16-digit component code (district + major + minor + serial)."""
        if len(component_code) != 16 or not component_code.isdigit():
            return None
        return self.categories.get("C" + component_code[6:10])


def parse_limit(text: object) -> Limit:
    match = _LIMIT.match(text) if isinstance(text, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a limit (a positive number with min, h or d, e.g. \"4h\")")
    return Limit(float(match.group(1)), match.group(2))


def limit_duration(limit: Limit, working_day: timedelta) -> timedelta:
    """The limit as a duration on its clock (a working day being ``working_day`` long)."""
    if limit.unit == "min":
        return timedelta(minutes=limit.amount)
    if limit.unit == "h":
        return timedelta(hours=limit.amount)
    return working_day * limit.amount


def load_taxonomy(text: str) -> Taxonomy:
    """Parse and check a taxonomy file's text (TOML)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"not TOML: {exc}") from None
    return taxonomy_from_doc(doc, hashlib.sha256(text.encode()).hexdigest()[:16])


def taxonomy_from_doc(doc: Mapping[str, Any], digest: str) -> Taxonomy:
    """Check a parsed taxonomy document (as from TOML or JSON) whole."""
    problems: list[str] = []
    departments = _departments(doc.get("department", []), problems)
    categories: dict[str, Category] = {}
    for i, major in enumerate(_tables(doc.get("major", []), "major", problems)):
        _major(major, f"major[{i}]", departments, categories, problems)
    for key in ("city", "version"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            problems.append(f"{key}: a non-empty text is needed")
    if not categories and not problems:
        problems.append("no categories")
    if problems:
        raise TaxonomyError("; ".join(problems))
    return Taxonomy(city=doc["city"], version=doc["version"], example=bool(doc.get("example", False)),
                    departments=departments, categories=categories, digest=digest)


def _tables(value: Any, where: str, problems: list[str]) -> Iterable[dict]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        problems.append(f"{where}: a list of tables ([[{where}]]) is needed")
        return []
    return value


def _departments(value: Any, problems: list[str]) -> dict[str, Department]:
    found: dict[str, Department] = {}
    for i, row in enumerate(_tables(value, "department", problems)):
        where = f"department[{i}]"
        code, name, district = row.get("code"), row.get("name"), row.get("district")
        if not isinstance(code, str) or not code:
            problems.append(f"{where}: code is needed")
            continue
        if code in found:
            problems.append(f"{where}: code {code!r} appears twice")
        if not isinstance(name, str) or not name:
            problems.append(f"{where} ({code}): name is needed")
        if district is not None and not (isinstance(district, str) and _DISTRICT.match(district)):
            problems.append(f"{where} ({code}): district must be a 6-digit code")
        found[code] = Department(code, str(name), district)
    return found


def _major(major: dict, where: str, departments: Mapping[str, Department], categories: dict[str, Category],
           problems: list[str]) -> None:
    try:
        kind = Kind(str(major.get("kind")))
    except ValueError:
        problems.append(f"{where}: kind must be one of {', '.join(Kind)}")
        return
    code, name = major.get("code"), major.get("name")
    if not isinstance(code, str) or not _TWO_DIGITS.match(code):
        problems.append(f"{where}: code must be two digits")
        return
    if not isinstance(name, str) or not name:
        problems.append(f"{where} ({code}): name is needed")
    for j, minor in enumerate(_tables(major.get("minor", []), f"{where}.minor", problems)):
        category = _minor(minor, f"{where}.minor[{j}]", kind, code, str(name), departments, problems)
        if category is None:
            continue
        if category.code in categories:
            problems.append(f"{where}.minor[{j}]: category {category.code} appears twice")
        categories[category.code] = category


def _minor(minor: dict, where: str, kind: Kind, major: str, major_name: str, departments: Mapping[str, Department],
           problems: list[str]) -> Category | None:
    code = minor.get("code")
    if not isinstance(code, str) or not _TWO_DIGITS.match(code):
        problems.append(f"{where}: code must be two digits")
        return None
    full = f"{_LETTER[kind]}{major}{code}"
    where = f"{where} ({full})"
    name, department = minor.get("name"), minor.get("department")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}: name is needed")
    if department not in departments:
        problems.append(f"{where}: department {department!r} is not among the departments (the city-level one "
                        "must exist; districts' own are found as DISTRICT-CODE)")
    clock = minor.get("clock", "working")
    if clock not in ("working", "natural"):
        problems.append(f"{where}: clock must be \"working\" or \"natural\"")
    raw = minor.get("limits")
    limits: dict[Stage, Limit] = {}
    if not isinstance(raw, dict):
        problems.append(f"{where}: limits (a table of stage = \"4h\") are needed")
    else:
        for stage_name, text in raw.items():
            try:
                stage = Stage(stage_name)
            except ValueError:
                problems.append(f"{where}: unknown stage {stage_name!r} (stages: {', '.join(Stage)})")
                continue
            try:
                limits[stage] = parse_limit(text)
            except ValueError as exc:
                problems.append(f"{where}: limits.{stage_name}: {exc}")
        absent = [s.value for s in Stage if s not in limits and s.value not in raw]
        if absent:
            problems.append(f"{where}: limits missing for {', '.join(absent)}")
    return Category(code=full, kind=kind, major=major, minor=code, major_name=major_name, name=str(name),
                    name_en=str(minor.get("name_en", "")), department=str(department), urgent=bool(minor.get("urgent", False)),
                    natural_clock=clock == "natural", limits=limits)
