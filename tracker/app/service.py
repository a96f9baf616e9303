"""The running service: store, grid index, pipeline and web edge in one task tree."""

from __future__ import annotations

import functools
import gc
import json
import logging
from dataclasses import dataclass

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from geofence.importer import ImportReport, cover, read_grids
from geofence.index import GridIndex
from protocols.owntracks import encode_report_location
from tracker.clock import wall_clock_ms
from tracker.config import Settings
from tracker.ingest.jt808_gateway import Jt808Gateway, serve_jt808
from tracker.live.state import LiveState
from tracker.metrics import Metrics
from protocols.model import DeviceClass, Fix
from geofence.placed import Placed
from tracker.live.patrol import Patrol
from tracker.ingest.pipeline import Pipeline
from tracker.storage.store import Store, datetime_to_ms
from web.app import WebContext, create_app

log = logging.getLogger(__name__)


class SchemaError(RuntimeError):
    """The database schema is older than this code: run `tracker db migrate`."""


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


async def run_service(settings: Settings, store: Store, *, clock_ms=None, tune: bool = False,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled. ``task_status.started(Running)`` once it is serving.

    ``clock_ms`` (epoch ms; default the wall clock) is the one clock of the whole service:
    receive times of fixes (MQTT and JT/T 808), patrol judgement, sensor watchdogs, and the
    web's defaults ("the last 30 minutes", "today").
    ``tune`` adjusts the process's garbage collector for ingest (``tune_gc``): for the
    process that is the service, not for one that merely embeds it.
    """
    version = await store.schema_version() if await _has_schema(store) else 0
    from tracker.storage.store import migrations

    latest = migrations()[-1][0]
    if version < latest:
        raise SchemaError(f"database schema is at version {version}, this code needs {latest}: run `tracker db migrate`")
    if clock_ms is None:
        clock_ms = wall_clock_ms
    metrics = Metrics()
    index = GridIndex(settings.grid.h3_resolution, await store.grid_cells())
    if not index.cells:
        log.warning("no unit grids loaded: every position will be off-grid (import with `tracker grids import FILE`)")
    pipeline = Pipeline(settings, store, index, metrics, clock_ms=clock_ms)
    await _warm_start(store, pipeline.live)
    patrol = None
    if settings.patrol.enabled:
        patrol = Patrol(settings, store, index.cells, pipeline.hub, metrics, clock_ms)
        await patrol.load()
        pipeline.fix_listeners.append(patrol.observe_slice)

    def healthy() -> tuple[bool, str]:
        broker = pipeline.broker
        if broker is None or not broker.connected:
            return False, "not connected to the MQTT broker"
        return True, "ok"

    gateway = Jt808Gateway(settings.jt808, pipeline, clock_ms) if settings.jt808.enabled else None
    owntracks_by_device = {ref.device: (user, phone) for (user, phone), ref in pipeline.router.owntracks_devices.items()}

    def downlink(device: str, placed) -> tuple[str, bytes] | None:
        if device in owntracks_by_device:
            command = encode_report_location(*owntracks_by_device[device])
            return command.topic, command.payload
        if placed is None:
            return None
        fix = placed.fix
        return f"gw/v1/{fix.district}/{fix.device_class.value}/{device}/cmd", json.dumps({"cmd": "reportLocation"}).encode()

    def publish(topic: str, payload: bytes) -> None:
        if pipeline.broker is None:
            raise trio.BrokenResourceError("no broker")
        pipeline.broker.publish(topic, payload, qos=1)

    async def locate(device: str, placed) -> dict | None:
        """Ask a device for its position now, by whatever link it has; None: unknown."""
        if gateway is not None and await gateway.query_position(device):
            return {"device": device, "via": "jt808", "message": "0x8201"}
        if placed is not None and placed.fix.device_class is DeviceClass.VEHICLE and device.startswith("jt"):
            raise trio.BrokenResourceError(f"terminal {device} is not connected to the JT/T 808 gateway")
        target = downlink(device, placed)
        if target is None:
            return None
        publish(*target)
        return {"device": device, "via": "mqtt", "topic": target[0]}

    web = WebContext(settings, store, index, pipeline.live, pipeline.hub, metrics, healthy=healthy, locate=locate, patrol=patrol)
    if tune:
        tune_gc()
    await web.reload_grids()
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


async def _in_scope(scope: trio.CancelScope, fn, *args, task_status=trio.TASK_STATUS_IGNORED) -> None:
    with scope:
        await fn(*args, task_status=task_status)


async def _has_schema(store: Store) -> bool:
    rows = await store.fetch("SELECT to_regclass('schema_version') IS NOT NULL AS present")
    return bool(rows[0]["present"])
