"""Latency histograms on trio's MockClock: receive → committed and receive → delta sent,
each fix counted once, however few of a batch's fixes were sampled."""

from __future__ import annotations

import msgpack
import trio

from geofence.index import GridIndex
from tests.fakes import RecordingStore
from tracker import config
from tracker.ingest.pipeline import Pipeline
from tracker.metrics import LATENCY_SAMPLES, LatencyHistogram

T0 = 1_795_000_000_000
TOPIC = "gw/v1/620105/collector/{}/pos"


def _now_ms() -> int:
    return T0 + round(trio.current_time() * 1000)


def _msg(device: str, t_ms: int) -> tuple[str, bytes, int]:
    payload = msgpack.packb({"t": t_ms, "lat": 36.1 + (t_ms % 1000) * 1e-6, "lon": 103.7, "acc": 5})
    return TOPIC.format(device), payload, _now_ms()


def _pipeline(**pipeline) -> Pipeline:
    settings = config.load(None, environ={}).replace("pipeline", **pipeline)
    settings = settings.replace("handset", max_age_s=1e9, max_future_s=1e9)
    return Pipeline(settings, RecordingStore(), GridIndex(12), clock_ms=_now_ms)


def _at_most(histogram: LatencyHistogram, seconds: float) -> int:
    """Observations of at most ``seconds`` (a bucket bound), as the le bucket counts them."""
    return sum(histogram.counts[: histogram.bounds.index(seconds) + 1])


async def test_every_fix_of_a_batch_counts_its_wait_for_the_flush_window(autojump_clock):
    pipeline = _pipeline(persist_flush_ms=200, persist_batch_rows=100_000)
    persisted = pipeline.metrics.histogram("gridwatch_persist_latency_seconds", "")
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        start = trio.current_time()
        fixes = 10 * LATENCY_SAMPLES + 3
        await pipeline.feed([_msg(f"c{i}", T0 + i) for i in range(fixes)])
        await trio.sleep(0.25)
        nursery.cancel_scope.cancel()
    assert trio.current_time() - start >= 0.2
    assert (persisted.count, _at_most(persisted, 0.1), _at_most(persisted, 0.25)) == (fixes, 0, fixes)
    assert abs(persisted.sum - fixes * 0.2) < 1e-9


async def test_a_slow_client_counts_each_fix_from_its_receipt_to_the_merged_delta(autojump_clock):
    pipeline = _pipeline(broadcast_tick_ms=50)
    sent = pipeline.metrics.histogram("gridwatch_ws_delta_latency_seconds", "")
    client, _snapshot = pipeline.hub.connect()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        await pipeline.feed([_msg("c1", T0 + i) for i in range(5)] + [_msg("c2", T0 + 9)])  # at 0 s
        await trio.sleep(0.1)
        await pipeline.feed([_msg("c1", T0 + 10 + i) for i in range(3)])  # at 0.1 s
        await trio.sleep(0.1)
        assert sent.count == 0  # handed to the client, not yet taken to be sent
        frames = await client.next_frames(pipeline.live)  # at 0.2 s: one frame for both
        nursery.cancel_scope.cancel()
    assert len(frames) == 1
    assert (sent.count, _at_most(sent, 0.075), _at_most(sent, 0.1), _at_most(sent, 0.25)) == (9, 0, 3, 9)


async def test_a_battery_report_moves_a_device_on_the_map_without_counting_as_a_fix_sent(autojump_clock):
    pipeline = _pipeline(broadcast_tick_ms=50)
    sent = pipeline.metrics.histogram("gridwatch_ws_delta_latency_seconds", "")
    client, _snapshot = pipeline.hub.connect()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        await pipeline.feed([_msg("c1", T0)])
        await trio.sleep(0.06)
        await client.next_frames(pipeline.live)
        assert sent.count == 1
        await trio.sleep(600)
        status = msgpack.packb({"t": T0 + 5, "bat": 23.5, "chg": False, "net": "4g", "app": "2.3.1"})
        await pipeline.feed([("gw/v1/620105/collector/c1/status", status, _now_ms())])
        await trio.sleep(0.06)
        frames = await client.next_frames(pipeline.live)
        nursery.cancel_scope.cancel()
    assert len(frames) == 1 and '"bat":23.5' in frames[0]
    assert (sent.count, _at_most(sent, 0.075)) == (1, 1)  # not a fix 10 minutes old
