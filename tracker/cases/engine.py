"""The case engine: cases created, moved through the lifecycle and read, over the store.

Every change is one transaction: the case row (locked), its timeline entry (who, with
which role and scope, when, what, the fields given) and its audit entry, written together
or not at all. The lifecycle table decides what an action may do
(``alerts.cases.lifecycle``), the roles who may take it (``tracker.cases.roles``), the
deadlines when the running stage is due (``alerts.cases.deadlines``, stored on the row so a
restarted watcher finds them). Changes go out live through ``publish(kind, payload,
district)``, the hub's ``publish_event``.

Sources create cases idempotently: ``create`` with the same (source, external_id) returns
the case already stored and writes nothing.

A little over the house's ~500 lines on purpose: this class is the one interface the case
sources, the web edge and the watcher call, and its writing side (create, transition) and
reading side (views with their deadlines) share the stage clock; split, each half would
only call back into the other.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import trio

from alerts.cases.deadlines import StageClock, remaining, shifted, stage_clock, standing
from alerts.cases.lifecycle import (
    LABELS_ZH,
    OPEN_STATES,
    TRANSITIONS,
    Action,
    CaseState,
    IllegalTransition,
    Stage,
    apply,
)
from alerts.cases.taxonomy import Category, Taxonomy, TaxonomyError, load_taxonomy
from alerts.cases.worktime import WorkCalendar
from geofence.index import GridIndex
from protocols.epoch import ms_to_datetime
from tracker.cases.roles import CREATORS, SERVICE, SYSTEM, Actor, refusal
from tracker.storage.audit import AuditEntry
from tracker.storage.store import Store

log = logging.getLogger(__name__)

SOURCES = ("sensor", "vehicle", "handset", "hotline", "dispatcher")
GRADES = ("satisfied", "acceptable", "unsatisfied")
MAX_EXTENSION_HOURS = 720.0
MAX_TEXT = 4000
MAX_PHOTO_REF = 1000  # a URL or a storage key, as Open311's media_url
Publish = Callable[[str, dict, str | None], None]
Row = Any  # a case row from the store (an asyncpg record), read by column name


class CaseError(ValueError):
    """The request cannot be carried out as given (bad fields, unknown category): 400."""


class CaseNotFound(LookupError):
    """No such case, or none the actor may see: 404."""


class NotAllowed(PermissionError):
    """The actor's role or scope may not do this: 403."""


class NoTaxonomy(LookupError):
    """No taxonomy is loaded: no case can be filed under a category."""


# IllegalTransition (a ValueError from the lifecycle) is the 409: the action is not
# allowed from the case's state, and the message says what is.
__all__ = [
    "SERVICE",
    "Actor",
    "CaseEngine",
    "CaseError",
    "CaseNotFound",
    "IllegalTransition",
    "NewCase",
    "NoTaxonomy",
    "NotAllowed",
]


@dataclass(frozen=True, slots=True)
class NewCase:
    """A case to open. ``external_id``: the source's own key of what it reports (a
    handset report id, an alarm originator+kind+episode, a hotline ticket); with it,
    creating again returns the case already there. ``district``: for a case with no
    position (else the grid index places it)."""

    source: str
    category: str
    description: str = ""
    lat: float | None = None
    lon: float | None = None
    urgent: bool | None = None  # None: as the category says
    external_id: str | None = None
    reporter: str | None = None
    district: str | None = None
    photos: tuple[str, ...] = ()  # references to pictures the source sent (kept in the creation's timeline entry)


class CaseEngine:
    def __init__(self, store: Store, calendar: WorkCalendar, *, clock_ms: Callable[[], int], index: GridIndex | None = None,
                 publish: Publish | None = None, warn_share: float = 0.8,
                 escalate_after: timedelta = timedelta(minutes=30)) -> None:
        self.store = store
        self.calendar = calendar
        self.clock_ms = clock_ms
        self.index = index
        self.publish = publish
        self.warn_share = warn_share
        self.escalate_after = escalate_after
        self._taxonomies: dict[int, Taxonomy] = {}
        self._current: int | None = None
        self.changed = trio.Event()  # set at every change: the watcher looks again

    def _iso(self, value: datetime | None) -> str | None:
        """An instant as the city reads it: local time with its offset."""
        return None if value is None else value.astimezone(self.calendar.zone).isoformat()

    def now(self) -> datetime:
        return ms_to_datetime(self.clock_ms())

    # --- taxonomy ---------------------------------------------------------------------

    async def load_taxonomy(self, text: str, actor: Actor) -> tuple[int, Taxonomy, bool]:
        """Check and store a taxonomy file's text as the current version: (version, the
        taxonomy, whether it is a new version; the same text as the newest is not).
        Raises ``TaxonomyError`` listing every problem."""
        taxonomy = load_taxonomy(text)
        version, created = await self.store.save_taxonomy(taxonomy.version, taxonomy.city, taxonomy.example,
                                                          taxonomy.digest, text, actor.account)
        self._taxonomies[version] = taxonomy
        self._current = version
        if created:
            await self.store.append_audit(AuditEntry(actor=actor.account, action="taxonomy.load", target=f"taxonomy:{version}",
                                                     source=actor.source, role=actor.role, scope=actor.scope,
                                                     after={"version": version, "label": taxonomy.version,
                                                            "digest": taxonomy.digest, "example": taxonomy.example}))
        return version, taxonomy, created

    async def taxonomy(self, version: int | None = None) -> tuple[int, Taxonomy]:
        """A stored version (None: the current one); raises ``NoTaxonomy``."""
        if version is None and self._current is not None:
            version = self._current
        if version is not None and version in self._taxonomies:
            return version, self._taxonomies[version]
        row = await self.store.taxonomy(version)
        if row is None:
            raise NoTaxonomy("no taxonomy is loaded (tracker taxonomy load FILE, or PUT /api/taxonomy)")
        try:
            parsed = load_taxonomy(row["source"])
        except TaxonomyError as exc:  # it was checked when stored: the code changed since
            raise NoTaxonomy(f"taxonomy version {row['version']} no longer loads: {exc}") from None
        self._taxonomies[row["version"]] = parsed
        if version is None:
            self._current = row["version"]
        return row["version"], parsed

    # --- the stage clock ------------------------------------------------------------

    def clock(self, category: Category, stage: Stage, started: datetime, extension_s: float = 0.0,
              paused_s: float = 0.0) -> StageClock:
        clock = stage_clock(category, stage, started, self.calendar, extension=timedelta(seconds=extension_s),
                            warn_share=self.warn_share)
        return shifted(clock, timedelta(seconds=paused_s), self.calendar) if paused_s else clock

    def _stage_columns(self, category: Category, stage: Stage, started: datetime) -> dict[str, Any]:
        clock = self.clock(category, stage, started)
        return {"stage": stage.value, "stage_started": started, "stage_due": clock.due, "stage_warn": clock.warn_at,
                "stage_extension_s": 0.0, "stage_paused_s": 0.0, "stage_warned_at": None, "stage_overdue_at": None,
                "extension_pending": False, "extension_hours": None}

    async def _category(self, row: Row) -> Category:
        _, taxonomy = await self.taxonomy(row["taxonomy_version"])
        return taxonomy.category(row["category"])

    # --- create ---------------------------------------------------------------------

    async def create(self, new: NewCase, actor: Actor) -> tuple[dict[str, Any], bool]:
        """Open a case: (the case, True); or (the case already stored for the same source
        and ``external_id``, False). Raises ``CaseError`` (400), ``NotAllowed`` (403)."""
        if new.source not in SOURCES:
            raise CaseError(f"source must be one of {', '.join(SOURCES)}")
        if actor.role not in CREATORS:
            raise NotAllowed(f"a {actor.role} may not create cases")
        if new.external_id is not None:
            found = await self.store.case_by_external(new.source, new.external_id)
            if found is not None:
                return await self.view(found, actor), False
        try:
            version, taxonomy = await self.taxonomy()
        except NoTaxonomy as exc:
            raise CaseError(f"category is not in any taxonomy: {exc}") from None
        category = taxonomy.categories.get(new.category)
        if category is None:
            raise CaseError(f"category is not in taxonomy version {version}: {new.category!r}")
        place = self._place(new)
        district = place[0] if place is not None else new.district
        if district is None and actor.district is not None:
            # a district's case is placed on one of its grids: say what is missing, not only whose it would be
            if new.lat is None:
                raise CaseError(f"lat and lon are needed: a case of {actor.district} is placed on one of its grids")
            raise CaseError(f"lat/lon {new.lat:g}, {new.lon:g} is outside every unit grid of the city")
        if not actor.sees(district):
            raise NotAllowed(f"{actor.account} acts for {actor.scope} only; the case would be {district or 'the city'}'s")
        now = self.now()
        row: dict[str, Any] = {
            "state": CaseState.REPORTED.value, "source": new.source, "external_id": new.external_id,
            "category": category.code, "taxonomy_version": version,
            "urgent": category.urgent if new.urgent is None else new.urgent,
            "description": _clip(new.description), "lat": new.lat, "lon": new.lon, "district": district,
            "street": place[1] if place else None, "community": place[2] if place else None,
            "grid": place[3] if place else None, "reporter": new.reporter, "created_at": now, "updated_at": now,
            **self._stage_columns(category, Stage.FILE, now)}
        entry = {"at": now, "actor": actor.account, "role": actor.role, "scope": actor.scope, "action": "create",
                 "state": CaseState.REPORTED.value, "note": "",
                 "fields": {"source": new.source, "category": category.code, "external_id": new.external_id,
                            **({"photos": list(new.photos)} if new.photos else {})}}
        audit = AuditEntry(actor=actor.account, action="case.create", target="case", source=actor.source, role=actor.role,
                           scope=actor.scope, after={"source": new.source, "category": category.code,
                                                     "district": district, "external_id": new.external_id})
        stored, created = await self.store.insert_case(row, entry, audit)
        view = await self.view(stored, actor)
        if created:
            self._announce("created", view)
        return view, created

    def _place(self, new: NewCase) -> tuple[str, str, str, str] | None:
        if new.lat is None or new.lon is None:
            if (new.lat is None) != (new.lon is None):
                raise CaseError("lon must be given with lat, and lat with lon")
            return None
        if not (math.isfinite(new.lat) and math.isfinite(new.lon) and -90 <= new.lat <= 90 and -180 <= new.lon <= 180):
            raise CaseError("lat must be in [-90, 90] and lon in [-180, 180]")
        place = self.index.place(new.lat, new.lon) if self.index is not None else None
        return None if place is None else (place.district, place.street, place.community, place.grid)

    # --- sources ----------------------------------------------------------------------
    # Sources that write a case in a transaction of their own (the alarm outbox's consumer)
    # build its row here, as ``create`` would, and announce it once committed.

    def opening_row(self, new: NewCase, category: Category, version: int, now: datetime) -> dict[str, Any]:
        """The columns of a new case of ``category`` (taxonomy ``version``) reported ``now``."""
        place = self._place(new)
        return {
            "state": CaseState.REPORTED.value, "source": new.source, "external_id": new.external_id,
            "category": category.code, "taxonomy_version": version,
            "urgent": category.urgent if new.urgent is None else new.urgent,
            "description": _clip(new.description), "lat": new.lat, "lon": new.lon,
            "district": place[0] if place is not None else new.district,
            "street": place[1] if place else None, "community": place[2] if place else None,
            "grid": place[3] if place else None, "reporter": new.reporter, "created_at": now, "updated_at": now,
            **self._stage_columns(category, Stage.FILE, now)}

    async def announce(self, event: str, row: Row, **extra: Any) -> None:
        """Tell the live map (and the deadline watcher) about a case written elsewhere."""
        self._announce(event, await self.view(row), **extra)

    # --- transitions ------------------------------------------------------------------

    async def transition(self, case_id: int, action: Action | str, actor: Actor,
                         fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Take ``action`` on the case as ``actor`` with ``fields`` (reason, department,
        feedback, photos, collector, hours, grade, note): the case after it. Raises
        ``CaseNotFound`` (404), ``NotAllowed`` (403), ``CaseError`` (400, fields),
        ``IllegalTransition`` (409, the lifecycle refuses it); a refusal changes nothing."""
        try:
            act = Action(action)
        except ValueError:
            raise CaseError(f"action must be one of {', '.join(Action)}; got {action!r}") from None
        given = _checked_fields(fields or {})
        row = await self.store.case(case_id)
        if row is None or not actor.sees(row["district"]):
            raise CaseNotFound(f"no case {case_id}")
        category = await self._category(row)
        memberships = await self.store.departments_of(actor.account) if actor.role != SYSTEM else []
        if act is Action.DISPATCH and "department" in given:
            _, taxonomy = await self.taxonomy(row["taxonomy_version"])
            department = taxonomy.departments.get(given["department"])
            if department is None:
                raise CaseError(f"department is not in the taxonomy: {given['department']!r}")
            # a district's department sees its district's cases only: it could not handle another's
            if department.district is not None and department.district != row["district"]:
                raise CaseError(f"department {department.code} works in {department.district}; the case is "
                                f"{row['district'] or 'the city'}'s (dispatch to one of its district or the city)")
        if act is Action.VERIFY and "collector" in given:
            await self._check_verifier(given["collector"], actor)
        now = self.now()

        def decide(locked: Row) -> tuple[dict, dict, AuditEntry]:
            # the lifecycle first: what the case's state allows is no secret to whoever sees it
            state = CaseState(locked["state"])
            outcome = apply(state, act, frozenset(given), extension_pending=locked["extension_pending"])
            if act is Action.EVALUATE and locked["grade"] is not None:
                # once: a second grade would overwrite the one the department's figures count
                raise IllegalTransition(f"cannot evaluate: the case is evaluated already ({locked['grade']})")
            why = refusal(actor, act, district=locked["district"], department=locked["department"],
                          verifier=locked["verifier"], memberships=memberships)
            if why is not None:
                raise NotAllowed(why)
            updates = self._effects(locked, act, outcome.state, outcome.starts, given, category, now)
            updates["state"] = outcome.state.value
            updates["updated_at"] = now
            if locked["acknowledged_at"] is None:
                updates["acknowledged_at"], updates["acknowledged_by"] = now, actor.account
            entry = {"at": now, "actor": actor.account, "role": actor.role, "scope": actor.scope, "action": act.value,
                     "state": outcome.state.value, "note": str(given.get("note", "") or given.get("reason", "")),
                     "fields": given}
            audit = AuditEntry(actor=actor.account, action=f"case.{act.value}", target=f"case:{case_id}",
                               source=actor.source, role=actor.role, scope=actor.scope, before={"state": state.value},
                               after={"state": outcome.state.value, **given})
            return updates, entry, audit

        _, after = await self.store.change_case(case_id, decide)
        if after is None:
            raise CaseNotFound(f"no case {case_id}")
        view = await self.view(after, actor)
        self._announce("changed", view, action=act.value)
        return view

    async def _check_verifier(self, collector: str, actor: Actor) -> None:
        """A registered device sent to verify is a collector (a vehicle or a sensor has
        nobody to look), of the actor's district for a district's account. A name the
        registry does not hold may be a collector's account: not judged here."""
        device = await self.store.registered_device(collector)
        if device is None:
            return
        if device["class"] != "collector":
            raise CaseError(f"collector: {collector} is a {device['class']}, not a collector's handset")
        if actor.district is not None and device["district"] != actor.district:
            raise CaseError(f"collector: {collector} is {device['district']}'s; {actor.account} sends {actor.district}'s")

    def _effects(self, row: Row, action: Action, to: CaseState, starts: Stage | None,
                 given: Mapping[str, Any], category: Category, now: datetime) -> dict[str, Any]:
        """What the action does to the case's columns besides its state."""
        updates: dict[str, Any] = {}
        if action is Action.RESUME:
            # the handling stage goes on where it stopped: the parked stretch does not count
            clock = self.clock(category, Stage(row["stage"]), row["stage_started"], row["stage_extension_s"],
                               row["stage_paused_s"])
            parked = (now - row["parked_since"] if clock.natural
                      else self.calendar.between(row["parked_since"], now))
            paused_s = row["stage_paused_s"] + parked.total_seconds()
            clock = self.clock(category, clock.stage, clock.started, row["stage_extension_s"], paused_s)
            updates.update(parked_since=None, stage_paused_s=paused_s, stage_due=clock.due, stage_warn=clock.warn_at)
        elif starts is not None:
            updates.update(self._stage_columns(category, starts, now))
        if action is Action.DISPATCH:
            updates["department"] = given["department"]
            updates["verifier"] = None
        elif action is Action.RETURN:
            updates["department"] = None
        elif action is Action.PARK:
            updates["parked_since"] = now
        elif action is Action.VERIFY:
            updates["verifier"] = given["collector"]
        elif action is Action.REQUEST_EXTENSION:
            updates.update(extension_pending=True, extension_hours=float(given["hours"]))
        elif action is Action.REFUSE_EXTENSION:
            updates.update(extension_pending=False, extension_hours=None)
        elif action is Action.APPROVE_EXTENSION:
            extension_s = row["stage_extension_s"] + float(row["extension_hours"]) * 3600.0
            clock = self.clock(category, Stage(row["stage"]), row["stage_started"], extension_s, row["stage_paused_s"])
            updates.update(extension_pending=False, extension_hours=None, stage_extension_s=extension_s,
                           stage_due=clock.due, stage_warn=clock.warn_at)
            # the new deadline is warned about (and found overdue) afresh
            if clock.warn_at > now:
                updates["stage_warned_at"] = None
            if clock.due > now:
                updates["stage_overdue_at"] = None
        elif action is Action.EVALUATE:
            updates["grade"] = given["grade"]
        if to not in OPEN_STATES:
            updates.update(stage=None, extension_pending=False, extension_hours=None, parked_since=None)
            if to is CaseState.CLOSED:
                updates["closed_at"] = now
        return updates

    # --- reading ----------------------------------------------------------------------

    async def get(self, case_id: int, actor: Actor) -> dict[str, Any]:
        """The case with its stage's deadline and the actions ``actor`` may take; raises
        ``CaseNotFound`` for none or one out of the actor's scope."""
        row = await self.store.case(case_id)
        if row is None or not actor.sees(row["district"]):
            raise CaseNotFound(f"no case {case_id}")
        return await self.view(row, actor, detail=True)

    async def list(self, actor: Actor, *, state: str | None = None, category: str | None = None,
                   street: str | None = None, district: str | None = None, source: str | None = None,
                   urgent: bool | None = None, overdue: bool = False, department: str | None = None,
                   escalated: bool | None = None, limit: int = 50, cursor: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
        """Cases in the actor's scope, newest first: (a page, the cursor of the next page
        or None). ``district``: a city account's filter (a district account sees its own)."""
        if state is not None and state not in {s.value for s in CaseState}:
            raise CaseError(f"state must be one of {', '.join(CaseState)}")
        if source is not None and source not in SOURCES:
            raise CaseError(f"source must be one of {', '.join(SOURCES)}")
        if district is not None and actor.district is not None and district != actor.district:
            raise NotAllowed(f"{actor.account} sees {actor.district} only")
        rows = await self.store.cases(district=actor.district or district, state=state, category=category,
                                      street=street, source=source, urgent=urgent,
                                      overdue_at=self.now() if overdue else None, department=department,
                                      escalated=escalated, before_id=cursor, limit=limit + 1)
        page = [await self.view(r, actor) for r in rows[:limit]]
        return page, (rows[limit - 1]["id"] if len(rows) > limit else None)

    async def record(self, case_id: int, event: str, actor: Actor, fields: Mapping[str, Any] | None = None,
                     note: str = "") -> dict[str, Any]:
        """Add a fact to the case's timeline without moving it through the lifecycle (a
        repeated or cleared alarm, a caller ringing again): ``event`` names it (not an
        action of the lifecycle). The case after it; ``CaseNotFound`` for none."""
        if event in {a.value for a in Action} or event in ("create", "warning", "overdue", "escalate"):
            raise CaseError(f"{event!r} is a lifecycle step or a watcher event, not a fact to record")
        if not event or len(event) > 64:
            raise CaseError("an event is a name of 1 to 64 characters")
        now = self.now()

        def decide(locked: Row) -> tuple[dict, dict, AuditEntry | None] | None:
            if not actor.sees(locked["district"]):
                return None
            entry = {"at": now, "actor": actor.account, "role": actor.role, "scope": actor.scope, "action": event,
                     "state": locked["state"], "note": _clip(note), "fields": dict(fields or {})}
            return {"updated_at": now}, entry, None

        _, after = await self.store.change_case(case_id, decide)
        if after is None:
            raise CaseNotFound(f"no case {case_id}")
        view = await self.view(after, actor)
        self._announce("changed", view, action=event)
        return view

    async def open_external(self, source: str) -> dict[str, int]:
        """The open cases of ``source`` by their external id: what an intake needs to
        attach a repeat to the case already open (``alerts.cases.intake``)."""
        return {row["external_id"]: row["id"] for row in await self.store.open_cases_of(source)}

    async def figures(self, actor: Actor) -> dict[str, int]:
        """The big screen's counts, of the actor's district (the city's for city accounts):
        open, overdue, due_soon (past the warning), reported_today, closed_today, "today"
        being the city's day."""
        now = self.now()
        day_start = now.astimezone(self.calendar.zone).replace(hour=0, minute=0, second=0, microsecond=0)
        row = await self.store.case_figures(now, day_start, actor.district)
        assert row is not None  # an aggregate always answers one row
        return {key: int(row[key]) for key in ("open", "overdue", "due_soon", "reported_today", "closed_today")}

    async def timeline(self, case_id: int, actor: Actor) -> builtins.list[dict[str, Any]]:
        row = await self.store.case(case_id)
        if row is None or not actor.sees(row["district"]):
            raise CaseNotFound(f"no case {case_id}")
        return [{"id": e["id"], "at": self._iso(e["at"]), "actor": e["actor"], "role": e["role"], "scope": e["scope"],
                 "action": e["action"], "state": e["state"], "note": e["note"], "fields": _json_fields(e["fields"])}
                for e in await self.store.case_timeline(case_id)]

    async def allowed_actions(self, row: Row, actor: Actor) -> builtins.list[str]:
        """The actions the lifecycle allows from the case's state that ``actor`` may take."""
        memberships = await self.store.departments_of(actor.account) if actor.role != SYSTEM else []
        found = []
        for (state, action) in _TABLE_ORDER:
            if state.value != row["state"]:
                continue
            if action in (Action.APPROVE_EXTENSION, Action.REFUSE_EXTENSION) and not row["extension_pending"]:
                continue
            if action is Action.REQUEST_EXTENSION and row["extension_pending"]:
                continue
            if action is Action.EVALUATE and row["grade"] is not None:
                continue
            if refusal(actor, action, district=row["district"], department=row["department"], verifier=row["verifier"],
                       memberships=memberships) is None:
                found.append(action.value)
        return found

    async def view(self, row: Row, actor: Actor | None = None, *, detail: bool = False) -> dict[str, Any]:
        """A case as JSON: its columns, its state's name, the running stage's clock."""
        now = self.now()
        view: dict[str, Any] = {
            "id": row["id"], "state": row["state"], "state_zh": LABELS_ZH[CaseState(row["state"])],
            "source": row["source"], "external_id": row["external_id"], "category": row["category"],
            "taxonomy_version": row["taxonomy_version"], "urgent": row["urgent"], "description": row["description"],
            "lat": row["lat"], "lon": row["lon"], "grid": row["grid"], "community": row["community"],
            "street": row["street"], "district": row["district"], "department": row["department"],
            "extension_pending": row["extension_pending"], "extension_hours": row["extension_hours"],
            "parked_since": self._iso(row["parked_since"]), "verifier": row["verifier"],
            "acknowledged_at": self._iso(row["acknowledged_at"]), "acknowledged_by": row["acknowledged_by"],
            "escalated": row["escalated_at"] is not None, "escalated_at": self._iso(row["escalated_at"]),
            "grade": row["grade"], "reporter": row["reporter"], "created_at": self._iso(row["created_at"]),
            "updated_at": self._iso(row["updated_at"]), "closed_at": self._iso(row["closed_at"]), "stage": None}
        try:
            category = await self._category(row)
        except (NoTaxonomy, KeyError):
            category = None
        view["category_name"] = category.name if category is not None else None
        if row["stage"] is not None and row["stage_due"] is not None:
            clock = self.stored_clock(row, category)
            view["stage"] = {
                "name": row["stage"], "started": self._iso(row["stage_started"]), "due": self._iso(clock.due),
                "warn_at": self._iso(clock.warn_at), "natural_clock": clock.natural, "provisional": clock.provisional,
                "standing": "parked" if row["parked_since"] is not None else standing(clock, now).value,
                "remaining_s": (None if row["parked_since"] is not None
                                else remaining(clock, now, self.calendar).total_seconds()),
                "extension_s": row["stage_extension_s"], "paused_s": row["stage_paused_s"]}
        if detail and actor is not None:
            view["actions"] = await self.allowed_actions(row, actor)
            if category is not None:
                view["limits"] = {stage.value: str(limit) for stage, limit in category.limits.items()}
                if row["district"] is not None:
                    _, taxonomy = await self.taxonomy(row["taxonomy_version"])
                    view["suggested_department"] = taxonomy.department_for(category, row["district"]).code
        return view

    def stored_clock(self, row: Row, category: Category | None) -> StageClock:
        """The running stage's clock as stored (due and warning as last decided)."""
        natural = category.natural_clock if category is not None else False
        provisional = not natural and self.calendar.provisional(row["stage_started"], row["stage_due"])
        return StageClock(Stage(row["stage"]), row["stage_started"], timedelta(), natural, row["stage_due"],
                          row["stage_warn"], provisional)

    def _announce(self, event: str, view: Mapping[str, Any], **extra: Any) -> None:
        self.changed.set()
        self.changed = trio.Event()
        if self.publish is not None:
            summary = {k: view[k] for k in _LIVE_KEYS}
            self.publish("case", {"event": event, "case": summary, **extra}, view["district"])


_TABLE_ORDER = list(TRANSITIONS)  # the table's order: the order actions are offered in
_LIVE_KEYS = ("id", "state", "state_zh", "source", "category", "category_name", "urgent", "lat", "lon", "grid",
              "street", "district", "department", "escalated", "stage", "updated_at")


def _clip(text: object) -> str:
    return str(text or "")[:MAX_TEXT]


def _checked_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The action's fields, checked one by one; raises ``CaseError`` naming a bad one.
    Only the fields given are returned: what the action needs is the lifecycle's check."""
    known = {"reason", "department", "feedback", "photos", "collector", "hours", "grade", "note"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise CaseError(f"body has unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    given: dict[str, Any] = {}
    for key in ("reason", "department", "feedback", "collector", "note"):
        if key in fields and fields[key] is not None:
            value = fields[key]
            if not isinstance(value, str) or not value.strip():
                raise CaseError(f"{key} must be a non-empty text")
            if len(value.strip()) > MAX_TEXT:  # refused, not cut short without a word
                raise CaseError(f"{key}: at most {MAX_TEXT} characters, got {len(value.strip())}")
            given[key] = value.strip()
    if fields.get("photos") is not None:
        photos = fields["photos"]
        if (not isinstance(photos, list) or len(photos) > 20
                or not all(isinstance(p, str) and 0 < len(p) <= MAX_PHOTO_REF for p in photos)):
            raise CaseError(f"photos must be a list of at most 20 texts of at most {MAX_PHOTO_REF} characters "
                            "(references to the pictures)")
        given["photos"] = photos
    if fields.get("hours") is not None:
        hours = fields["hours"]
        # the range before isfinite: an integer too big for a float compares, but does not convert
        if (isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_EXTENSION_HOURS
                or not math.isfinite(hours)):
            raise CaseError(f"hours must be a number in (0, {MAX_EXTENSION_HOURS:g}]")
        given["hours"] = float(hours)
    if fields.get("grade") is not None:
        if fields["grade"] not in GRADES:
            raise CaseError(f"grade must be one of {', '.join(GRADES)}")
        given["grade"] = fields["grade"]
    return given


def _json_fields(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
