"""Pipeline time windows on trio's MockClock: persistence batches by size or by age,
the live fan-out ticks and coalesces, and a stop drains everything received."""

from __future__ import annotations

import json

import msgpack
import trio
import trio.testing

from geofence.index import GridIndex
from tests.fakes import RecordingStore
from tracker import config
from tracker.ingest.pipeline import Pipeline
from tracker.live.fanout import Client

T0 = 1_795_000_000_000
TOPIC = "gw/v1/620105/collector/{}/pos"


def _msg(device: str, i: int) -> tuple[str, bytes, int]:
    return TOPIC.format(device), msgpack.packb({"t": T0 + i, "lat": 36.1 + i * 1e-6, "lon": 103.7, "acc": 5}), T0 + i


def _pipeline(**pipeline) -> tuple[Pipeline, RecordingStore]:
    settings = config.load(None, environ={})
    settings = settings.replace("pipeline", **pipeline)
    settings = settings.replace("handset", max_age_s=1e9, max_future_s=1e9)
    store = RecordingStore()
    return Pipeline(settings, store, GridIndex(12), clock_ms=lambda: T0), store


async def test_a_lone_fix_is_persisted_when_the_flush_window_closes(autojump_clock):
    pipeline, store = _pipeline(persist_flush_ms=200)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        start = trio.current_time()
        await pipeline.feed([_msg("c1", 0)])
        await trio.sleep(0.199)
        assert store.writes == []
        await trio.sleep(0.002)
        assert [(round(t - start, 3), n) for t, n in store.writes] == [(0.2, 1)]
        nursery.cancel_scope.cancel()


async def test_a_full_batch_is_persisted_at_once(autojump_clock):
    pipeline, store = _pipeline(persist_flush_ms=5000, persist_batch_rows=100)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        start = trio.current_time()
        await pipeline.feed([_msg(f"c{i}", i) for i in range(100)])
        await trio.sleep(0.001)
        assert [(round(t - start, 3), n) for t, n in store.writes] == [(0.0, 100)]
        nursery.cancel_scope.cancel()


async def test_stop_drains_what_was_received(autojump_clock):
    pipeline, store = _pipeline(persist_flush_ms=60_000)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        for i in range(10):
            await pipeline.feed([_msg("c1", i)])
        await pipeline.stop()
    assert sum(n for _, n in store.writes) == 10


async def test_live_clients_get_one_frame_per_tick_with_the_latest_position(autojump_clock):
    pipeline, _ = _pipeline(broadcast_tick_ms=50)
    client, _snapshot = pipeline.hub.connect()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        await pipeline.feed([_msg("c1", i) for i in range(5)] + [_msg("c2", 9)])
        await trio.sleep(0.06)
        frames = await client.next_frames(pipeline.live)
        nursery.cancel_scope.cancel()
    (frame,) = frames
    assert sorted((d["id"], d["t"]) for d in json.loads(frame)["devices"]) == [("c1", T0 + 4), ("c2", T0 + 9)]


def test_a_slow_client_gets_coalesced_updates_not_a_backlog():
    client = Client(max_pending_devices=10)
    client.offer_delta({"c1": {"id": "c1", "t": 1}}, "frame-1")
    client.offer_delta({"c1": {"id": "c1", "t": 2}, "c2": {"id": "c2", "t": 2}}, "frame-2")
    client.offer_delta({"c1": {"id": "c1", "t": 3}}, "frame-3")
    assert client.pending == {"c1": {"id": "c1", "t": 3}, "c2": {"id": "c2", "t": 2}}


def test_a_client_too_far_behind_is_sent_a_snapshot_instead():
    client = Client(max_pending_devices=2)
    client.offer_delta({"a": {}}, "1")
    client.offer_delta({"b": {}, "c": {}}, "2")
    assert (client.pending, client.needs_snapshot) == ({}, True)


async def test_a_status_report_battery_shows_on_the_live_map(autojump_clock):
    pipeline, _ = _pipeline()
    client, _snapshot = pipeline.hub.connect()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        await pipeline.feed([_msg("c1", 0)])  # a fix without battery
        await trio.sleep(0.06)
        await client.next_frames(pipeline.live)
        status = msgpack.packb({"t": T0 + 5, "bat": 23.5, "chg": False, "net": "4g", "app": "2.3.1"})
        await pipeline.feed([("gw/v1/620105/collector/c1/status", status, T0 + 5)])
        await trio.sleep(0.06)
        frames = [json.loads(f) for f in await client.next_frames(pipeline.live)]
        nursery.cancel_scope.cancel()
    assert [(d["id"], d["bat"]) for f in frames for d in f["devices"]] == [("c1", 23.5)]
