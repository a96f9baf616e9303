"""What the broker drops is visible on /metrics: a QoS 0 burst to a subscriber that stops
reading overflows its queue at a real Mosquitto (a tiny max_queued_messages), and the
pipeline's gridwatch_broker_dropped_messages rises with the broker's own $SYS counter."""

from __future__ import annotations

import re
import threading

import paho.mqtt.client as paho
import pytest
import trio

from geofence.index import GridIndex
from tests.fakes import RecordingStore
from tests.harness import BROKER_USERS
from tests.helpers import publish, wait_for
from tracker import config
from tracker.devcity.starters import Mosquitto, start_mosquitto
from tracker.ingest.broker_stats import SYS_GAUGES, BrokerStats
from tracker.ingest.pipeline import Pipeline
from tracker.metrics import Metrics

# seven levels: not under the ingest subscription gw/v1/+/+/+/+, within the simulator's gw/v1/#
STUCK_TOPIC = "gw/v1/620105/collector/c9999/pos/mirror"


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory) -> Mosquitto:
    """The project's broker configuration with a queue of ten and counters every second."""
    m = start_mosquitto(tmp_path_factory.mktemp("mosquitto-small"), 0, BROKER_USERS, "max_queued_messages 10\nsys_interval 1\n")
    yield m
    m.discard()


def _stuck_subscriber(broker: Mosquitto) -> paho.Client:
    """Subscribes at QoS 0, then never reads its socket again."""
    subscribed = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="stuck-subscriber", protocol=paho.MQTTv311)
    client.username_pw_set("simulator", broker.users["simulator"])
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", broker.port)
    client.subscribe(STUCK_TOPIC, 0)
    while not subscribed.is_set():
        client.loop(0.1)
    return client


def _gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return None if found is None else float(found.group(1))


async def test_a_burst_the_broker_drops_shows_on_metrics(small_broker):
    settings = config.load(None, environ={}).replace(
        "mqtt", port=small_broker.port, username="gridwatch", password=BROKER_USERS["gridwatch"], client_id="gridwatch-stats-test")
    pipeline = Pipeline(settings, RecordingStore(), GridIndex(12))
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=True, task_status=task_status))
        metrics = pipeline.metrics

        def dropped() -> float | None:
            return _gauge(metrics.render(), "gridwatch_broker_dropped_messages")

        await wait_for(lambda: dropped() is not None, timeout=15)  # the broker's first report
        before = dropped() or 0.0
        stuck = await trio.to_thread.run_sync(_stuck_subscriber, small_broker)
        try:
            # far more than the socket buffers between broker and subscriber can hold
            burst = [(STUCK_TOPIC, bytes(8192))] * 3000
            await trio.to_thread.run_sync(publish, small_broker, burst)
            await wait_for(lambda: (dropped() or 0.0) - before >= 1000, timeout=15)
        finally:
            stuck.disconnect()
        assert (dropped() or 0.0) - before <= 3000
        text = metrics.render()
        assert _gauge(text, "gridwatch_broker_received_messages") >= 3000
        assert _gauge(text, "gridwatch_broker_clients_connected") >= 2  # ingest and its counters' connection
        assert metrics.get("gridwatch_messages_total") == 0  # no $SYS message went through ingest
        nursery.cancel_scope.cancel()


def test_counters_are_read_from_the_broker_payloads():
    stats = BrokerStats(Metrics())
    assert stats.observe("$SYS/broker/publish/messages/dropped", b"72931")
    assert stats.observe("$SYS/broker/load/publish/dropped/1min", b"1520.33")
    assert not stats.observe("$SYS/broker/uptime", b"12 seconds")  # not exported
    assert not stats.observe("$SYS/broker/store/messages/count", b"")
    assert not stats.observe("$SYS/broker/store/messages/bytes", b"nan")
    text = stats.metrics.render()
    assert _gauge(text, "gridwatch_broker_dropped_messages") == 72931.0
    assert _gauge(text, "gridwatch_broker_dropped_per_minute") == 1520.33
    assert "gridwatch_broker_stored_messages" not in text  # never heard: no gauge
    assert len(SYS_GAUGES) == len({name for name, _ in SYS_GAUGES.values()})
