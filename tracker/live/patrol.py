"""Patrol coverage in the running service: the plan, the engine fed by the pipeline, and
the watchdog that turns coverage into alerts for supervisors.

The engine (geofence.coverage, alerts.patrol) is pure and driven by fix time;
this module owns its I/O: the plan and checkpoints in PostgreSQL, alert episodes written
to ``patrol_alerts`` (the outbox) before they are streamed on /ws.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import trio

from alerts.messages import Catalogue, configured_catalogue, default_catalogue
from alerts.patrol import Alert, AlertChange, PatrolState, evaluate
from geofence.coverage import strictly_increasing
from geofence.placed import Placed, PlacedSlice
from geofence.plan import PatrolPlan
from geofence.reports import ALWAYS, Periods, coverage_report, coverage_summary, day_bounds, slot_figure
from geofence.territory import CoverageRule, CoverageRules
from protocols.epoch import datetime_to_ms, ms_to_datetime
from protocols.model import DeviceClass, Fix
from tracker.bounds import excess, least_recent
from tracker.clock import wall_clock_ms
from tracker.config import PatrolSettings, PipelineSettings, Settings
from tracker.live.fanout import Hub
from tracker.live.runs import ServiceRuns
from tracker.metrics import Metrics
from tracker.storage.store import Store

log = logging.getLogger(__name__)
_HOUR = 3_600_000
# Fixes the patrol listener gathers before recording them (unless coverage is read
# sooner): about 110 per collector at a city's scale, so that each collector's run costs
# one step (bench.geofence measures it), and some 20 ms of work at a time.
ABSORB_FIXES = 16384
# Coverage holds each new fix whole (about 500 B) until the watchdog compacts it after its
# round; at a high rate it compacts sooner, once this many have come since.
COMPACT_FIXES = 262_144
RESTARTED = "service restarted without a checkpoint; judged afresh"


def default_rule(p: PatrolSettings) -> CoverageRule:
    return CoverageRule(
        min_cell_share=p.min_cell_share, passes_required=p.passes_required, pass_gap_min=p.pass_gap_min,
        max_unvisited_min=p.max_unvisited_min or None, max_acc_m=p.max_acc_m, offline_min=p.offline_min,
        off_grid_min=p.off_grid_min, stationary_min=p.stationary_min, stationary_radius_m=p.stationary_radius_m,
        battery_low_pct=p.battery_low_pct or None, warning_lead_min=p.warning_lead_min or None, not_started_min=p.not_started_min,
    )


async def coverage_report_from_store(store: Store, plan: PatrolPlan, cover: dict[int, str], rules: CoverageRules, day,
                                    now_ms: int, district: str, scope: str | None = None,
                                    runs: ServiceRuns | None = None) -> dict:
    """``district``: the fixes' (the service's); ``scope``: the report of that district's
    collectors and grids only (None: the whole city's). Only the fixes of the collectors
    in scope are read."""
    plan = plan.scoped(scope)
    start, end = day_bounds(plan, day)
    collectors = sorted({s.collector for s in plan.shifts} | {getattr(e, "collector", None) or "" for e in plan.exceptions} - {""})
    rows = await store.pings_of(collectors, ms_to_datetime(start), ms_to_datetime(end))
    fixes = [Placed(Fix(r["device"], DeviceClass.COLLECTOR, district, datetime_to_ms(r["t"]), r["lat"], r["lon"], datetime_to_ms(r["rx"]),
                        r["acc"], None, None, None, r["bat"]), r["cell"], r["grid"], False) for r in rows]
    periods: Periods = await observed_periods(store, runs, start, end)
    return await trio.to_thread.run_sync(coverage_report, plan, cover, rules, fixes, day, now_ms, scope, periods)


async def observed_periods(store: Store, runs: ServiceRuns | None, start_ms: int, end_ms: int) -> Periods:
    """When the service observed between ``start_ms`` and ``end_ms``: the recorded runs
    (``runs``: this one's up to now as well)."""
    if runs is not None:
        return await runs.periods(start_ms, end_ms)
    stored = await store.runs_between(ms_to_datetime(start_ms), ms_to_datetime(end_ms))
    return [(datetime_to_ms(s), datetime_to_ms(e)) for s, e in stored]


def alert_json(alert: Alert, alert_id: int | None = None, catalogue: Catalogue | None = None) -> dict:
    """``text``: Chinese; ``texts``: every language of the catalogue."""
    catalogue = catalogue or default_catalogue()
    texts = catalogue.texts(alert.kind, alert.detail, alert.grid, alert.resolution)
    return {
        "id": alert_id, "kind": alert.kind.value, "collector": alert.collector, "slot_id": alert.slot.id, "area": alert.slot.area,
        "grid": alert.grid, "raised_at": alert.raised_at_ms, "updated_at": alert.updated_at_ms, "resolved_at": alert.resolved_at_ms,
        "resolution": alert.resolution.value if alert.resolution is not None else None, "detail": alert.detail, "text": texts["zh"],
        "texts": texts, "severity": catalogue.severity(alert.kind).value,
    }


class Patrol:
    def __init__(self, settings: Settings, store: Store, cover: dict[int, str], hub: Hub, metrics: Metrics,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.cover = cover
        self.hub = hub
        self.metrics = metrics
        self.clock_ms = clock_ms or wall_clock_ms
        self.catalogue = configured_catalogue(settings.patrol.alert_severity) if settings is not None else default_catalogue()
        self.runs: ServiceRuns | None = None  # None: every time counts as observed (tools, tests of the engine)
        self._periods: Periods = ALWAYS  # the recent observed periods, for the live view (refreshed by run)
        self.plan: PatrolPlan | None = None
        self.plan_version = 0
        self.rules: CoverageRules | None = None
        self.state: PatrolState | None = None
        # Grids' last visits: while coverage is on, per collector, so that a collector's run
        # of fixes in time order updates them in one step (absorb groups fixes by collector
        # anyway); while no plan is loaded nothing is grouped, and one dict for all
        # collectors takes them fix by fix. last_visit merges the two.
        self._visits: dict[str, dict[str | None, int]] = {}  # collector → unit grid → newest fix in it
        self._newest: dict[str, int] = {}  # collector → newest fix time in _visits
        self._grid_visits: dict[str, int] = {}  # unit grid → newest collector fix in it
        self.max_devices = (settings.pipeline if settings is not None else PipelineSettings()).max_devices
        self._pending: list[PlacedSlice] = []  # fixes not yet absorbed
        self._pending_fixes = 0
        self._whole = 0  # fixes recorded since coverage was last compacted
        self._wake = trio.Event()
        self._grid_codes: dict[str | None, list[str]] | None = None  # see grid_codes
        metrics.gauge("gridwatch_patrol_open_alerts", lambda: len(self.state.open_alerts) if self.state else 0, "Open patrol alerts")

    # --- plan -------------------------------------------------------------------------

    async def load(self) -> None:
        """The newest stored plan, the checkpoint, and a replay of recent fixes."""
        latest = await self.store.latest_plan()
        if latest is None:
            log.info("no patrol plan stored: coverage is off until one is imported (tracker patrol import)")
            return
        version, doc = latest
        plan = PatrolPlan.from_dict(doc)
        self._install(plan, version)
        checkpoint = await self.store.load_checkpoint()
        restored = False
        if checkpoint is not None and checkpoint.get("plan_version") == version:
            try:
                self.state = PatrolState.restore(checkpoint["state"], plan.schedule(), plan.territory(self.cover))
                restored = True
            except (KeyError, ValueError) as exc:
                log.warning("patrol checkpoint not usable (%s): rebuilding from the database", exc)
        if not restored:
            # episodes left open by an engine whose state is lost would never be resolved:
            # close them, and let the rebuilt engine raise afresh whatever still holds
            closed = await self.store.close_open_patrol_alerts(ms_to_datetime(self.clock_ms()), RESTARTED)
            if closed:
                log.warning("patrol: no usable checkpoint; closed %d open alert(s), judging afresh", closed)
        await self._replay(self.clock_ms() - int(self.settings.patrol.replay_hours * _HOUR))

    def _install(self, plan: PatrolPlan, version: int) -> None:
        territory = plan.territory(self.cover)
        schedule = plan.schedule()
        self.rules = plan.rules(default_rule(self.settings.patrol))
        if self.state is None:
            self.state = PatrolState(schedule, territory)
        else:
            self.state.coverage.reconfigure(schedule=schedule, territory=territory)
        self.plan, self.plan_version = plan, version

    async def replace_plan(self, doc: dict, note: str = "") -> int:
        """Validate and store a new plan, then apply it to the running engine."""
        plan = PatrolPlan.from_dict(doc)
        plan.territory(self.cover)  # refuse areas naming grids that are not imported
        version = await self.store.save_plan(plan.to_dict(), note)
        fresh = self.state is None
        self._install(plan, version)
        if fresh:
            await self._replay(self.clock_ms() - int(self.settings.patrol.replay_hours * _HOUR))
        self._wake.set()
        return version

    async def _replay(self, since_ms: int) -> None:
        plan = self.plan
        if plan is None:
            return  # replays follow _install, which sets the plan
        named = {getattr(e, "collector", None) for e in plan.exceptions} | {getattr(e, "taker", None) for e in plan.exceptions}
        collectors = {s.collector for s in plan.shifts} | {c for c in named if c is not None}
        if not collectors:
            return
        rows = await self.store.pings_retried(sorted(collectors), ms_to_datetime(since_ms), ms_to_datetime(self.clock_ms() + _HOUR))
        district = self.settings.grid.district
        fixes = [Placed(Fix(r["device"], DeviceClass.COLLECTOR, district, datetime_to_ms(r["t"]), r["lat"], r["lon"],
                            datetime_to_ms(r["rx"]), r["acc"], None, None, None, r["bat"]), r["cell"], r["grid"], False)
                 for r in rows]
        self.observe(fixes)
        self.absorb()
        log.info("patrol: replayed %d fixes of %d collectors", len(fixes), len(collectors))

    # --- feeding and judging ------------------------------------------------------------

    def observe(self, placed: list[Placed]) -> None:
        """Placed fixes from elsewhere than the pipeline (the replay): the same path."""
        self.observe_slice(PlacedSlice.of(placed))

    def observe_slice(self, part: PlacedSlice) -> None:
        """The pipeline's fix listener: every placed fix, late ones too.

        Fixes are taken in bulk: they wait here until ABSORB_FIXES have come, or until
        anything reads coverage (the watchdog, the live view, a checkpoint), so that
        each collector's run of fixes is recorded in one step.
        """
        self._pending.append(part)
        self._pending_fixes += len(part.fixes)
        if self._pending_fixes >= ABSORB_FIXES:
            self.absorb()
        if part.late:
            self._wake.set()  # a late batch may disprove open alerts: judge now

    def absorb(self) -> None:
        """Record the fixes waiting: collectors' visits to grids, then the coverage engine."""
        pending, self._pending, self._pending_fixes = self._pending, [], 0
        collector = DeviceClass.COLLECTOR
        if self.state is None:
            # no plan, no coverage: grids' last visits alone, one dict for all collectors
            last, last_at = self._grid_visits, self._grid_visits.get
            for part in pending:
                for fix, grid in zip(part.fixes, part.grids, strict=True):  # once per fix
                    if grid is not None and fix.device_class is collector and fix.t_ms > last_at(grid, 0):
                        last[grid] = fix.t_ms
            return
        groups: dict[str, list[tuple[Fix, int, str | None]]] = {}
        group_of = groups.get
        for part in pending:
            fixes = part.fixes
            for fix, sample in zip(fixes, zip(fixes, part.cells, part.grids, strict=True), strict=True):  # once per fix
                if fix.device_class is not collector:
                    continue
                run = group_of(fix.device)
                if run is None:
                    groups[fix.device] = [sample]
                else:
                    run.append(sample)
        visits, newest = self._visits, self._newest
        times_of = {}
        for who, run in groups.items():
            seen = visits.get(who)
            if seen is None:
                seen = visits[who] = {}
            before = newest.get(who)
            times = times_of[who] = [sample[0].t_ms for sample in run]
            if (before is None or before < times[0]) and strictly_increasing(times):
                # newer than every fix before, in time order: the later visit wins
                seen.update(zip(map(itemgetter(2), run), times, strict=True))
                newest[who] = times[-1]
            else:
                for sample, t in zip(run, times, strict=True):
                    if t > seen.get(sample[2], 0):
                        seen[sample[2]] = t
                newest[who] = max(times) if before is None else max(before, *times)
        if len(visits) > self.max_devices:
            self._forget_collectors()
        self._whole += self.state.coverage.observe_groups(groups, times_of)
        if self._whole >= COMPACT_FIXES:
            self.compact()

    def _forget_collectors(self) -> None:
        """Visits of at most ``[pipeline] max_devices`` collectors, those heard least
        lately forgotten: their visits are folded into the grids' last visits first, so
        ``last_visit`` stays as it was."""
        visits, newest, grids = self._visits, self._newest, self._grid_visits
        gone = least_recent(visits, excess(len(visits), self.max_devices), lambda who: newest.get(who, -1))
        for who in gone:
            newest.pop(who, None)
            for grid, t in visits.pop(who).items():
                if grid is not None and t > grids.get(grid, 0):
                    grids[grid] = t
        self.metrics.inc("gridwatch_devices_evicted_total", len(gone), table="patrol_visits")

    def compact(self) -> None:
        """Let coverage move the fixes it holds whole into its compact columns."""
        if self.state is not None:
            self.state.coverage.compact()
        self._whole = 0

    @property
    def last_visit(self) -> dict[str, int]:
        """Unit grid → newest collector fix in it."""
        self.absorb()
        out = dict(self._grid_visits)
        for seen in self._visits.values():
            for grid, t in seen.items():
                if grid is not None and t > out.get(grid, 0):
                    out[grid] = t
        return out

    async def evaluate_now(self) -> list[AlertChange]:
        self.absorb()
        if self.state is None or self.rules is None:  # both come with a plan
            return []
        now = self.clock_ms()
        changes = evaluate(self.state, now, self.rules)
        # judged: the fixes it kept whole since the last round go into compact columns
        self.compact()
        if changes:
            await self._record(changes)
        return changes

    async def _record(self, changes: list[AlertChange]) -> None:
        rows = []
        for change in changes:
            a = change.alert
            rows.append((a.kind.value, a.collector, a.slot.id, a.slot.area, a.grid, ms_to_datetime(a.slot.start_ms),
                         ms_to_datetime(a.slot.end_ms), ms_to_datetime(a.raised_at_ms), ms_to_datetime(a.updated_at_ms),
                         ms_to_datetime(a.resolved_at_ms) if a.resolved_at_ms is not None else None,
                         a.resolution.value if a.resolution is not None else None, a.detail,
                         self.catalogue.text(a.kind, a.detail, a.grid, a.resolution)))
        await self.store.record_patrol_alerts(rows)  # the outbox first, then the stream
        ids = await self.store.patrol_alert_ids([(r[0], r[1], r[2], r[4], r[7]) for r in rows])
        for change, alert_id in zip(changes, ids, strict=True):
            self.metrics.inc("gridwatch_patrol_alerts_total", kind=change.alert.kind.value, change=change.change.value)
            self.hub.publish_event("alert", {"change": change.change.value, "alert": alert_json(change.alert, alert_id, self.catalogue)},
                                   self.alert_district(change.alert))

    def alert_district(self, alert: Alert) -> str | None:
        """As the store reads it back: the grid's district, else the area's."""
        if alert.grid is not None:
            return alert.grid[:6]
        return self.plan.area_district(alert.slot.area) if self.plan is not None else None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        p = self.settings.patrol
        await self._refresh_periods()
        task_status.started()
        next_checkpoint = trio.current_time() + p.checkpoint_s
        while True:
            with trio.move_on_after(p.evaluate_s):
                await self._wake.wait()
            self._wake = trio.Event()
            await self._follow_plan()
            await self._refresh_periods()
            await self.evaluate_now()
            if self.state is not None and trio.current_time() >= next_checkpoint:
                await self.checkpoint()
                next_checkpoint = trio.current_time() + p.checkpoint_s

    async def _refresh_periods(self) -> None:
        if self.runs is not None:
            now = self.clock_ms()
            self._periods = await self.runs.periods(now - 2 * 24 * _HOUR, now + 1)

    async def _follow_plan(self) -> None:
        """A plan changed elsewhere (CLI, another instance's API) takes effect here too."""
        latest = await self.store.latest_plan()
        if latest is not None and latest[0] != self.plan_version:
            fresh = self.state is None
            self._install(PatrolPlan.from_dict(latest[1]), latest[0])
            if fresh:
                await self._replay(self.clock_ms() - int(self.settings.patrol.replay_hours * _HOUR))
            log.info("patrol plan version %d in effect", latest[0])

    async def report(self, day, district: str | None = None) -> dict:
        """Coverage report of one local day, from the database: of ``district``'s
        collectors and grids only, when given."""
        if self.plan is None or self.rules is None:
            return {"date": day.isoformat(), "summary": coverage_summary([]), "collectors": [], "grids": [], "communities": [],
                    "streets": [], "timeline": []}
        return await coverage_report_from_store(self.store, self.plan, self.cover, self.rules, day, self.clock_ms(),
                                                self.settings.grid.district, district, self.runs)

    async def checkpoint(self) -> None:
        self.absorb()
        if self.state is None:
            return
        self.state.prune(self.clock_ms() - int(self.settings.patrol.retention_hours * _HOUR))
        await self.store.save_checkpoint({"plan_version": self.plan_version, "state": self.state.checkpoint()})

    # --- views ----------------------------------------------------------------------

    def grid_codes(self, district: str | None = None) -> list[str]:
        """The unit grids of the cover, sorted; of ``district`` only when given. Grouped
        once: the cover does not change while the service runs."""
        if self._grid_codes is None:
            codes = sorted(set(self.cover.values()))
            self._grid_codes = {None: codes}
            for code in codes:
                self._grid_codes.setdefault(code[:6], []).append(code)
        return self._grid_codes.get(district, [])

    def live(self, district: str | None = None) -> dict:
        """Last visit of every grid, the unvisited grids of slots in progress, their
        progress: of ``district``'s grids and areas only, when given."""
        self.absorb()
        now = self.clock_ms()
        last_visit = self.last_visit
        out: dict[str, Any]
        out = {"now": now, "grids": {code: last_visit.get(code) for code in self.grid_codes(district)},
               "unvisited": [], "slots": []}
        if self.state is None or self.rules is None or self.plan is None:
            return out
        schedule = self.state.coverage.schedule
        areas = None if district is None else self.plan.district_areas(district)
        unvisited: set[str] = set()
        for slot in schedule.slots_overlapping(now, now + 1):
            if areas is not None and slot.area not in areas:
                continue
            rule = self.rules.for_area(slot.area)
            coverage = self.state.coverage.slot_coverage(slot, rule, now)
            unvisited.update(g.grid for g in coverage.grids if g.visits == 0)
            out["slots"].append({"slot_id": slot.id, "collector": slot.collector, "area": slot.area, "start": slot.start_ms,
                                 "end": slot.end_ms, **slot_figure(self.state.coverage, slot, rule, now, self._periods)})
        # the day's figure, computed as the day report computes it (geofence.reports)
        today = [slot_figure(self.state.coverage, slot, self.rules.for_area(slot.area), now, self._periods)
                 for slot in schedule.slots_on(schedule.local_date(now))
                 if areas is None or slot.area in areas]
        out["today"] = coverage_summary(today)
        out["unvisited"] = sorted(unvisited)
        return out
