"""The broker's own counters on ``/metrics``: what Mosquitto dropped or holds for us.

An overload the service cannot see from inside: when the ingest client reads slower
than devices publish, Mosquitto queues up to ``max_queued_messages`` for it and then
drops QoS 0 messages, and the service simply never receives them. Mosquitto counts them
under ``$SYS/broker/...`` every ``sys_interval`` seconds (mosquitto/mosquitto.conf); this
module subscribes to those counters and exports them as ``gridwatch_broker_*`` gauges.

It uses a connection of its own (client id ``{client_id}-sys``), so the ingest path
never sees a ``$SYS`` topic: no per-message test in routing, no ``$SYS`` message in the
ingest counters, and the counters keep coming while ingest pushes back. The account needs
to read ``$SYS/#``, which the service role grants (tracker/ingest/dynsec_roles.py).

The values are the broker's, broker-wide, since the broker started (a broker restart
starts them at 0 again). A gauge appears once the broker has published it.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import trio

from tracker.ingest.broker import BrokerClient, BrokerParams, Message, Receipt
from tracker.metrics import Metrics

log = logging.getLogger(__name__)

# $SYS topic (Mosquitto 2.0) → gauge, help
SYS_GAUGES = {
    "$SYS/broker/publish/messages/dropped": (
        "gridwatch_broker_dropped_messages", "PUBLISH messages the broker dropped (a subscriber's queue full), since it started"),
    "$SYS/broker/load/publish/dropped/1min": (
        "gridwatch_broker_dropped_per_minute", "PUBLISH messages the broker dropped per minute, averaged over the last minute"),
    "$SYS/broker/store/messages/count": (
        "gridwatch_broker_stored_messages", "Messages the broker holds: queued for subscribers, in flight, retained"),
    "$SYS/broker/store/messages/bytes": (
        "gridwatch_broker_stored_bytes", "Payload bytes of the messages the broker holds"),
    "$SYS/broker/publish/messages/received": (
        "gridwatch_broker_received_messages", "PUBLISH messages the broker received, since it started"),
    "$SYS/broker/publish/messages/sent": (
        "gridwatch_broker_sent_messages", "PUBLISH messages the broker sent, since it started"),
    "$SYS/broker/clients/connected": (
        "gridwatch_broker_clients_connected", "Clients connected to the broker"),
}


class BrokerStats:
    """The latest value of each ``$SYS`` counter in ``SYS_GAUGES``, as gauges."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.values: dict[str, float] = {}  # gauge name → latest value
        self.client: BrokerClient | None = None

    def observe(self, topic: str, payload: bytes) -> bool:
        """Take one ``$SYS`` message; False when it is not a counter this module exports."""
        known = SYS_GAUGES.get(topic)
        if known is None:
            return False
        name, text = known
        try:
            value = float(payload.split()[0])  # "0", "12.34"; some carry a unit after a space
        except (ValueError, IndexError):
            log.warning("unreadable broker counter %s: %r", topic, bytes(payload[:40]))
            return False
        if not math.isfinite(value):
            return False
        if name not in self.values:
            self.metrics.gauge(name, lambda: self.values[name], text)
        self.values[name] = value
        return True

    async def _deliver(self, batch: list[Message], receipt: Receipt) -> None:
        for topic, payload, _rx in batch:
            self.observe(topic, payload)
        receipt.settle()  # QoS 0: nothing to acknowledge, but the receipt is always settled

    async def run(self, ingest: BrokerParams, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the counters over the ingest account's broker, on a connection of its own."""
        params = dataclasses.replace(ingest, client_id=f"{ingest.client_id}-sys", subscriptions=tuple(SYS_GAUGES), qos=0,
                                     clean_session=True)  # counters need no kept session
        self.client = BrokerClient(params, self._deliver)
        await self.client.run(task_status=task_status)
