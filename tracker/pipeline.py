"""The ingest pipeline, in one place.

    broker ──batches──▶ decode+place ──rows──▶ persist (COPY)
     (MQTT)   [push back]   │          [push back]
                            └──▶ live state ──tick──▶ hub ──▶ WebSocket clients
                                                 [latest position per device wins]

Stages are tasks in one nursery joined by bounded channels:
- ``inbound`` (broker → decode): batches of raw messages. Never drops: when full the broker
  reader stops reading and Mosquitto queues for us (``max_queued_messages``).
- ``persist`` (decode → database): rows. Never drops: pushes back on decode.
- live fan-out: coalesces; the hub ticks and sends each client the devices that moved.

Decoding is pure; a ``DecodeError`` is counted by protocol and reason, logged with the
device id, sampled into dead letters, and ingest moves on. Any other exception is a bug
and stops the service loudly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
from h3.api import basic_int as h3

from geofence.index import GridIndex
from protocols.errors import DecodeError
from protocols.handset import HandsetLimits, decode_position, decode_status
from tracker.broker import BrokerClient, BrokerParams, Message
from tracker.config import Settings
from tracker.fanout import Hub
from tracker.live import LiveState
from tracker.metrics import Metrics
from tracker.model import DeviceClass, DeviceRef, Placed
from tracker.store import DAY_MS, Store, ms_to_datetime

log = logging.getLogger(__name__)

_CLASSES = {c.value: c for c in DeviceClass}
_KINDS = ("pos", "alarm", "status")
_ROUTE_CACHE_MAX = 500_000


@dataclass(slots=True)
class PersistBatch:
    rows: list[tuple] = field(default_factory=list)
    devices: dict[str, tuple] = field(default_factory=dict)
    dead_letters: list[tuple] = field(default_factory=list)


def parse_topic(topic: str) -> tuple[str, DeviceRef]:
    """``gw/v1/{district}/{class}/{device}/{kind}`` → (kind, device)."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] != "gw" or parts[1] != "v1":
        raise DecodeError("bad_topic", f"topic {topic!r} is not gw/v1/{{district}}/{{class}}/{{device}}/{{kind}}")
    _, _, district, cls, device, kind = parts
    if kind not in _KINDS:
        raise DecodeError("bad_topic", f"unknown message kind {kind!r} in {topic!r}")
    device_class = _CLASSES.get(cls)
    if device_class is None:
        raise DecodeError("bad_topic", f"unknown device class {cls!r} in {topic!r}")
    try:
        return kind, DeviceRef(device, device_class, district)
    except ValueError as exc:
        raise DecodeError("bad_topic", f"{exc} in {topic!r}") from None


class _RateLimitedLog:
    """Log the first few bad payloads per reason each minute, then only count them."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window = 0
        self.seen: dict[str, int] = {}

    def allow(self, reason: str, now_ms: int) -> bool:
        window = now_ms // 60_000
        if window != self.window:
            self.window, self.seen = window, {}
        n = self.seen.get(reason, 0)
        self.seen[reason] = n + 1
        return n < self.per_minute


class Pipeline:
    """Owns the stages and their shared state; ``run`` starts them all."""

    def __init__(self, settings: Settings, store: Store, index: GridIndex, metrics: Metrics | None = None,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.index = index
        self.metrics = metrics or Metrics()
        self.live = LiveState()
        self.hub = Hub(self.live, self.metrics, settings.pipeline.broadcast_tick_ms, settings.pipeline.client_queue_devices)
        h = settings.handset
        self.limits = HandsetLimits(h.max_payload_bytes, h.max_batch, int(h.max_future_s * 1000), int(h.max_age_s * 1000))
        self._routes: dict[str, tuple[str, DeviceRef]] = {}
        self._log_gate = _RateLimitedLog(5)
        self._dead_gate = _RateLimitedLog(settings.pipeline.dead_letter_sample_per_min)
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._inbound_send, self._inbound_recv = trio.open_memory_channel[list[Message]](settings.pipeline.inbound_queue)
        self._persist_send, self._persist_recv = trio.open_memory_channel[PersistBatch](settings.pipeline.persist_queue)
        self.broker: BrokerClient | None = None
        self.last_persist_ms = 0
        m = self.metrics
        m.describe("gridwatch_messages_total", "MQTT messages received")
        m.describe("gridwatch_fixes_ingested_total", "Fixes decoded and placed")
        m.describe("gridwatch_fixes_late_total", "Fixes older than the device's newest (stored, not shown live)")
        m.describe("gridwatch_rejected_total", "Payloads or fixes rejected, by protocol and reason")
        m.describe("gridwatch_persisted_total", "Fixes written to PostgreSQL")
        m.gauge("gridwatch_inbound_queue_depth", lambda: self._inbound_send.statistics().current_buffer_used, "Batches waiting for decode")
        m.gauge("gridwatch_persist_queue_depth", lambda: self._persist_send.statistics().current_buffer_used, "Batches waiting for the database")
        m.gauge("gridwatch_devices_live", lambda: len(self.live.devices), "Devices with a known position")
        m.gauge("gridwatch_persist_lag_seconds", self._persist_lag, "Age of the oldest fix not yet persisted")
        m.gauge("gridwatch_broker_connected", lambda: float(bool(self.broker and self.broker.connected)), "1 when connected to the broker")
        self._oldest_unpersisted_rx: int | None = None
        self._pending_dead: list[tuple] = []
        self._drained = False

    def _persist_lag(self) -> float:
        rx = self._oldest_unpersisted_rx
        return 0.0 if rx is None else max(0.0, (self._clock_ms() - rx) / 1000)

    # --- stage: broker ----------------------------------------------------------------

    def broker_params(self) -> BrokerParams:
        m = self.settings.mqtt
        return BrokerParams(m.host, m.port, m.username, m.password, m.client_id, m.keepalive_s,
                            m.subscriptions, m.qos, m.reconnect_min_s, m.reconnect_max_s)

    async def run(self, *, with_broker: bool = True, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run every stage until cancelled, or until ``stop()`` drains them.

        ``with_broker=False`` runs the stages alone, fed through ``feed`` (tests, replay).
        """
        self._broker_scope = trio.CancelScope()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._persist_stage)
            nursery.start_soon(self._decode_stage)
            nursery.start_soon(self.hub.run)
            if with_broker:
                self.broker = BrokerClient(self.broker_params(), self.feed)
                await nursery.start(self._run_broker)
            task_status.started()

    async def feed(self, batch: list[Message]) -> None:
        """Hand one batch of (topic, payload, rx_ms) to decode; blocks when decode is behind."""
        await self._inbound_send.send(batch)

    async def close_input(self) -> None:
        """No more input: decode and persistence drain, then their tasks end."""
        await self._inbound_send.aclose()

    async def _run_broker(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self._broker_scope:
            await self.broker.run(task_status=task_status)
        await self._inbound_send.aclose()

    async def stop(self) -> None:
        """Stop reading the broker, let decode and persistence drain, then stop the rest."""
        self._broker_scope.cancel()
        if self.broker is None:
            await self.close_input()
        with trio.move_on_after(15):
            while not self._drained:
                await trio.sleep(0.01)
        self._nursery.cancel_scope.cancel()

    # --- stage: decode + place ------------------------------------------------------

    def ingest(self, batch: list[Message]) -> PersistBatch:
        """Decode, place and fold one batch into live state; return what to persist."""
        out = PersistBatch()
        rows = out.rows
        devices = out.devices
        live = self.live
        index = self.index
        res = index.resolution
        cells = index.cells
        to_cell = h3.latlng_to_cell
        metrics = self.metrics
        routes = self._routes
        accepted = late_count = 0
        live_devices = live.devices
        dirty = live.dirty
        rx_cached, rx_dt = None, None
        for topic, payload, rx_ms in batch:
            route = routes.get(topic)
            try:
                if route is None:
                    route = parse_topic(topic)
                    if len(routes) >= _ROUTE_CACHE_MAX:
                        routes.clear()
                    routes[topic] = route
                kind, ref = route
                if kind == "pos":
                    decoded = decode_position(payload, ref, rx_ms, self.limits)
                    for error in decoded.rejected:
                        self._reject("handset", error, topic, ref.device, payload, rx_ms)
                    if rx_ms != rx_cached:
                        rx_cached, rx_dt = rx_ms, ms_to_datetime(rx_ms)
                    for fix in decoded.fixes:
                        cell = to_cell(fix.lat, fix.lon, res)
                        grid = cells.get(cell)
                        previous = live_devices.get(fix.device)
                        late = previous is not None and fix.t_ms < previous.fix.t_ms
                        rows.append((
                            fix.device, ms_to_datetime(fix.t_ms), rx_dt, fix.lat, fix.lon,
                            fix.acc, fix.spd, fix.hdg, fix.alt, fix.bat, fix.crs, fix.seq, cell, grid, late,
                        ))
                        if late:
                            late_count += 1
                            continue
                        placed = Placed(fix, cell, grid, False)
                        live_devices[fix.device] = placed
                        dirty.add(fix.device)
                        devices[fix.device] = placed
                    accepted += len(decoded.fixes)
                elif kind == "status":
                    status = decode_status(payload, ref, rx_ms, self.limits)
                    if status.bat is not None:
                        live.battery[ref.device] = status.bat
                    metrics.inc("gridwatch_status_total", device_class=ref.device_class.value)
                else:
                    raise DecodeError("unsupported", f"no decoder for {kind!r} messages of {ref.device_class.value}s")
            except DecodeError as error:
                self._reject("handset", error, topic, route[1].device if route else None, payload, rx_ms)
        metrics.inc("gridwatch_messages_total", len(batch))
        metrics.inc("gridwatch_fixes_ingested_total", accepted)
        if late_count:
            metrics.inc("gridwatch_fixes_late_total", late_count)
        return out

    def _reject(self, protocol: str, error: DecodeError, source: str, device: str | None, raw: bytes, rx_ms: int) -> None:
        self.metrics.inc("gridwatch_rejected_total", protocol=protocol, reason=error.reason)
        if self._log_gate.allow(error.reason, rx_ms):
            log.warning("rejected %s payload from device %s on %s: %s (%s)", protocol, device or "?", source, error, error.reason)
        if self._dead_gate.allow("*", rx_ms):
            self._pending_dead.append((ms_to_datetime(rx_ms), protocol, source[:200], device, error.reason, str(error)[:500], bytes(raw[:4096])))

    async def _decode_stage(self) -> None:
        async with self._persist_send:
            async for batch in self._inbound_recv:
                out = self.ingest(batch)
                if self._pending_dead:
                    out.dead_letters, self._pending_dead = self._pending_dead, []
                if out.rows or out.dead_letters:
                    if self._oldest_unpersisted_rx is None and out.rows:
                        self._oldest_unpersisted_rx = batch[0][2]
                    await self._persist_send.send(out)

    # --- stage: persist -------------------------------------------------------------

    async def _persist_stage(self) -> None:
        p = self.settings.pipeline
        flush_s = p.persist_flush_ms / 1000
        recv = self._persist_recv
        closed = False
        while not closed:
            pending = PersistBatch()
            # wait without limit for the first batch, then at most flush_ms for more
            with trio.CancelScope() as window:
                try:
                    while len(pending.rows) < p.persist_batch_rows:
                        item = await recv.receive()
                        if window.deadline == float("inf"):
                            window.deadline = trio.current_time() + flush_s
                        pending.rows.extend(item.rows)
                        pending.devices.update(item.devices)
                        pending.dead_letters.extend(item.dead_letters)
                except trio.EndOfChannel:
                    closed = True
            if pending.rows or pending.dead_letters:
                await self._flush(pending)
        self._drained = True

    async def _flush(self, batch: PersistBatch) -> None:
        rows = batch.rows
        if rows:
            days = _days(rows)
            devices = [
                (f.device, f.device_class.value, f.district, ms_to_datetime(f.t_ms), ms_to_datetime(f.rx_ms),
                 f.lat, f.lon, f.acc, f.spd, f.hdg, f.bat, placed.cell, placed.grid)
                for placed in batch.devices.values()
                for f in (placed.fix,)
            ]
            await self.store.write_pings(rows, days, devices)
            self.metrics.inc("gridwatch_persisted_total", len(rows))
            self._oldest_unpersisted_rx = None
            self.last_persist_ms = self._clock_ms()
        if batch.dead_letters:
            await self.store.add_dead_letters(batch.dead_letters)
            self.metrics.inc("gridwatch_dead_letters_total", len(batch.dead_letters))


def _days(rows: list[tuple]) -> set[int]:
    """UTC day numbers of a batch's fix times (the partitions it needs)."""
    days = set()
    previous = None
    for row in rows:
        t = row[1]
        key = (t.year, t.month, t.day)
        if key != previous:
            days.add(int(t.timestamp() * 1000) // DAY_MS)
            previous = key
    return days
