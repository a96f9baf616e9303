"""The inbound channel bounds payload bytes as well as batches: once [pipeline]
inbound_max_bytes of MQTT payload wait for decode, the broker reader is held back (and
the broker queues) until decode has taken some."""

from __future__ import annotations

import msgpack
import trio
import trio.testing

from geofence.index import GridIndex
from tests.fakes import RecordingStore
from tracker import config
from tracker.ingest.pipeline import Pipeline

T0 = 1_795_000_000_000


def _batch(device: str, n: int) -> list[tuple[str, bytes, int]]:
    return [(f"gw/v1/620105/collector/{device}/pos",
             msgpack.packb({"t": T0 + i, "lat": 36.1 + i * 1e-6, "lon": 103.7, "acc": 5, "seq": i}), T0 + i) for i in range(n)]


async def test_feed_waits_while_the_payload_bytes_waiting_are_at_the_budget(autojump_clock):
    settings = config.load(None, environ={}).replace("pipeline", inbound_max_bytes=1000)
    pipeline = Pipeline(settings, RecordingStore(), GridIndex(12), clock_ms=lambda: T0 + 60_000)
    first, second, third = _batch("c01", 20), _batch("c02", 20), _batch("c03", 20)
    size = sum(len(m[1]) for m in first)
    assert 500 < size < 1000  # two fit under the budget, a third must wait
    fed: list[str] = []

    async def feed(name: str, batch) -> None:
        await pipeline.feed(batch)
        fed.append(name)

    async with trio.open_nursery() as nursery:
        await feed("first", first)
        await feed("second", second)  # below the budget when it came: taken, over it now
        nursery.start_soon(feed, "third", third)
        await trio.testing.wait_all_tasks_blocked()
        assert fed == ["first", "second"]
        assert pipeline.metrics.render().count(f"gridwatch_inbound_queue_bytes {float(2 * size)}") == 1
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        with trio.fail_after(5):
            while len(fed) < 3 or pipeline.metrics.get("gridwatch_fixes_ingested_total") < 60:
                await trio.sleep(0.01)
        assert fed == ["first", "second", "third"]
        assert pipeline._inbound_bytes == 0
        assert sorted(pipeline.live.devices) == ["c01", "c02", "c03"]
        nursery.cancel_scope.cancel()
