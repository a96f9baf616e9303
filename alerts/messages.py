"""The message catalogue of patrol alerts: what a person reads about each alert kind, in
Chinese and English, and how severe the kind is. The words live in ``messages.toml``;
this module derives each kind's template fields from an alert's detail and fills them.

Fields per kind (besides ``grid``, the unit grid or ""):
- grid_not_covered: cells_visited, cells_total, share, min_cell_share, passes, passes_required
- coverage_warning: short, unvisited, minutes_left, grid_noun ("grid"/"grids", English only)
- offline, off_grid, not_started: minutes; stationary: minutes, radius_m; battery_low: battery_pct
"""

from __future__ import annotations

import enum
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alerts.patrol import Alert, AlertKind, Resolution

CATALOGUE_PATH = Path(__file__).with_name("messages.toml")


class Lang(enum.StrEnum):
    ZH = "zh"
    EN = "en"


class Severity(enum.StrEnum):
    """Most urgent first; ``rank`` orders them (0 = critical)."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


# People act on these at once: the page beeps and notifies when one is raised.
HIGH_SEVERITIES = frozenset({Severity.CRITICAL, Severity.MAJOR})


def negotiate(query_lang: str | None, accept_language: str | None) -> Lang:
    """``?lang=`` first, then the first Accept-Language tag the catalogue speaks; Chinese
    by default (the city's staff read Chinese)."""
    if query_lang:
        tag = query_lang.strip().lower()[:2]
        return Lang(tag) if tag in Lang.__members__.values() else Lang.ZH
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in Lang.__members__.values():
            return Lang(tag)
    return Lang.ZH


@dataclass(frozen=True, slots=True)
class Catalogue:
    templates: Mapping[AlertKind, Mapping[str, str]]
    severities: Mapping[AlertKind, Severity]
    resolutions: Mapping[Resolution, Mapping[Lang, str]]
    resolved: Mapping[Lang, str]

    @classmethod
    def load(cls, path: Path = CATALOGUE_PATH, severity: Mapping[str, str] | None = None) -> Catalogue:
        """The catalogue at ``path``; ``severity`` overrides kinds' severities (from
        configuration). Raises ``ValueError`` naming what is missing or wrong."""
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        kinds = doc.get("kinds", {})
        missing = [k.value for k in AlertKind if k.value not in kinds]
        if missing:
            raise ValueError(f"{path.name}: no messages for alert kinds {missing}")
        unknown = sorted(set(kinds) - {k.value for k in AlertKind}
                         | set(severity or {}) - {k.value for k in AlertKind})
        if unknown:
            raise ValueError(f"{path.name}: unknown alert kinds {unknown}")
        templates: dict[AlertKind, dict[str, str]] = {}
        severities: dict[AlertKind, Severity] = {}
        for kind in AlertKind:
            entry = kinds[kind.value]
            for lang in Lang:
                if not isinstance(entry.get(lang.value), str):
                    raise ValueError(f"{path.name}: kinds.{kind.value} has no {lang.value} template")
            templates[kind] = {k: v for k, v in entry.items() if k != "severity"}
            chosen = (severity or {}).get(kind.value, entry.get("severity"))
            try:
                severities[kind] = Severity(chosen)
            except ValueError:
                raise ValueError(f"alert kind {kind.value}: severity {chosen!r} is not one of "
                                 f"{[s.value for s in Severity]}") from None
        resolutions = {r: {lang: doc["resolutions"][r.name.lower()][lang.value] for lang in Lang} for r in Resolution}
        return cls(templates, severities, resolutions, {lang: doc["resolved"][lang.value] for lang in Lang})

    def severity(self, kind: AlertKind | str) -> Severity:
        return self.severities[AlertKind(kind)]

    def text(self, kind: AlertKind | str, detail: Mapping[str, Any], grid: str | None = None,
             resolution: Resolution | str | None = None, lang: Lang | str = Lang.ZH) -> str:
        """One line for people, e.g. "3 个网格未到访，距班次结束 25 分钟"."""
        kind, lang = AlertKind(kind), Lang(lang)
        fields = _fields(kind, detail, grid)
        entries = self.templates[kind]
        template = entries[lang.value]
        if kind is AlertKind.COVERAGE_WARNING and fields["short"] == fields["unvisited"]:
            template = entries.get(f"{lang.value}_unvisited", template)
        text = template.format_map(fields)
        if resolution is not None:
            why = self.resolutions[_resolution(resolution)][lang]
            text = self.resolved[lang].format(text=text, resolution=why)
        return text

    def texts(self, kind: AlertKind | str, detail: Mapping[str, Any], grid: str | None = None,
              resolution: Resolution | str | None = None) -> dict[str, str]:
        return {lang.value: self.text(kind, detail, grid, resolution, lang) for lang in Lang}

    def placeholders(self, kind: AlertKind) -> set[str]:
        """The fields the templates of ``kind`` name (for checking the catalogue)."""
        return {name for template in self.templates[kind].values()
                for _, name, _, _ in string.Formatter().parse(template) if name}


def _resolution(value: Resolution | str) -> Resolution:
    """Stored rows hold the resolution's value ("slot ended"), alert dicts its name."""
    if isinstance(value, Resolution):
        return value
    try:
        return Resolution(value)
    except ValueError:
        return Resolution[value.upper()]


def _fields(kind: AlertKind, d: Mapping[str, Any], grid: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"grid": grid or ""}
    match kind:
        case AlertKind.GRID_NOT_COVERED:
            fields |= {k: d[k] for k in ("cells_visited", "cells_total", "share", "min_cell_share",
                                         "passes", "passes_required")}
        case AlertKind.COVERAGE_WARNING:
            short = len(d["grids"])
            fields |= {"short": short, "unvisited": len(d["unvisited"]), "minutes_left": d["minutes_left"],
                       "grid_noun": "grid" if short == 1 else "grids"}
        case AlertKind.STATIONARY:
            fields |= {"minutes": d["minutes"], "radius_m": d["radius_m"]}
        case AlertKind.BATTERY_LOW:
            fields |= {"battery_pct": d["battery_pct"]}
        case AlertKind.OFFLINE | AlertKind.OFF_GRID | AlertKind.NOT_STARTED:
            fields |= {"minutes": d["minutes"]}
    return fields


@cache
def default_catalogue() -> Catalogue:
    return Catalogue.load()


@cache
def configured_catalogue(pairs: tuple[str, ...]) -> Catalogue:
    """The catalogue with severities overridden by "kind=severity" pairs (configuration);
    raises ``ValueError`` naming a malformed pair, an unknown kind or severity."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        kind, sep, severity = pair.partition("=")
        if not sep or not kind.strip() or not severity.strip():
            raise ValueError(f"alert severity {pair!r}: expected kind=severity")
        overrides[kind.strip()] = severity.strip()
    return Catalogue.load(severity=overrides) if overrides else default_catalogue()


def describe(alert: Alert, lang: Lang | str = Lang.ZH, catalogue: Catalogue | None = None) -> str:
    """One line for people about ``alert``, in ``lang``."""
    return (catalogue or default_catalogue()).text(alert.kind, alert.detail, alert.grid, alert.resolution, lang)
