"""Decode works in slices between yields: bounded by message count and payload bytes."""

from __future__ import annotations

from tracker.ingest.pipeline import DECODE_SLICE_BYTES, DECODE_SLICE_MESSAGES, _slices


def messages(sizes: list[int]) -> list[tuple[str, bytes, int]]:
    return [(f"gw/v1/620105/collector/c{i:04d}/pos", b"x" * size, i) for i, size in enumerate(sizes)]


def test_single_pings_are_cut_by_count_and_batches_by_bytes():
    pings = messages([70] * (2 * DECODE_SLICE_MESSAGES + 5))
    assert [len(p) for p in _slices(pings)] == [DECODE_SLICE_MESSAGES, DECODE_SLICE_MESSAGES, 5]
    batches = messages([1_400] * 40)  # 20 fixes each
    per_slice = -(-DECODE_SLICE_BYTES // 1_400)  # the message that crosses the budget closes the slice
    assert [len(p) for p in _slices(batches)] == [per_slice, per_slice, per_slice, 40 - 3 * per_slice]


def test_every_message_is_kept_in_order_and_an_oversized_one_closes_its_slice():
    batch = messages([10, DECODE_SLICE_BYTES * 3, 10, 10])
    parts = _slices(batch)
    assert [m for part in parts for m in part] == batch
    assert [len(p) for p in parts] == [2, 2]
    assert _slices([]) == []
