"""The running service: store, grid index, pipeline and web edge in one task tree."""

from __future__ import annotations

import functools
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import trio
from starlette.responses import JSONResponse, PlainTextResponse

from geofence.importer import ImportReport, cover, read_grids, to_feature_collection
from geofence.index import GridIndex
from geofence.placed import Placed
from protocols.epoch import datetime_to_ms
from protocols.model import DeviceClass, Fix
from tracker.app.commands import DeviceCommands, service_health
from tracker.app.open311_edge import EngineOpen311
from tracker.app.web_edge import web_context
from tracker.app.web_server import serve_web, web_config
from tracker.cases.dispatch import Verification
from tracker.cases.engine import CaseEngine
from tracker.cases.handset import HandsetReports
from tracker.cases.intake_task import AlarmIntake
from tracker.cases.roles import SERVICE
from tracker.cases.watch import CaseWatch
from tracker.clock import Clock, wall_clock_ms
from tracker.config import Settings, Unregistered
from tracker.ingest.jt808_gateway import Jt808Gateway, serve_jt808
from tracker.ingest.pipeline import Pipeline
from tracker.live.patrol import Patrol
from tracker.live.runs import ServiceRuns
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from tracker.registry.directory import Registry
from tracker.registry.provisioning import Provisioning, control_account
from tracker.storage.retention import run_retention
from tracker.storage.retry import DatabaseState
from tracker.storage.schema import check_schema
from tracker.storage.store import Store, open_store
from web.app import create_app
from web.context import WebContext
from web.policy import bearer_matches

log = logging.getLogger(__name__)


@dataclass
class Running:
    pipeline: Pipeline
    web: WebContext
    url: str
    cancel_scope: trio.CancelScope
    jt808_port: int | None = None
    gateway_scope: trio.CancelScope | None = None
    patrol: Patrol | None = None
    gateway: Jt808Gateway | None = None
    registry: Registry | None = None
    runs: ServiceRuns | None = None
    cases: CaseEngine | None = None  # the case engine: sources open and move cases through it
    verification: Verification | None = None  # on-site verification: candidates, tasks, arrivals

    async def stop(self) -> None:
        """Stop the sources, drain the pipeline (nothing received is lost), stop the rest."""
        if self.gateway_scope is not None:
            self.gateway_scope.cancel()  # terminals whose reports were not acknowledged resend them
        await self.pipeline.stop()
        if self.patrol is not None:
            await self.patrol.checkpoint()  # every fix received is observed by now
        if self.runs is not None:
            await self.runs.stop()
        self.cancel_scope.cancel()


async def import_grids(store: Store, path: str, resolution: int, crs: str | None = None, progress=None) -> ImportReport:
    """Validate a grid file, compute its H3 cover and write both: the one import path."""
    report = await trio.to_thread.run_sync(lambda: read_grids(path, crs, progress))
    if report.errors:
        return report
    owner, problems = cover(report.grids, resolution)
    report.cover = owner
    report.warnings.extend(problems)
    streets = sorted({(g.street, g.district, g.street_name) for g in report.grids})
    communities = sorted({(g.community, g.street, g.community_name) for g in report.grids})
    grids = [(g.code, g.district, g.street, g.community, g.name, g.geometry, g.source_geometry, g.source_crs, g.area_m2) for g in report.grids]
    cells = [(cell, code, resolution) for cell, code in owner.items()]
    await store.import_grids(streets, communities, grids, cells)
    return report


async def _warm_start(store: Store, live: LiveState, max_devices: int) -> None:
    """Last known positions from the database, so the map is not empty after a restart
    (of the devices heard from last, as many as live state holds)."""
    for r in await store.recently_heard_devices(max_devices):
        if r["last_t"] is None:
            continue
        fix = Fix(r["id"], DeviceClass(r["class"]), r["district"], datetime_to_ms(r["last_t"]), r["last_lat"], r["last_lon"],
                  datetime_to_ms(r["last_rx"]), r["last_acc"], r["last_spd"], r["last_hdg"], None, r["last_bat"])
        live.devices[fix.device] = Placed(fix, r["last_cell"], r["last_grid"], False)


def tune_gc() -> None:
    """Ingest allocates a few small objects per fix, most short-lived and acyclic. With
    CPython's default thresholds a backlog of hundreds of thousands of rows in flight
    makes full collections both frequent and long (seconds of stall, measured in
    bench.ingest). Collect the young generation less often, and freeze what start-up
    built so collections never walk it again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)




class Front:
    """The ASGI application the web server runs from its first moment. Until the service
    is ready it answers /healthz (503, with the reason: usually the database it waits
    for) and /metrics, and 503 to everything else; then it hands every request to the
    full web application."""

    def __init__(self, healthy: Callable[[], tuple[bool, str]], metrics: Metrics, metrics_token: str = "") -> None:
        self.healthy = healthy
        self.metrics = metrics
        self.metrics_token = metrics_token  # before the accounts can be read, /metrics answers this token only
        self.app: Any = None  # the web application, once the service is ready
        self.url = ""

    async def __call__(self, scope, receive, send) -> None:
        if self.app is not None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "lifespan":  # one call for the server's whole life, whatever app comes later
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1013})  # try again later
        else:
            response: JSONResponse | PlainTextResponse
            if scope["path"] == "/metrics" and self.metrics_token and bearer_matches(scope, self.metrics_token):
                response = PlainTextResponse(self.metrics.render(), media_type="text/plain; version=0.0.4")
            elif scope["path"] == "/metrics":
                response = JSONResponse({"error": "authentication required: the [auth] metrics_token while starting"},
                                        status_code=401)
            else:
                _, detail = self.healthy()
                response = JSONResponse({"status": "starting", "detail": detail}, status_code=503)
            await response(scope, receive, send)


@dataclass
class Serving:
    """A service started with ``serve``: its address at once, the rest once it is ready."""

    url: str
    database: DatabaseState
    ready: trio.Event = field(default_factory=trio.Event)
    running: Running | None = None


def database_state(settings: Settings, metrics: Metrics, clock_ms: Clock) -> DatabaseState:
    d = settings.database
    return DatabaseState(metrics, clock_ms, first_s=d.retry_first_s, max_s=d.retry_max_s)


async def serve(settings: Settings, *, clock_ms: Clock | None = None, tune: bool = False,
                task_status=trio.TASK_STATUS_IGNORED) -> None:
    """The service as `tracker serve` runs it: the web server and health first, then the
    database (waited for as long as it takes), then everything that needs it.
    ``task_status.started(Serving)`` as soon as HTTP is up; ``Serving.ready`` is set once
    the whole service runs."""
    clock_ms = clock_ms or wall_clock_ms
    metrics = Metrics()
    database = database_state(settings, metrics, clock_ms)
    max_lag_s = settings.health.max_persist_lag_s
    front = Front(functools.partial(service_health, database, None, max_lag_s), metrics, settings.auth.metrics_token)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(functools.partial(serve_web, send_stall_s=settings.web.send_stall_s), front,
                                    web_config(settings.web.host, settings.web.port), metrics)
        front.url = bound[0] if bound else f"http://{settings.web.host}:{settings.web.port}"
        log.debug("serving health at %s/healthz; the rest once the database answers", front.url)
        serving = Serving(front.url, database)
        task_status.started(serving)
        d = settings.database
        async with open_store(d.dsn, d.pool_min, d.pool_max, command_timeout_s=d.command_timeout_s, retry=database) as store:
            async with trio.open_nursery() as inner:
                serving.running = await inner.start(functools.partial(
                    run_service, settings, store, clock_ms=clock_ms, tune=tune, metrics=metrics, database=database, front=front))
                serving.ready.set()
        nursery.cancel_scope.cancel()


async def run_service(settings: Settings, store: Store, *, clock_ms: Clock | None = None, tune: bool = False,
                      metrics: Metrics | None = None, database: DatabaseState | None = None, front: Front | None = None,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled. ``task_status.started(Running)`` once it is serving.

    ``clock_ms`` (epoch ms; default the wall clock) is the one clock of the whole service:
    receive times of fixes (MQTT and JT/T 808), patrol judgement, sensor watchdogs, and the
    web's defaults ("the last 30 minutes", "today").
    ``tune`` adjusts the process's garbage collector for ingest (``tune_gc``): for the
    process that is the service, not for one that merely embeds it.
    ``front``: the web server already runs (see ``serve``); it gets the web application
    once everything is ready. Without, the web server starts last.

    Every read below waits out a database outage (the store's retry), and ingest starts
    only after them: nothing is acknowledged to a source before the store is ready.
    """
    clock_ms = clock_ms or wall_clock_ms
    metrics = metrics or Metrics()
    if database is None:
        database = database_state(settings, metrics, clock_ms)
        store.retry = database
        database.reconnect = store.reconnect
    await database.retrying("check_schema", check_schema, store)
    index = GridIndex(settings.grid.h3_resolution, await store.grid_cells())
    if not index.cells:
        log.warning("no unit grids loaded: every position will be off-grid (import with `tracker grids import FILE`)")
    registry = Registry(accept_unregistered=settings.registry.unregistered is Unregistered.ACCEPT,
                        jt808_district=settings.jt808.district)
    await database.retrying("registry", registry.load, store)
    pipeline = Pipeline(settings, store, index, metrics, clock_ms=clock_ms, gate=registry.refusal,
                        component_of=registry.component)
    pipeline.live.names = registry.names  # the map calls registered devices by their names
    await _warm_start(store, pipeline.live, settings.pipeline.max_devices)
    runs = ServiceRuns(store, clock_ms)
    await database.retrying("service_runs", runs.start)
    patrol = await _patrol(settings, store, index, pipeline, metrics, clock_ms) if settings.patrol.enabled else None
    if patrol is not None:
        patrol.runs = runs
    await pipeline.resume()  # alarm state: a recovery after a restart clears what was raised before it
    gateway = (Jt808Gateway(settings.jt808, pipeline, clock_ms, pipeline.vehicle_alarms, terminals=registry.terminal)
               if settings.jt808.enabled else None)
    commands = DeviceCommands(pipeline, gateway)
    cases = await _cases(settings, store, index, pipeline.hub.publish_event, clock_ms) if settings.cases.enabled else None
    intake, verification = (await _case_sources(settings, cases, pipeline, metrics, commands, patrol)
                            if cases is not None else (None, None))
    if tune:
        tune_gc()
    healthy = functools.partial(service_health, database, pipeline, settings.health.max_persist_lag_s)
    web = web_context(settings, clock_ms=clock_ms, store=store, index=index, live=pipeline.live, hub=pipeline.hub,
                      metrics=metrics, grids=to_feature_collection(await store.grids()),
                      healthy=healthy, locate=commands.locate, patrol=patrol,
                      provisioning=Provisioning(store, control_account(settings), registry), cases=cases,
                      verification=verification,
                      open311=EngineOpen311(cases) if cases is not None else None)
    app = create_app(web)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(pipeline.run)
            await nursery.start(runs.heartbeats)
            await nursery.start(registry.watch, store, settings.registry.refresh_s)
            await nursery.start(run_retention, store, settings.retention, clock_ms, metrics)
            if patrol is not None:
                await nursery.start(patrol.run)
            if cases is not None:
                await nursery.start(functools.partial(CaseWatch(cases, max_sleep_s=settings.cases.watch_max_s).run))
            if intake is not None and verification is not None:
                await nursery.start(intake.run)
                await nursery.start(verification.run)
            nursery.start_soon(_watch_database, store, database, settings.health.database_probe_s)
            jt808_port = None
            gateway_scope = trio.CancelScope()
            if gateway is not None:
                jt808_port = await nursery.start(_in_scope, gateway_scope,
                                                 functools.partial(serve_jt808, gateway=gateway), gateway.settings, pipeline)
                log.info("JT/T 808 gateway listening on %s:%d", settings.jt808.host, jt808_port)
            if front is None:
                bound = await nursery.start(functools.partial(serve_web, send_stall_s=settings.web.send_stall_s), app,
                                            web_config(settings.web.host, settings.web.port), metrics)
                url = bound[0] if bound else f"http://{settings.web.host}:{settings.web.port}"
            else:
                front.healthy, front.app, url = healthy, app, front.url
            log.info("serving the command map at %s", url)
            task_status.started(Running(pipeline, web, url, scope, jt808_port, gateway_scope, patrol, gateway, registry, runs,
                                        cases, verification))


async def _watch_database(store: Store, database: DatabaseState, every_s: float) -> None:
    """Ask the database for a sign of life now and then, so that health notices an outage
    (and its end) while nothing is written."""
    while True:
        await trio.sleep(every_s)
        await database.retrying("probe", store.ping)


async def _patrol(settings: Settings, store: Store, index: GridIndex, pipeline: Pipeline, metrics: Metrics,
                  clock_ms: Clock) -> Patrol:
    """The patrol engine, its plan loaded and recent fixes replayed, fed by the pipeline."""
    patrol = Patrol(settings, store, index.cells, pipeline.hub, metrics, clock_ms)
    await patrol.load()
    pipeline.fix_listeners.append(patrol.observe_slice)
    return patrol


async def _cases(settings: Settings, store: Store, index: GridIndex, publish: Callable[[str, dict, str | None], None],
                 clock_ms: Clock) -> CaseEngine:
    """The case engine; the configured taxonomy file loaded when the database holds none."""
    c = settings.cases
    engine = CaseEngine(store, c.calendar(), clock_ms=clock_ms, index=index, publish=publish, warn_share=c.warn_share,
                        escalate_after=timedelta(minutes=c.escalate_after_min))
    if await store.taxonomy() is None and c.taxonomy:
        text = await trio.Path(c.taxonomy).read_text(encoding="utf-8")
        version, taxonomy, _ = await engine.load_taxonomy(text, SERVICE)
        log.info("taxonomy %s of %s loaded from %s as version %d%s", taxonomy.version, taxonomy.city, c.taxonomy,
                 version, " (an example, not a city's adopted standard)" if taxonomy.example else "")
    elif await store.taxonomy() is None:
        log.info("no case taxonomy loaded yet: no case can be opened (tracker taxonomy load FILE)")
    return engine


async def _case_sources(settings: Settings, engine: CaseEngine, pipeline: Pipeline, metrics: Metrics,
                        commands: DeviceCommands, patrol: Patrol | None) -> tuple[AlarmIntake, Verification]:
    """The sources of cases wired to the pipeline: the alarm outbox's consumer (woken when
    alarms are committed), handset reports, and the verification tasks following the
    engine's changes and the collectors' fixes."""
    c = settings.cases
    intake = AlarmIntake(engine, c.rules(), metrics, poll_s=c.intake_poll_s, batch=c.intake_batch)
    pipeline.alarm_listeners.append(intake.wake)
    pipeline.report_sink = HandsetReports(engine, metrics)
    verification = Verification(engine, pipeline.live, commands.publish, radius_m=c.arrival_radius_m,
                                owntracks=commands.owntracks, plan=(lambda: patrol.plan) if patrol is not None else None)
    await verification.load()
    hub_publish = engine.publish

    def publish(kind: str, payload: dict, district: str | None) -> None:
        verification.on_case(kind, payload, district)
        if hub_publish is not None:
            hub_publish(kind, payload, district)

    engine.publish = publish
    pipeline.fix_listeners.append(verification.observe)
    return intake, verification


async def _in_scope(scope: trio.CancelScope, fn, *args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with scope:
        await fn(*args, task_status=task_status)
