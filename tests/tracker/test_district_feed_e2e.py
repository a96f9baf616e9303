"""District scoping end to end: the running service, real MQTT publishing, clients that
authenticate as an Anning commander, a Qilihe commander and a city commander. While both
districts' collectors and vehicles move and a manhole cover in each district is lifted,
each district's map receives its own devices and alarms and nothing of the other's, in
its snapshot and its deltas; the city's map receives both; and the HTTP API answers
each of them likewise."""

from __future__ import annotations

import httpx
import trio

from tests.harness import auth_headers, ws_url
from tests.helpers import wait_for
from tests.web.districts import ANNING, QILIHE, assert_isolated, check_live_feeds, ids, start_two_districts


async def test_each_districts_live_map_and_api_show_that_district_only(settings, broker, tmp_path):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_two_districts(nursery, settings, tmp_path)
        headers = {ANNING: await auth_headers(store, role="commander", district=ANNING),
                   QILIHE: await auth_headers(store, role="commander", district=QILIHE),
                   None: await auth_headers(store, role="commander", district=None)}
        every = ids(ANNING) | ids(QILIHE)

        async def all_live() -> None:
            await wait_for(lambda: every <= set(running.pipeline.live.devices))

        watched = await check_live_feeds(broker, dict.fromkeys(headers, ws_url(running)), headers, all_live)
        listed = {}
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            for key, h in headers.items():
                response = await http.get("/api/devices", headers=h)
                assert response.status_code == 200, (key, response.text)
                listed[key] = {d["id"] for d in response.json()["devices"]}
            qilihe_device = await http.get("/api/devices/c3001", headers=headers[ANNING])
        nursery.cancel_scope.cancel()
    assert_isolated(watched)
    assert listed == {ANNING: ids(ANNING), QILIHE: ids(QILIHE), None: every}
    assert qilihe_device.status_code == 404
