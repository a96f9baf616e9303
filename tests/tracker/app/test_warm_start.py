"""After a restart the live map starts from the devices heard from last, no more of them
than live state holds: a database full of made-up ids cannot blow up start-up."""

from __future__ import annotations

from protocols.epoch import ms_to_datetime
from tracker.app.service import _warm_start
from tracker.live.state import LiveState
from tracker.storage.store import open_store

T0 = 1_795_000_000_000


def device_row(device: str, rx_ms: int) -> tuple:
    # id, class, district, t, rx, lat, lon, acc, spd, hdg, bat, cell, grid
    return (device, "collector", "620105", ms_to_datetime(rx_ms - 500), ms_to_datetime(rx_ms), 36.1, 103.7, 5.0, None, None,
            80.0, 631_000_000_000_000_001, None)


async def test_the_warm_start_takes_the_devices_heard_from_last(database):
    heard = {"c01": T0 + 5_000, "c02": T0 + 1_000, "c03": T0 + 9_000, "c04": T0 + 3_000, "c05": T0 + 7_000}
    async with open_store(database) as store:
        await store.write_pings([], set(), [device_row(d, rx) for d, rx in heard.items()])
        live = LiveState()
        await _warm_start(store, live, 3)
    assert sorted(live.devices) == ["c01", "c03", "c05"]
    assert live.devices["c03"].fix.rx_ms == T0 + 9_000
