"""What patrol coverage is judged against: the city's unit grids and their H3 cells,
the responsibility grids (areas) made of them, and the coverage rules per city or area."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import h3.api.basic_int as h3

from protocols.model import GRID_CODE


@dataclass(frozen=True, slots=True)
class CoverageRule:
    """What a city (or one responsibility grid) asks of a patrol. Durations in minutes.

    ``None`` switches a check off. A fix whose accuracy radius ``acc`` exceeds
    ``max_acc_m`` does not count as a visit or a position (it still shows the handset is
    alive); a fix that reports no accuracy counts.
    """

    min_cell_share: float = 0.6          # share of each unit grid's cells visited per slot
    passes_required: int = 1             # passes through each unit grid per slot
    pass_gap_min: float = 30.0           # a visit this long after the previous one is a new pass
    max_unvisited_min: float | None = None  # longest a unit grid may go without a visit
    max_acc_m: float | None = 50.0
    offline_min: float = 15.0            # no fix at all for longer: offline
    off_grid_min: float = 15.0           # outside the responsibility grid for longer: off grid
    stationary_min: float = 30.0         # within stationary_radius_m for longer: stationary
    stationary_radius_m: float = 30.0
    battery_low_pct: float | None = 20.0
    warning_lead_min: float | None = 30.0  # early warning this long before the slot ends
    not_started_min: float = 15.0        # no fix this long after the slot starts: not started

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_cell_share <= 1.0:
            raise ValueError(f"min_cell_share must be in [0, 1], not {self.min_cell_share!r}")
        if self.passes_required < 0:
            raise ValueError("passes_required must not be negative")
        for name in ("pass_gap_min", "offline_min", "off_grid_min", "stationary_min",
                     "stationary_radius_m", "not_started_min", "max_unvisited_min",
                     "max_acc_m", "battery_low_pct", "warning_lead_min"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, not {value!r}")

    def for_area(self, area: str) -> CoverageRule:
        """The rule for ``area``: one rule serves every area (see ``CoverageRules``)."""
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: CoverageRule | None = None
                  ) -> CoverageRule:
        """Build from config (e.g. a TOML table); keys not given keep ``base``'s values."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown coverage rule keys: {sorted(unknown)}")
        return dataclasses.replace(base or cls(), **data)


@dataclass(frozen=True, slots=True)
class CoverageRules:
    """A city-wide default rule plus per-area (responsibility grid) exceptions."""

    default: CoverageRule = CoverageRule()
    by_area: Mapping[str, CoverageRule] = field(default_factory=dict, hash=False)

    def for_area(self, area: str) -> CoverageRule:
        return self.by_area.get(area, self.default)

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping]) -> CoverageRules:
        """``{"default": {...}, "areas": {"<area>": {...}}}``; areas inherit the default."""
        unknown = set(data) - {"default", "areas"}
        if unknown:
            raise ValueError(f"unknown coverage rules keys: {sorted(unknown)}")
        default = CoverageRule.from_dict(data.get("default", {}))
        areas = {area: CoverageRule.from_dict(over, default)
                 for area, over in data.get("areas", {}).items()}
        return cls(default, areas)


@dataclass(frozen=True, slots=True)
class Territory:
    """Unit grids as sets of H3 cells (ints, one resolution) and areas as sets of grids."""

    grids: Mapping[str, frozenset[int]] = field(hash=False)
    areas: Mapping[str, frozenset[str]] = field(hash=False)
    res: int = field(init=False)
    _grid_of: dict[int, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        grids = {code: frozenset(cells) for code, cells in self.grids.items()}
        areas = {name: frozenset(codes) for name, codes in self.areas.items()}
        grid_of: dict[int, str] = {}
        resolutions: set[int] = set()
        for code, cells in grids.items():
            if not GRID_CODE.match(code):
                raise ValueError(f"bad unit grid code {code!r}")
            if not cells:
                raise ValueError(f"unit grid {code} has no cells")
            for cell in cells:
                if not h3.is_valid_cell(cell):
                    raise ValueError(f"unit grid {code}: {cell!r} is not an H3 cell")
                other = grid_of.setdefault(cell, code)
                if other != code:
                    raise ValueError(f"cell {cell:x} is in unit grids {other} and {code}")
                resolutions.add(h3.get_resolution(cell))
        if len(resolutions) > 1:
            raise ValueError(f"unit grid cells mix resolutions {sorted(resolutions)}")
        for name, codes in areas.items():
            missing = codes - grids.keys()
            if not codes or missing:
                raise ValueError(f"area {name!r}: unknown or no unit grids {sorted(missing)}")
        object.__setattr__(self, "grids", grids)
        object.__setattr__(self, "areas", areas)
        object.__setattr__(self, "res", resolutions.pop() if resolutions else 12)
        object.__setattr__(self, "_grid_of", grid_of)

    @classmethod
    def from_cover(cls, cover: Mapping[int, str], areas: Mapping[str, Iterable[str]]
                   ) -> Territory:
        """From an H3 cover (cell -> unit grid code), as the grid importer and index hold."""
        grids: dict[str, set[int]] = {}
        for cell, code in cover.items():
            grids.setdefault(code, set()).add(cell)
        return cls({code: frozenset(cells) for code, cells in grids.items()}, {name: frozenset(codes) for name, codes in areas.items()})

    def cell_of(self, lat: float, lon: float) -> int:
        return h3.latlng_to_cell(lat, lon, self.res)

    def locate(self, cell: int) -> tuple[int, str] | None:
        """(cell at our resolution, its unit grid), also for finer cells; None: off grid."""
        code = self._grid_of.get(cell)
        if code is not None:
            return cell, code
        if h3.get_resolution(cell) > self.res:
            parent = h3.cell_to_parent(cell, self.res)
            code = self._grid_of.get(parent)
            if code is not None:
                return parent, code
        return None

    def area_grids(self, area: str) -> frozenset[str]:
        try:
            return self.areas[area]
        except KeyError:
            raise ValueError(f"unknown responsibility grid {area!r}") from None
