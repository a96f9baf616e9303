"""The unit grids as each scope sees them, split and encoded once.

``GET /api/grids`` answers the map's largest document (a city has thousands of unit
grids); building and encoding a district's share of it on every request would cost more
than the request itself, so the collection is split by district (a grid code begins with
its district's) and each part encoded once, when the first request asks.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import HTTPConnection

from web.context import context


class GridCollections:
    """The FeatureCollection of the whole city and of each district in it, encoded."""

    def __init__(self, collection: dict[str, Any]) -> None:
        features = collection.get("features", [])
        by_district: dict[str, list[Any]] = {}
        for feature in features:
            by_district.setdefault(str(feature["properties"]["code"])[:6], []).append(feature)
        rest = {k: v for k, v in collection.items() if k != "features"}
        self._city = _encode({**rest, "features": features})
        self._districts = {district: _encode({**rest, "features": part}) for district, part in by_district.items()}
        self._none = _encode({**rest, "features": []})

    def encoded(self, district: str | None) -> bytes:
        """The collection ``district`` sees (None: the whole city), as JSON."""
        if district is None:
            return self._city
        return self._districts.get(district, self._none)


def _encode(doc: dict[str, Any]) -> bytes:
    # as Starlette's JSONResponse renders
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


def grid_collections(connection: HTTPConnection) -> GridCollections:
    """The application's grid collections, built on first use from its context's grids."""
    state = connection.app.state
    found = getattr(state, "grid_collections", None)
    if found is None:
        found = state.grid_collections = GridCollections(context(connection).grids)
    return found
