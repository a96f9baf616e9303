"""The running service: store, grid index, pipeline and web edge in one task tree."""

from __future__ import annotations

import functools
import gc
import logging
from dataclasses import dataclass

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from geofence.importer import ImportReport, cover, read_grids, to_feature_collection
from geofence.index import GridIndex
from geofence.placed import Placed
from protocols.epoch import datetime_to_ms
from protocols.model import DeviceClass, Fix
from tracker.app.commands import DeviceCommands, broker_health
from tracker.app.web_edge import web_context
from tracker.clock import Clock, wall_clock_ms
from tracker.config import Settings
from tracker.ingest.jt808_gateway import Jt808Gateway, serve_jt808
from tracker.ingest.pipeline import Pipeline
from tracker.live.patrol import Patrol
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from tracker.storage.schema import check_schema
from tracker.storage.store import Store
from web.app import create_app
from web.context import WebContext

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

    async def stop(self) -> None:
        """Stop the sources, drain the pipeline (nothing received is lost), stop the rest."""
        if self.gateway_scope is not None:
            self.gateway_scope.cancel()  # terminals whose reports were not acknowledged resend them
        await self.pipeline.stop()
        if self.patrol is not None:
            await self.patrol.checkpoint()  # every fix received is observed by now
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


async def _warm_start(store: Store, live: LiveState) -> None:
    """Last known positions from the database, so the map is not empty after a restart."""
    for r in await store.devices():
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


async def serve_web(app, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 2
    config.websocket_ping_interval = 20
    await hypercorn_serve(app, config, task_status=task_status)


async def run_service(settings: Settings, store: Store, *, clock_ms: Clock | None = None, tune: bool = False,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled. ``task_status.started(Running)`` once it is serving.

    ``clock_ms`` (epoch ms; default the wall clock) is the one clock of the whole service:
    receive times of fixes (MQTT and JT/T 808), patrol judgement, sensor watchdogs, and the
    web's defaults ("the last 30 minutes", "today").
    ``tune`` adjusts the process's garbage collector for ingest (``tune_gc``): for the
    process that is the service, not for one that merely embeds it.
    """
    await check_schema(store)
    clock_ms = clock_ms or wall_clock_ms
    metrics = Metrics()
    index = GridIndex(settings.grid.h3_resolution, await store.grid_cells())
    if not index.cells:
        log.warning("no unit grids loaded: every position will be off-grid (import with `tracker grids import FILE`)")
    pipeline = Pipeline(settings, store, index, metrics, clock_ms=clock_ms)
    await _warm_start(store, pipeline.live)
    patrol = await _patrol(settings, store, index, pipeline, metrics, clock_ms) if settings.patrol.enabled else None
    await pipeline.resume()  # alarm state: a recovery after a restart clears what was raised before it
    gateway = Jt808Gateway(settings.jt808, pipeline, clock_ms, pipeline.vehicle_alarms) if settings.jt808.enabled else None
    commands = DeviceCommands(pipeline, gateway)
    if tune:
        tune_gc()
    web = web_context(settings, clock_ms=clock_ms, store=store, index=index, live=pipeline.live, hub=pipeline.hub,
                      metrics=metrics, grids=to_feature_collection(await store.grids()),
                      healthy=functools.partial(broker_health, pipeline), locate=commands.locate, patrol=patrol)
    app = create_app(web)
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(pipeline.run)
            if patrol is not None:
                await nursery.start(patrol.run)
            jt808_port = None
            gateway_scope = trio.CancelScope()
            if gateway is not None:
                jt808_port = await nursery.start(_in_scope, gateway_scope,
                                                 functools.partial(serve_jt808, gateway=gateway), gateway.settings, pipeline)
                log.info("JT/T 808 gateway listening on %s:%d", settings.jt808.host, jt808_port)
            bound = await nursery.start(serve_web, app, settings.web.host, settings.web.port)
            url = bound[0] if bound else f"http://{settings.web.host}:{settings.web.port}"
            log.info("serving the command map at %s", url)
            task_status.started(Running(pipeline, web, url, scope, jt808_port, gateway_scope, patrol, gateway))


async def _patrol(settings: Settings, store: Store, index: GridIndex, pipeline: Pipeline, metrics: Metrics,
                  clock_ms: Clock) -> Patrol:
    """The patrol engine, its plan loaded and recent fixes replayed, fed by the pipeline."""
    patrol = Patrol(settings, store, index.cells, pipeline.hub, metrics, clock_ms)
    await patrol.load()
    pipeline.fix_listeners.append(patrol.observe_slice)
    return patrol


async def _in_scope(scope: trio.CancelScope, fn, *args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with scope:
        await fn(*args, task_status=task_status)
