"""The broker ACL pins a device to its own topics: the user name is the device id."""

from __future__ import annotations

import time

import msgpack
import trio

from tests.harness import LAT, LON, start_service
from tests.helpers import apublish, wait_for


async def test_device_can_publish_only_as_itself(settings, broker):
    fix = msgpack.packb({"t": int(time.time() * 1000), "lat": LAT, "lon": LON, "acc": 5})
    async with trio.open_nursery() as nursery:
        _store, running = await start_service(nursery, settings)
        await apublish(broker, [("gw/v1/620105/collector/c9002/pos", fix), ("gw/v1/620105/collector/c9001/pos", fix)], username="c9001")
        await wait_for(lambda: "c9001" in running.pipeline.live.devices)
        await trio.sleep(0.3)  # time enough for a second message to arrive, if the broker let it through
        assert set(running.pipeline.live.devices) == {"c9001"}
        nursery.cancel_scope.cancel()
