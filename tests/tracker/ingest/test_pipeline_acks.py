"""A broker batch's receipt (its QoS 1 PUBACKs) is settled only once what the batch
produced is committed, in order, and on age even when the batch is small; a batch with
nothing to store is settled too. Run on trio's MockClock with a recording store."""

from __future__ import annotations

import msgpack
import trio
import trio.testing

from geofence.index import GridIndex
from tests.fakes import RecordingStore
from tracker import config
from tracker.ingest.pipeline import Pipeline

T0 = 1_795_000_000_000
TOPIC = "gw/v1/620105/collector/{}/pos"


def _msg(device: str, i: int) -> tuple[str, bytes, int]:
    return TOPIC.format(device), msgpack.packb({"t": T0 + i, "lat": 36.1 + i * 1e-6, "lon": 103.7, "acc": 5}), T0 + i


class SlowStore(RecordingStore):
    """Commits take 50 ms; ``committed`` counts the rows whose transaction has returned."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = 0
        self.dead_committed = 0

    async def write_pings(self, rows, days, devices, filtered=(), alarms=(), components=()) -> int:
        await trio.sleep(0.05)
        self.committed += len(rows)
        return await super().write_pings(rows, days, devices, filtered, alarms, components)

    async def add_dead_letters(self, rows) -> None:
        await trio.sleep(0.05)
        await super().add_dead_letters(rows)
        self.dead_committed += len(rows)


class Receipt:
    """Records, at settlement, the time and what the store had committed by then."""

    def __init__(self, store: SlowStore, settled: list, name: str) -> None:
        self.store, self.settled, self.name = store, settled, name
        self.mids = [1]

    def settle(self) -> None:
        self.settled.append((self.name, round(trio.current_time(), 3), self.store.committed, self.store.dead_committed))


def _pipeline(**pipeline) -> tuple[Pipeline, SlowStore]:
    settings = config.load(None, environ={})
    settings = settings.replace("pipeline", **pipeline)
    settings = settings.replace("handset", max_age_s=1e9, max_future_s=1e9)
    store = SlowStore()
    return Pipeline(settings, store, GridIndex(12), clock_ms=lambda: T0), store


async def test_receipts_are_settled_after_the_commit_of_their_rows_in_order_and_on_age(autojump_clock):
    pipeline, store = _pipeline(persist_flush_ms=200, persist_batch_rows=20_000)
    settled: list = []
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        start = trio.current_time()
        await pipeline.feed([_msg("c1", 0), _msg("c2", 1)], Receipt(store, settled, "fixes"))
        await pipeline.feed([("gw/v1/620105/collector/c1/pos", b"\xc1garbage", T0)],
                            Receipt(store, settled, "garbage"))
        await pipeline.feed([("owntracks/nobody/phone", b'{"_type": "lwt"}', T0)],
                            Receipt(store, settled, "unmapped phone"))
        await trio.sleep(0.199)
        assert settled == []  # two fixes wait for the flush window: no PUBACK before their commit
        await trio.sleep(0.2)
        nursery.cancel_scope.cancel()
    after = [(name, round(t - start, 3), rows, dead) for name, t, rows, dead in settled]
    # one flush at 200 ms (the window's age, however small the batch), committed at 250 ms
    # (pings), the two dead letters (garbage, a phone no device is mapped to) at 300 ms:
    # every receipt settles after both, in feed order
    assert after == [("fixes", 0.3, 2, 2), ("garbage", 0.3, 2, 2), ("unmapped phone", 0.3, 2, 2)]


async def test_a_batch_with_nothing_to_store_is_settled_without_waiting_for_a_window(autojump_clock):
    pipeline, store = _pipeline(persist_flush_ms=200)
    settled: list = []
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: pipeline.run(with_broker=False, task_status=task_status))
        start = trio.current_time()
        await pipeline.feed([], Receipt(store, settled, "packet ids only"))
        await trio.sleep(0.3)
        nursery.cancel_scope.cancel()
    assert [(name, round(t - start, 3)) for name, t, _, _ in settled] == [("packet ids only", 0.2)]
