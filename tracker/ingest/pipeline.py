"""The ingest pipeline, in one place.

    broker ─msgs─▶ ┐                                   ┌─▶ persist (one transaction:
    JT/T 808 ─fixes─▶ route+decode ▶ filter ▶ place ─┤     pings COPY, filtered fixes;
                    [push back]      (H3 cell,       │     another: alarm events and the
                                      unit grid)     │     sensor states behind them)
                                                     │     [push back]
                                                     ├─▶ live state ─tick─▶ hub ─▶ /ws
    sensor records ─▶ sensor rules ─▶ alarm events ──┘     [latest position per device wins]
    watchdog (trio clock) ─▶ debounce maturity, silent sensors ─▶ alarm events

Stages are tasks in one nursery joined by bounded channels:
- ``inbound`` (sources → decode): batches of raw MQTT messages or decoded fixes, at most
  ``inbound_queue`` batches and ``inbound_max_bytes`` of MQTT payload. Never
  drops: when full, the broker reader stops reading (Mosquitto queues for us, see
  ``max_queued_messages``) and the JT/T 808 sessions stop reading their sockets.
- ``persist`` (decode → database): rows, refused fixes and alarm events. Never drops:
  pushes back on decode. Each broker batch's receipt rides with the last slice decoded
  from it and is settled (its QoS 1 messages acknowledged) after the flush that holds
  that slice has committed every transaction: acknowledged means stored. A flush
  happens at persist_batch_rows or persist_flush_ms after its first batch, whichever
  comes first, so acknowledgements never wait long and the broker's inflight window
  (which stops its sending when full of unacknowledged messages) always drains.
- live fan-out: coalesces; the hub ticks and sends each client the devices that moved.
  Alarm events go to clients unmerged, in order.

Before decoding, each message's device is put to the device registry (the ``gate``, an
in-memory lookup): a device it refuses (unregistered, disabled, another class or
district) is counted in ``gridwatch_device_refused_total`` by reason and its payload is
dropped unread. Decoding is pure; a ``DecodeError`` is counted by protocol and reason, logged with the
device id, sampled into dead letters, and ingest moves on. Any other exception is a bug
and stops the service loudly.

Alarm state survives restarts (``resume``, before anything is received): each sensor's
record goes to the database with the alarm events its change produced, in one
transaction (see alerts.sensors for why); the JT/T 808 terminals' alarm edges are
rebuilt from the events themselves (see protocols.jt808.session.AlarmTracker).

Over the house's ~500 lines on purpose: the stages and the channels between them are
declared in one place, so their order and each channel's policy read top to bottom.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

from alerts.sensor_rules import ComponentAlarm, SensorRuleParams, SensorState, alarm_limit
from alerts.sensors import SensorMonitor, SensorRecord
from geofence.index import GridIndex
from geofence.placed import Placed, PlacedSlice
from protocols.epoch import datetime_to_ms, ms_to_datetime
from protocols.errors import DecodeError
from protocols.handset import HandsetLimits
from protocols.jt808.session import AlarmTracker, alarm_name
from protocols.model import DeviceClass, Fix
from protocols.sensor import SensorReading
from tracker.bounds import evict_oldest, excess, least_recent
from tracker.clock import wall_clock_ms
from tracker.config import Settings
from tracker.ingest.broker import BrokerClient, BrokerParams, Message, Receipt
from tracker.ingest.broker_stats import BrokerStats
from tracker.ingest.filters import FilterParams, PositionFilter
from tracker.ingest.routing import Gate, Routed, Router, parse_owntracks_map
from tracker.live.fanout import Hub
from tracker.live.state import READING_FIELDS, LiveState
from tracker.metrics import Metrics, spread
from tracker.storage.store import DAY_MS, PING_COLUMNS, Store

log = logging.getLogger(__name__)

FixListener = Callable[[PlacedSlice], None]
# Slices decoded between two yields to the scheduler: a few milliseconds of work each, so
# that a COPY's asyncio steps and the hub's tick never wait long for their turn. A slice of
# MQTT messages also ends at a payload budget: a message may carry a batch of fixes.
DECODE_SLICE_MESSAGES = 64
DECODE_SLICE_BYTES = 16_384
DECODE_SLICE_FIXES = 256
DEVICES_WRITE_S = 2.0
# a clean stop waits this long for decode and persistence to drain, then this long for the
# broker to take the acknowledgements and the DISCONNECT
STOP_DRAIN_S = 15.0
STOP_DISCONNECT_S = 5.0
# A ping row is built as ``fix[:1] + fix[3:] + (cell, grid, late)``: no per-field copying.
# That holds only while the ping columns follow Fix's fields; say so loudly if they part.
_FIX_AS_PING = ("device", *(f.removesuffix("_ms") for f in Fix._fields[3:]), "cell", "grid", "late")
if _FIX_AS_PING != PING_COLUMNS:
    raise ImportError(f"PING_COLUMNS {PING_COLUMNS} no longer follow Fix's fields {_FIX_AS_PING}")
_PING_T, _PING_RX = PING_COLUMNS.index("t"), PING_COLUMNS.index("rx")
OVERSPEED = alarm_name(1)  # JT/T 808 alarm bit 1


class Stored:
    """Settled once the rows of one hand-over of fixes are committed (and everything
    handed over before them): what the JT/T 808 gateway waits for before it answers."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def settle(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


@dataclass(slots=True)
class PersistBatch:
    rows: list[tuple] = field(default_factory=list)
    devices: dict[str, Placed] = field(default_factory=dict)
    filtered: list[tuple] = field(default_factory=list)
    alarms: list[tuple] = field(default_factory=list)
    dead_letters: list[tuple] = field(default_factory=list)
    components: dict[str, tuple] = field(default_factory=dict)  # component code → binding row
    sensors: dict[str, tuple] = field(default_factory=dict)  # device → its state as the alarms above leave it
    readings: list[tuple] = field(default_factory=list)  # sensor records (READING_COLUMNS)
    reports: list = field(default_factory=list)  # collectors' handset reports, for the case sources
    # broker messages (or JT/T 808 fixes) whose outcome is all in this batch and those
    # before it: settled (PUBACKs sent, the terminal answered) once this batch is committed
    receipts: list[Receipt | Stored] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows or self.filtered or self.alarms or self.dead_letters or self.components or self.sensors
                    or self.readings or self.receipts or self.reports)

    def absorb(self, other: PersistBatch) -> None:
        self.rows.extend(other.rows)
        self.devices.update(other.devices)
        self.filtered.extend(other.filtered)
        self.alarms.extend(other.alarms)
        self.dead_letters.extend(other.dead_letters)
        self.components.update(other.components)
        self.sensors.update(other.sensors)  # batches come in order: the later state wins
        self.readings.extend(other.readings)
        self.receipts.extend(other.receipts)
        self.reports.extend(other.reports)


class _RateLimitedLog:
    """Let the first few events per key through each minute, then only count them."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window = 0
        self.seen: dict[str, int] = {}

    def allow(self, key: str, now_ms: int) -> bool:
        window = now_ms // 60_000
        if window != self.window:
            self.window, self.seen = window, {}
        n = self.seen.get(key, 0)
        self.seen[key] = n + 1
        return n < self.per_minute


def filter_params(settings: Settings) -> FilterParams:
    f = settings.filters
    kmh = 1 / 3.6
    return FilterParams(
        enabled=frozenset(f.enabled),
        max_accuracy_m=f.max_accuracy_m,
        max_speed_mps={DeviceClass.COLLECTOR: f.max_speed_collector_kmh * kmh, DeviceClass.VEHICLE: f.max_speed_vehicle_kmh * kmh,
                       DeviceClass.SENSOR: f.max_speed_sensor_kmh * kmh},
        drift_m=f.drift_m,
        drift_classes=frozenset(DeviceClass(c) for c in f.drift_classes),
        duplicate_window=f.duplicate_window,
    )


def sensor_params(settings: Settings) -> SensorRuleParams:
    s = settings.sensors
    return SensorRuleParams(tilt_threshold_deg=s.tilt_threshold_deg, tilt_debounce_ms=s.tilt_debounce_ms, bin_full_pct=s.bin_full_pct,
                            bin_clear_pct=min(s.bin_full_pct, 70.0), waterlog_alarm_cm=s.waterlog_alarm_cm,
                            waterlog_clear_cm=min(s.waterlog_alarm_cm, 10.0), low_battery_pct=s.low_battery_pct,
                            battery_clear_pct=max(s.low_battery_pct, 30.0), flap_toggles=s.flap_toggles,
                            flap_window_ms=int(s.flap_window_s * 1000), flap_quiet_ms=int(s.flap_quiet_s * 1000))


class Pipeline:
    """Owns the stages and their shared state; ``run`` starts them all."""

    def __init__(self, settings: Settings, store: Store, index: GridIndex, metrics: Metrics | None = None,
                 clock_ms: Callable[[], int] | None = None, gate: Gate | None = None,
                 component_of: Callable[[str], str | None] | None = None) -> None:
        """``gate``: the device registry, asked about each message's device (None: every
        device is accepted). ``component_of``: the component code a sensor is registered
        on (None: not registered with one); its records about another are refused."""
        self.settings = settings
        self.store = store
        self.index = index
        self.metrics = metrics or Metrics()
        self.live = LiveState()
        self.hub = Hub(self.live, self.metrics, settings.pipeline.broadcast_tick_ms, settings.pipeline.client_queue_devices, clock_ms)
        h = settings.handset
        limits = HandsetLimits(h.max_payload_bytes, h.max_batch, int(h.max_future_s * 1000), int(h.max_age_s * 1000))
        owntracks = parse_owntracks_map(settings.owntracks.devices, settings.grid.district) if settings.owntracks.enabled else {}
        self.max_devices = settings.pipeline.max_devices
        self.router = Router(limits, owntracks, max_routes=3 * self.max_devices, gate=gate)  # a topic per message kind
        self._component_of = component_of
        self.filter = PositionFilter(filter_params(settings))
        self.sensors = SensorMonitor(sensor_params(settings), int(settings.sensors.silent_after_s * 1000))
        self.vehicle_alarms = AlarmTracker()  # the JT/T 808 gateway's, restored by resume()
        self.fix_listeners: list[FixListener] = []  # e.g. patrol coverage: every placed fix, late ones too
        # handset reports go to the cases before their messages are acknowledged, so a
        # report the broker delivers again after a crash is filed (once: by its report id)
        self.report_sink: Callable[[list], Awaitable[None]] | None = None
        self.alarm_listeners: list[Callable[[], None]] = []  # told when alarm events are committed to the outbox
        self._log_gate = _RateLimitedLog(5)
        self._dead_gate = _RateLimitedLog(settings.pipeline.dead_letter_sample_per_min)
        self._clock_ms = clock_ms or wall_clock_ms
        self._inbound_send, self._inbound_recv = trio.open_memory_channel[tuple[str, list, int, Receipt | Stored | None]](
            settings.pipeline.inbound_queue)
        # payload bytes waiting for decode: a batch count alone bounds nothing when each
        # message may carry a batch of fixes
        self._inbound_bytes = 0
        self._inbound_room = trio.Event()
        self._persist_send, self._persist_recv = trio.open_memory_channel[PersistBatch](settings.pipeline.persist_queue)
        self.broker: BrokerClient | None = None
        self.broker_stats = BrokerStats(self.metrics)  # what the broker dropped or holds, on a connection of its own
        self._broker_scope = trio.CancelScope()
        self._pending = PersistBatch()  # alarms and dead letters raised outside decode
        self._oldest_unpersisted_rx: int | None = None
        self._drained = trio.Event()  # set when persistence has written everything received
        self._stopping = trio.Event()
        self._devices_due: dict[str, Placed] = {}
        self._devices_next = 0.0
        self._bindings: dict[str, tuple] = {}
        m = self.metrics
        m.describe("gridwatch_messages_total", "MQTT messages received")
        m.describe("gridwatch_fixes_ingested_total", "Fixes decoded, filtered and placed")
        m.describe("gridwatch_fixes_late_total", "Fixes older than the device's newest (stored, not shown live)")
        m.describe("gridwatch_fixes_filtered_total", "Fixes refused by a position filter, by reason")
        m.describe("gridwatch_rejected_total", "Payloads or records refused by a decoder, by protocol and reason")
        m.describe("gridwatch_device_refused_total", "MQTT payloads refused unread because the device registry refuses their "
                   "device (unregistered, disabled, wrong_class, wrong_district), or a sensor's record about a "
                   "component other than its registered one (wrong_component)")
        m.describe("gridwatch_tolerated_total", "Reports kept despite a defect (a damaged tail, a reading dropped), by protocol and reason")
        m.describe("gridwatch_persisted_total", "Fixes written to PostgreSQL")
        m.describe("gridwatch_pings_already_stored_total", "Fixes received again (a message redelivered) and skipped: already stored")
        m.describe("gridwatch_alarm_events_total", "Alarm events raised or cleared, by source and kind")
        m.describe("gridwatch_devices_evicted_total", "Devices forgotten from an in-memory table at its [pipeline] max_devices, by table")
        m.gauge("gridwatch_devices_remembered", self._devices_remembered, "Most devices held by any per-device table in memory")
        self._persist_latency = m.histogram("gridwatch_persist_latency_seconds", "Receive to committed in PostgreSQL, per fix (sampled)")
        m.gauge("gridwatch_inbound_queue_depth", lambda: self._inbound_send.statistics().current_buffer_used, "Batches waiting for decode")
        m.gauge("gridwatch_inbound_queue_bytes", lambda: self._inbound_bytes, "MQTT payload bytes waiting for decode")
        m.gauge("gridwatch_persist_queue_depth", lambda: self._persist_send.statistics().current_buffer_used, "Batches waiting for the database")
        m.gauge("gridwatch_devices_live", lambda: len(self.live.devices), "Devices with a known position")
        m.gauge("gridwatch_persist_lag_seconds", self.persist_lag_s, "Age of the oldest fix not yet persisted")
        m.gauge("gridwatch_broker_connected", lambda: float(bool(self.broker and self.broker.connected)), "1 when connected to the broker")

    def persist_lag_s(self) -> float:
        """Seconds since the oldest fix not yet committed was received (0: none waiting)."""
        rx = self._oldest_unpersisted_rx
        return 0.0 if rx is None else max(0.0, (self._clock_ms() - rx) / 1000)

    def broker_params(self) -> BrokerParams:
        m = self.settings.mqtt
        topics = m.subscriptions + ((self.settings.owntracks.topic,) if self.settings.owntracks.enabled else ())
        return dataclasses.replace(m, subscriptions=topics)

    # --- running ----------------------------------------------------------------------

    async def run(self, *, with_broker: bool = True, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run every stage until cancelled, or until ``stop()`` drains them.

        ``with_broker=False`` runs the stages alone, fed through ``feed`` (tests, replay).
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._persist_stage)
            nursery.start_soon(self._decode_stage)
            nursery.start_soon(self.hub.run)
            nursery.start_soon(self._watchdog, self._persist_send.clone())
            if with_broker:
                self.broker = broker = BrokerClient(self.broker_params(), self.feed, self._clock_ms)
                await nursery.start(self._run_broker, broker)
                nursery.start_soon(self.broker_stats.run, self.broker_params())
            task_status.started()

    async def _run_broker(self, broker: BrokerClient, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        with self._broker_scope:
            await broker.run(task_status=task_status)

    async def feed(self, batch: list[Message], receipt: Receipt | None = None) -> None:
        """Hand one batch of (topic, payload, rx_ms) to decode; blocks when decode is behind.

        ``receipt`` is settled once everything the batch produced is committed (pings,
        refused fixes, dead letters, alarm events, sensor states), or, for a batch that
        produced nothing to store, once it is decoded: after every batch before it.
        """
        size = sum(len(message[1]) for message in batch)
        while self._inbound_bytes >= self.settings.pipeline.inbound_max_bytes:
            await self._inbound_room.wait()  # push back, as a full channel does
        self._inbound_bytes += size
        await self._inbound_send.send(("mqtt", batch, size, receipt))

    async def stop(self) -> None:
        """A clean stop: stop reading the broker, let decode and persistence drain (which
        settles every receipt whose messages are stored), send those acknowledgements and
        disconnect, then stop the rest. The broker sends the next run only what was not
        stored."""
        broker = self.broker
        if broker is not None:
            with trio.move_on_after(STOP_DRAIN_S) as pausing:
                await broker.pause()
            if pausing.cancelled_caught:  # a hand-over that never ends: drop the connection
                self._broker_scope.cancel()
        self._stopping.set()
        await self._inbound_send.aclose()
        with trio.move_on_after(STOP_DRAIN_S):
            await self._drained.wait()
        if broker is not None:
            with trio.move_on_after(STOP_DISCONNECT_S):
                await broker.close()
        self._broker_scope.cancel()
        self._nursery.cancel_scope.cancel()

    # --- state that outlives the process ----------------------------------------------

    async def resume(self) -> None:
        """Alarm state as the last run left it; call before anything is received, after
        the live state's warm start (a terminal's newest known fix bounds which of its
        reports can still move its edges).

        Sensors resume from their saved records. Should any have none (a database from
        before they were saved) or one this code cannot read, the open episodes of the
        alarm outbox stand in for the sensors not restored, and their records are saved
        at once. JT/T 808 terminals resume from their alarm edges in the outbox.
        """
        records, unusable = [], 0
        for row in await self.store.sensor_states():
            try:
                rules = SensorState.from_dict(row["rules"])
                if rules.device not in (None, row["device"]):
                    raise ValueError(f"state of {rules.device!r} saved for {row['device']!r}")
            except ValueError as exc:
                unusable += 1
                log.warning("saved state of sensor %s not usable (%s): resuming it from the alarm outbox", row["device"], exc)
                continue
            last_seen = None if row["last_seen"] is None else datetime_to_ms(row["last_seen"])
            records.append(SensorRecord(row["device"], row["component"], last_seen, row["silent"], rules))
        self.sensors.restore(records)
        if unusable or not records:
            latest = await self.store.latest_alarm_events("sensor")
            resumed = self.sensors.resume_open((r["device"], r["component"], r["kind"], r["raised"], r["value"]) for r in latest)
            if resumed:
                log.info("resumed %d sensor(s) from the open episodes of the alarm outbox", len(resumed))
                await self.store.record_alarms([], [_sensor_row(rec) for rec in self.sensors.take_changes()])
        edges = await self.store.latest_alarm_events("vehicle")
        newest = {device: placed.fix.t_ms for device, placed in self.live.devices.items()}
        self.vehicle_alarms = AlarmTracker.from_edges(
            ((r["device"], r["kind"], r["raised"], datetime_to_ms(r["t"])) for r in edges), newest)

    # --- the JT/T 808 gateway's sink ----------------------------------------------------

    async def fixes(self, fixes: list[Fix]) -> Stored:
        """Decoded fixes from another source (the JT/T 808 gateway): same path as MQTT.

        Returns once decode has taken them (push back); the ``Stored`` returned is settled
        after the transaction holding their rows has committed, and with them whatever
        was raised before (alarm edges recorded by ``alarms`` just before this call).
        """
        stored = Stored()
        await self._inbound_send.send(("fixes", fixes, 0, stored))
        return stored

    async def alarms(self, alarms: list, fixes: Sequence[Fix] = ()) -> None:
        """Vehicle alarm edges from the JT/T 808 gateway; ``fixes``: the reports that
        raised them, whose speed an overspeed alarm carries (km/h, against
        ``[jt808] speed_limit_kmh``)."""
        speeds = {(f.device, f.t_ms): f.spd for f in fixes if f.spd is not None}
        for a in alarms:
            value = limit = None
            detail = ""
            if a.name == OVERSPEED:
                limit = self.settings.jt808.speed_limit_kmh
                spd = speeds.get((a.device, a.t_ms))
                if spd is not None:
                    value = round(spd * 3.6, 1)
                    detail = f"speed {value:g} km/h, limit {limit:g} km/h"
            self._record_alarm("vehicle", a.device, None, a.name, a.raised, a.t_ms, value, detail, a.lat, a.lon,
                               self.settings.jt808.district, limit)

    def rejected(self, protocol: str, reason: str, raw: bytes, peer: str, device: str | None = None) -> None:
        self._reject(protocol, DecodeError(reason), peer, device, raw, self._clock_ms())

    def heard(self, device: str, rx_ms: int) -> None:
        """A terminal spoke (a heartbeat too): online, whether or not it reported a fix."""
        self.live.update_heard(device, rx_ms)

    def tolerated(self, protocol: str, reason: str, raw: bytes, peer: str) -> None:
        self.metrics.inc("gridwatch_tolerated_total", protocol=protocol, reason=reason)
        if self._log_gate.allow(f"tolerated:{reason}", self._clock_ms()):
            log.info("kept a %s report from %s despite %s: %s", protocol, peer, reason, bytes(raw[:64]).hex())

    # --- stage: decode, filter, place -----------------------------------------------

    def ingest(self, batch: list[Message]) -> PersistBatch:
        """Route and decode one batch of MQTT messages, then place the fixes."""
        routed = Routed()
        route = self.router.route
        for topic, payload, rx_ms in batch:
            route(topic, payload, rx_ms, routed)
        metrics = self.metrics
        metrics.inc("gridwatch_messages_total", len(batch))
        out = self.place(routed.fixes)  # first, so alarms below know where their sensors are
        for protocol, error, source, device, raw, rx_ms in routed.rejected:
            self._reject(protocol, error, source, device, raw, rx_ms)
        for protocol, what in routed.ignored:
            metrics.inc("gridwatch_ignored_total", protocol=protocol, type=what)
        for reason, topic, device in routed.refused:
            metrics.inc("gridwatch_device_refused_total", reason=reason)
            if self._log_gate.allow(f"refused:{reason}", self._clock_ms()):
                log.warning("refused a payload of device %s on %s: %s", device, topic, reason)
        live = self.live
        for device, rx_ms in routed.heard.items():
            live.update_heard(device, rx_ms)
        for status in routed.statuses:
            if status.bat is not None:
                live.update_battery(status.device, status.bat)
        readings = routed.readings
        if readings and self._component_of is not None:
            readings = self._own_components(readings)
        if readings:
            self._keep_readings(readings)
            self._bind_components(readings)
            for alarm in self.sensors.observe(readings):
                self._component_alarm(alarm)
            self._save_sensor_changes()
        for event in routed.events:
            self.hub.publish_event(event.pop("type"), event, event["district"])
        out.reports.extend(routed.reports)
        self._bound_devices()
        out.absorb(self._pending)
        self._pending = PersistBatch()
        return out

    def place(self, fixes: list[Fix]) -> PersistBatch:
        """Filter, locate and fold fixes into live state; return what to persist."""
        out = self._pending
        self._pending = PersistBatch()
        rows, devices, filtered = out.rows, out.devices, out.filtered
        live_devices, dirty = self.live.devices, self.live.dirty
        live_get, add_dirty, add_row = live_devices.get, dirty.add, rows.append
        reasons = self.filter.screen_all(fixes)
        kept = fixes
        if any(reasons):
            kept = []
            for fix, reason in zip(fixes, reasons, strict=True):
                if reason is None:
                    kept.append(fix)
                    continue
                filtered.append((fix.device, fix.t_ms, fix.rx_ms, fix.lat, fix.lon, fix.acc, fix.spd, fix.seq, reason))
                self.metrics.inc("gridwatch_fixes_filtered_total", reason=reason)
        cells, grids = self.index.locate_all(kept)  # where each fix falls, a column at a time
        new = tuple.__new__
        late_count = 0
        for fix, cell, grid in zip(kept, cells, grids, strict=True):  # once per fix: names above are locals on purpose
            device, t_ms = fix.device, fix.t_ms
            previous = live_get(device)
            late = previous is not None and t_ms < previous.fix.t_ms
            # a ping row is the fix's own fields from t on (PING_COLUMNS follows Fix)
            add_row(fix[:1] + fix[3:] + (cell, grid, late))
            if late:
                late_count += 1
                continue
            placed = new(Placed, (fix, cell, grid, False))  # Placed's own __new__ costs twice as much
            live_devices[device] = placed
            add_dirty(device)
            devices[device] = placed
        self.metrics.inc("gridwatch_fixes_ingested_total", len(kept))
        if late_count:
            self.metrics.inc("gridwatch_fixes_late_total", late_count)
        self.hub.placed(kept, len(kept) - late_count)
        if kept and self.fix_listeners:
            part = PlacedSlice(kept, cells, grids, late_count)
            for listener in self.fix_listeners:
                listener(part)
        cap = self.max_devices
        if len(live_devices) > cap or self.filter.remembered > cap:
            self._evicted("live", self.live.bound(cap))
            self._evicted("filters", self.filter.bound(cap))
        return out

    # --- ceilings on what made-up device ids can make us remember ---------------------

    def _bound_devices(self) -> None:
        """Per batch: sensors, component bindings, batteries and topic routes within their
        ceilings (live positions and the filters' memory are checked in ``place``)."""
        cap, sensors, router = self.max_devices, self.sensors, self.router
        n = excess(len(sensors.components), cap)
        if n:
            seen = sensors.last_seen
            self._evicted("sensors", sensors.forget(least_recent(sensors.components, n, lambda d: seen.get(d, -1))))
        if len(self._bindings) > cap:
            self._evicted("component_bindings", len(evict_oldest(self._bindings, cap)))
        if len(self.live.battery) > cap:
            self._evicted("live", self.live.bound(cap))
        if router.routes_dropped:
            self._evicted("topic_routes", router.routes_dropped)
            router.routes_dropped = 0

    def _evicted(self, table: str, n: int) -> None:
        if n:
            self.metrics.inc("gridwatch_devices_evicted_total", n, table=table)

    def _devices_remembered(self) -> float:
        return max(len(self.live.devices), len(self.live.battery), self.filter.remembered, len(self.sensors.components),
                   len(self._bindings))

    def _own_components(self, readings: list) -> list:
        """"One manhole, one number": a sensor registered on a component speaks for that
        one only; a record about another is refused (``wrong_component``)."""
        component_of = self._component_of
        assert component_of is not None
        kept = []
        for r in readings:
            registered = component_of(r.device)
            if registered is None or registered == r.component:
                kept.append(r)
                continue
            self.metrics.inc("gridwatch_device_refused_total", reason="wrong_component")
            if self._log_gate.allow("refused:wrong_component", self._clock_ms()):
                log.warning("refused a record of sensor %s about component %s: registered on %s", r.device, r.component, registered)
        return kept

    def _keep_readings(self, readings: list[SensorReading]) -> None:
        """Every record to sensor_readings (the chart of a sensor's day), its values to the live view."""
        rows = self._pending.readings
        for r in readings:
            values = {name: getattr(r, name) for name in READING_FIELDS}
            self.live.update_readings(r.device, r.t_ms, values)
            rows.append((r.device, ms_to_datetime(r.t_ms), ms_to_datetime(r.rx_ms), r.component, r.kind.value,
                         *(values[name] for name in READING_FIELDS)))

    def _bind_components(self, readings) -> None:
        """"One manhole, one number": each sensor is bound to the component it reports
        on, at the sensor's position when known; rewritten when either changes."""
        for r in readings:
            placed = self.live.devices.get(r.device)
            where = (placed.fix.lat, placed.fix.lon, placed.grid) if placed else (None, None, None)
            binding = (r.component, r.device, *where)
            if self._bindings.get(r.component) != binding:
                self._bindings.pop(r.component, None)  # re-inserted: the table's order is its recency
                self._bindings[r.component] = binding
                self._pending.components[r.component] = binding

    def _save_sensor_changes(self) -> None:
        """Sensor states changed since the last call go with the alarm events they produced."""
        for record in self.sensors.take_changes():
            self._pending.sensors[record.device] = _sensor_row(record)

    def _component_alarm(self, alarm: ComponentAlarm) -> None:
        placed = self.live.devices.get(alarm.device)
        lat, lon = (placed.fix.lat, placed.fix.lon) if placed else (None, None)
        self._record_alarm("sensor", alarm.device, alarm.component, alarm.kind, alarm.raised, alarm.t_ms, alarm.value, alarm.detail, lat, lon,
                           limit=alarm_limit(alarm.kind, self.sensors.params))

    def _record_alarm(self, source: str, device: str, component: str | None, kind: str, raised: bool, t_ms: int,
                      value: float | None, detail: str, lat: float | None, lon: float | None,
                      device_district: str | None = None, limit: float | None = None) -> None:
        """``device_district``: the device's, as its transport states it, for a device not
        live yet (a terminal's first report raises its alarms before its fix is placed).
        ``limit``: what ``value`` was judged against, in its unit."""
        grid = self.index.cells.get(self.index.cell(lat, lon)) if lat is not None and lon is not None else None
        self._pending.alarms.append((source, device, component, kind, raised, ms_to_datetime(t_ms), value, detail, lat, lon, grid,
                                     limit))
        self.metrics.inc("gridwatch_alarm_events_total", source=source, kind=kind)
        names = self.live.names(device) if self.live.names is not None else None
        self.hub.publish_event("alarm", {"source": source, "device": device, "label": names["label"] if names else device,
                                         "component": component, "kind": kind, "raised": raised,
                                         "t": t_ms, "value": value, "limit": limit, "detail": detail, "lat": lat, "lon": lon,
                                         "grid": grid},
                               self._alarm_district(device, component, grid, device_district))

    def _alarm_district(self, device: str, component: str | None, grid: str | None,
                        device_district: str | None) -> str | None:
        """Whose clients see an alarm: as the store's ALARM_DISTRICT reads it back, the
        component's district, else the device's, else that of the grid it was raised in."""
        if component is not None:
            return component[:6]
        placed = self.live.devices.get(device)
        if placed is not None:
            return placed.fix.district
        if device_district is not None:
            return device_district
        return grid[:6] if grid is not None else None

    def _reject(self, protocol: str, error: DecodeError, source: str, device: str | None, raw: bytes, rx_ms: int) -> None:
        self.metrics.inc("gridwatch_rejected_total", protocol=protocol, reason=error.reason)
        if self._log_gate.allow(error.reason, rx_ms):
            log.warning("rejected %s payload from device %s on %s: %s (%s)", protocol, device or "?", source, error, error.reason)
        if self._dead_gate.allow("*", rx_ms):
            self._pending.dead_letters.append((ms_to_datetime(rx_ms), protocol, source[:200], device, error.reason, str(error)[:500],
                                               bytes(raw[:4096])))

    async def _decode_stage(self) -> None:
        async with self._persist_send:
            async for kind, items, size, receipt in self._inbound_recv:
                # Decode a big batch in slices, yielding between them: every other task
                # (a COPY's asyncio hops, an HTTP request, the hub's tick) waits for a
                # whole scheduler round at each step, so one long slice stalls them all.
                parts: list[list] = _slices(items) if kind == "mqtt" else [items[i:i + DECODE_SLICE_FIXES]
                                                                            for i in range(0, len(items), DECODE_SLICE_FIXES)]
                last = len(parts) - 1
                for n, part in enumerate(parts):
                    out = self.ingest(part) if kind == "mqtt" else self.place(part)
                    if n == last and receipt is not None:
                        out.receipts.append(receipt)  # the batch's last slice: all of it is in by now
                    if out:
                        if self._oldest_unpersisted_rx is None and out.rows:
                            self._oldest_unpersisted_rx = out.rows[0][_PING_RX]
                        await self._persist_send.send(out)
                    else:
                        await trio.lowlevel.checkpoint()
                if size:
                    self._inbound_bytes -= size
                    if self._inbound_bytes < self.settings.pipeline.inbound_max_bytes:
                        self._inbound_room.set()  # wakes a waiting feed; later waits take a new event
                        self._inbound_room = trio.Event()
                if not parts and receipt is not None:  # packet ids only (topics that were not UTF-8)
                    await self._persist_send.send(PersistBatch(receipts=[receipt]))
            if self._pending:  # raised outside decode since its last slice
                out, self._pending = self._pending, PersistBatch()
                await self._persist_send.send(out)

    async def _watchdog(self, send: trio.MemorySendChannel[PersistBatch]) -> None:
        """Conditions that mature with time alone: debounced tilts, silent sensors.

        Runs until ``stop``, then hands over what is left and closes its end of the
        persist channel (persistence drains once decode has closed its end too).
        """
        async with send:
            while True:
                with trio.move_on_after(self.settings.sensors.watchdog_s):
                    await self._stopping.wait()
                if self._stopping.is_set():
                    if self._pending:
                        out, self._pending = self._pending, PersistBatch()
                        await send.send(out)
                    return
                alarms = self.sensors.tick(self._clock_ms())
                for alarm in alarms:
                    self._component_alarm(alarm)
                self._save_sensor_changes()
                if self._pending.alarms:
                    # nothing else may come through decode for a while: push them out now
                    out, self._pending = self._pending, PersistBatch()
                    await send.send(out)

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
                        try:
                            # take what is queued without yielding: each yield would let
                            # decode run a whole slice before this stage gets back
                            item = recv.receive_nowait()
                        except trio.WouldBlock:
                            item = await recv.receive()
                        if window.deadline == float("inf"):
                            window.deadline = trio.current_time() + flush_s
                        pending.absorb(item)
                except trio.EndOfChannel:
                    closed = True
            if pending or (closed and self._devices_due):
                await self._flush(pending, final=closed)
        self._drained.set()

    async def _flush(self, batch: PersistBatch, final: bool = False) -> None:
        rows = batch.rows
        # Devices' last positions serve a restart's warm start: written at most every
        # DEVICES_WRITE_S (newest per device kept meanwhile), and always at the end.
        self._devices_due.update(batch.devices)
        devices = []
        if self._devices_due and (final or trio.current_time() >= self._devices_next):
            devices = [
                (f.device, f.device_class.value, f.district, ms_to_datetime(f.t_ms), ms_to_datetime(f.rx_ms),
                 f.lat, f.lon, f.acc, f.spd, f.hdg, f.bat, placed.cell, placed.grid)
                for placed in self._devices_due.values()
                for f in (placed.fix,)
            ]
            self._devices_due = {}
            self._devices_next = trio.current_time() + DEVICES_WRITE_S
        if rows or batch.filtered or devices or batch.components:
            stored = await self.store.write_pings(rows, _days(rows), devices, batch.filtered, (), list(batch.components.values()))
            self.metrics.inc("gridwatch_persisted_total", stored)
            if stored < len(rows):  # delivered again (after a restart or a reconnect) and already stored
                self.metrics.inc("gridwatch_pings_already_stored_total", len(rows) - stored)
            self._persist_latency.observe_since(self._clock_ms(), [row[_PING_RX] for row in spread(rows)], len(rows))
            self._oldest_unpersisted_rx = None
        if batch.alarms or batch.sensors:
            await self.store.record_alarms(batch.alarms, list(batch.sensors.values()))
            if batch.alarms:
                for listener in self.alarm_listeners:
                    listener()
        if batch.readings:
            await self.store.add_sensor_readings(batch.readings)
        if batch.dead_letters:
            await self.store.add_dead_letters(batch.dead_letters)
            self.metrics.inc("gridwatch_dead_letters_total", len(batch.dead_letters))
        if batch.reports:
            if self.report_sink is not None:
                await self.report_sink(batch.reports)
            else:
                self.metrics.inc("gridwatch_reports_total", len(batch.reports), outcome="no_cases")
        for receipt in batch.receipts:  # committed, all of it: the broker may forget these messages
            receipt.settle()


def _sensor_row(record: SensorRecord) -> tuple:
    """A sensor_states row: device, component, last_seen, silent, rules."""
    last_seen = None if record.last_seen_ms is None else ms_to_datetime(record.last_seen_ms)
    return (record.device, record.component, last_seen, record.silent, record.rules.to_dict())


def _slices(batch: list[Message]) -> list[list[Message]]:
    """Cut a batch of messages into slices of at most DECODE_SLICE_MESSAGES messages and
    about DECODE_SLICE_BYTES of payload (a slice always takes at least one message)."""
    parts, part, size = [], [], 0
    for message in batch:
        part.append(message)
        size += len(message[1])
        if len(part) >= DECODE_SLICE_MESSAGES or size >= DECODE_SLICE_BYTES:
            parts.append(part)
            part, size = [], 0
    if part:
        parts.append(part)
    return parts


def _days(rows: list[tuple]) -> set[int]:
    """UTC day numbers of a batch's fix times (the partitions it needs)."""
    return {row[_PING_T] // DAY_MS for row in rows}
