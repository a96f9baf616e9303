"""The simulated hotline posts Open311 requests to the running service: each becomes a
case of source hotline under one of the listed services, placed in a grid of the demo
city, its caller kept as the reporter; a ticket posted again makes no second case."""

from __future__ import annotations

import trio

from tests.harness import auth_headers, start_service
from tracker.cases.roles import SERVICE
from tracker.devcity.city import PATH as DEMO_CITY
from tracker.devcity.hotline import WORDS, grid_centres, run_hotline
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY


def test_every_grid_has_a_centre_inside_the_city():
    centres = grid_centres(DEMO_CITY)
    assert len(centres) > 100
    assert all(35.9 < lat < 36.3 and 103.5 < lon < 104.0 for lat, lon in centres)


async def test_the_hotline_posts_requests_that_become_cases_once(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings.replace("jt808", enabled=False))
        await running.cases.load_taxonomy(DEMO_TAXONOMY.read_text(encoding="utf-8"), SERVICE)
        key = (await auth_headers(store, role="commander"))["Authorization"].removeprefix("Bearer ")
        await run_hotline(running.url, key, DEMO_CITY, every_s=0.01, seed=3, calls=4)
        first, _ = await running.cases.list(SERVICE)
        await run_hotline(running.url, key, DEMO_CITY, every_s=0.01, seed=3, calls=4)  # the same tickets again
        again, _ = await running.cases.list(SERVICE)
        nursery.cancel_scope.cancel()
    assert len(first) == 4 and [c["id"] for c in again] == [c["id"] for c in first]
    assert sorted(c["external_id"] for c in first) == [f"12319-{n:05d}" for n in range(1, 5)]
    for case in first:
        assert case["source"] == "hotline" and case["state"] == "reported"
        assert case["category"] in WORDS and case["grid"] is not None
        assert case["reporter"] and '"phone": "139' in case["reporter"]
