"""Open311 over the case engine: what ``web.context.Open311`` asks, in the engine's terms.

A citizen's request becomes a case of source ``hotline`` filed under the category its
service code names; the client's token (if it sent one) is the case's external id, so a
request posted twice makes one case. The reporter is kept as JSON in the case's
``reporter`` column and never read back here: the Open311 reads are public.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from alerts.cases.lifecycle import LABELS_ZH, CaseState
from tracker.cases.engine import CaseEngine, CaseError, NewCase, NotAllowed, NoTaxonomy
from tracker.cases.roles import Actor
from tracker.storage.store import StoreError
from web.context import Conflict, Unavailable
from web.principal import Principal

SOURCE = "hotline"


class EngineOpen311:
    def __init__(self, engine: CaseEngine) -> None:
        self.engine = engine

    async def services(self) -> list[dict[str, Any]]:
        try:
            _, taxonomy = await self.engine.taxonomy()
        except NoTaxonomy:
            return []
        except (OSError, asyncpg.PostgresError, StoreError) as exc:
            raise Unavailable(f"the database is not answering: {exc}") from None
        return [{"code": c.code, "name": c.name, "name_en": c.name_en, "kind": c.kind.value, "group": c.major_name,
                 "department": taxonomy.departments[c.department].name if c.department in taxonomy.departments
                 else c.department, "urgent": c.urgent}
                for c in sorted(taxonomy.categories.values(), key=lambda c: c.code)]

    async def submit(self, who: Principal, source: str, request: dict[str, Any]) -> tuple[int, bool]:
        actor = Actor(who.account, who.role.value, who.district, source=source)
        index = self.engine.index
        if index is not None and index.place(request["lat"], request["lon"]) is None:
            # no grid, no district: nobody in the city could take it on
            raise ValueError(f"lat/long {request['lat']:g}, {request['lon']:g} is outside every unit grid of the city")
        media = request.get("media_url")
        new = NewCase(source=SOURCE, category=request["service_code"], description=request.get("description") or "",
                      lat=request["lat"], lon=request["lon"], external_id=request.get("token"),
                      reporter=json.dumps(request["reporter"], ensure_ascii=False) if request.get("reporter") else None,
                      photos=(media,) if media else ())
        try:
            view, created = await self.engine.create(new, actor)
            first = None if created else await self.engine.store.first_timeline_entry(int(view["id"]))
        except NotAllowed as exc:
            raise PermissionError(str(exc)) from None
        except CaseError as exc:
            raise ValueError(str(exc)) from None
        except (OSError, asyncpg.PostgresError, StoreError) as exc:
            raise Unavailable(f"the database is not answering: {exc}") from None
        if first is not None and first["actor"] != who.account:
            # another client's ticket of the same number: not this client's request to answer
            raise Conflict(f"token {request['token']!r} names another client's request: "
                           "give this request a token of your own (e.g. with a prefix of yours)")
        return int(view["id"]), created

    async def requests(self, *, ids: list[int] | None, codes: list[str] | None, start: datetime | None,
                       end: datetime | None, closed: bool | None, limit: int) -> list[dict[str, Any]]:
        store = self.engine.store
        try:
            # citizens' requests only: the city's own cases (alarms, patrol reports, a
            # dispatcher's notes) are not the public's to read
            rows = await store.open311_cases(ids=ids, categories=codes, start=start, end=end, closed=closed,
                                             source=SOURCE, limit=limit)
            return [await self._request(row) for row in rows]
        except (OSError, asyncpg.PostgresError, StoreError) as exc:
            raise Unavailable(f"the database is not answering: {exc}") from None

    async def _request(self, row: Any) -> dict[str, Any]:
        view = await self.engine.view(row)
        department_name = None
        if row["department"] is not None:
            try:
                _, taxonomy = await self.engine.taxonomy(row["taxonomy_version"])
                found = taxonomy.departments.get(row["department"])
                department_name = found.name if found is not None else row["department"]
            except NoTaxonomy:
                department_name = row["department"]
        first = await self.engine.store.first_timeline_entry(row["id"])
        fields = _fields(first["fields"]) if first is not None else {}
        photos = fields.get("photos") or []
        stage = view["stage"]
        return {"id": row["id"], "state": row["state"], "state_zh": LABELS_ZH[CaseState(row["state"])],
                "category": row["category"], "category_name": view.get("category_name"),
                "department_name": department_name, "description": row["description"],
                "created_at": self._iso(row["created_at"]), "updated_at": self._iso(row["updated_at"]),
                "due": None if stage is None else self._iso(datetime.fromisoformat(stage["due"])), "grid": row["grid"],
                "street": row["street"], "community": row["community"], "district": row["district"],
                "lat": row["lat"], "lon": row["lon"], "media_url": photos[0] if photos else None,
                "notes": await self._notes(row)}

    def _iso(self, value: datetime) -> str:
        return value.astimezone(self.engine.calendar.zone).isoformat(timespec="milliseconds")

    async def _notes(self, row: Any) -> str:
        """What a citizen may read about where the case is: the state's name and, for a
        finished case, the reason given (a rejection's reason; not who gave it)."""
        label = LABELS_ZH[CaseState(row["state"])]
        if row["state"] != CaseState.REJECTED.value:
            return label
        for entry in reversed(await self.engine.store.case_timeline(row["id"])):
            if entry["action"] == "reject" and entry["note"]:
                return f"{label}: {entry['note']}"
        return label


def _fields(value: Any) -> dict[str, Any]:
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}
