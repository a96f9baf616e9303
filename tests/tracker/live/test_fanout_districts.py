"""The hub routes the live feed by district: a district's client gets its district's
devices, alerts and alarms and nothing else, in its snapshot, its deltas (merged ones of
a slow client too) and its events; the city's clients get everything; each district's
delta is encoded once for all of its clients, and the city's is built from those."""

from __future__ import annotations

import json

import trio

from geofence.placed import Placed
from protocols.model import DeviceClass, Fix
from tracker.app.web_edge import HubFeed
from tracker.live.fanout import Client, Hub
from tracker.live.state import LiveState
from tracker.metrics import Metrics

ANNING, QILIHE, XIGU = "620105", "620103", "620104"
T0 = 1_795_000_000_000
CELL = 0x8C3DA9A4A4CC1FF


def fleet(live: LiveState, district: str, count: int, prefix: str) -> list[str]:
    ids = [f"{prefix}{n:04d}" for n in range(count)]
    for n, device in enumerate(ids):
        move(live, device, district, T0 + n)
    return ids


def move(live: LiveState, device: str, district: str, t_ms: int) -> None:
    fix = Fix(device, DeviceClass.COLLECTOR, district, t_ms, 36.1 + (t_ms % 1000) * 1e-6, 103.7, t_ms, 5.0)
    live.devices[device] = Placed(fix, CELL, f"{district}001001001", False)
    live.dirty.add(device)


def hub_of(live: LiveState, max_pending_devices: int = 1000) -> Hub:
    return Hub(live, Metrics(), 100, max_pending_devices)


async def frames_of(client: Client, live: LiveState) -> list[dict]:
    with trio.fail_after(1):
        return [json.loads(f) for f in await client.next_frames(live)]


def shown(frames: list[dict]) -> set[str]:
    return {d["id"] for f in frames if "devices" in f for d in f["devices"]}


async def test_each_district_gets_its_own_moves_and_the_city_all_of_them():
    live = LiveState()
    anning = fleet(live, ANNING, 30, "a")
    qilihe = fleet(live, QILIHE, 20, "q")
    hub = hub_of(live)
    a1, a2 = hub.join(ANNING), hub.join(ANNING)
    q = hub.join(QILIHE)
    city = hub.join(None)
    assert hub.tick() == 50
    assert a1.shared is a2.shared  # encoded once for the district's clients
    got = {name: await frames_of(c, live) for name, c in (("a1", a1), ("a2", a2), ("q", q), ("city", city))}
    assert shown(got["a1"]) == shown(got["a2"]) == set(anning)
    assert shown(got["q"]) == set(qilihe)
    assert shown(got["city"]) == set(anning) | set(qilihe)
    assert all(d["district"] == ANNING for f in got["a1"] for d in f["devices"])
    # the city's delta holds the very views the districts' deltas hold
    by_id = {d["id"]: d for f in got["a1"] + got["q"] for d in f["devices"]}
    assert {d["id"]: d for f in got["city"] for d in f["devices"]} == by_id

    for step in range(1, 4):  # only Qilihe moves: Anning's clients get nothing
        for device in qilihe[:5]:
            move(live, device, QILIHE, T0 + 1000 * step)
        assert hub.tick() == 5
        assert not a1.wake.is_set() and not a1.pending
        assert shown(await frames_of(q, live)) == set(qilihe[:5])
        assert shown(await frames_of(city, live)) == set(qilihe[:5])


async def test_a_slow_district_client_merges_its_districts_moves_only():
    live = LiveState()
    anning = fleet(live, ANNING, 10, "a")
    fleet(live, QILIHE, 10, "q")
    hub = hub_of(live)
    slow = hub.join(ANNING)
    hub.tick()
    for step in range(1, 6):  # it reads nothing while both districts move five times
        for device in list(live.devices):
            move(live, device, live.devices[device].fix.district, T0 + 1000 * step)
        hub.tick()
    frames = await frames_of(slow, live)
    assert len(frames) == 1 and frames[0]["type"] == "delta"
    assert {d["id"]: d["t"] for d in frames[0]["devices"]} == dict.fromkeys(anning, T0 + 5000)


async def test_a_district_client_that_overflows_gets_a_snapshot_of_its_district():
    live = LiveState()
    anning = fleet(live, ANNING, 8, "a")
    fleet(live, QILIHE, 8, "q")
    hub = hub_of(live, max_pending_devices=5)
    client = hub.join(ANNING)
    hub.tick()
    move(live, anning[0], ANNING, T0 + 1000)
    hub.tick()  # merged into what it has not taken: more than it may hold
    frames = await frames_of(client, live)
    assert [f["type"] for f in frames] == ["snapshot"]
    assert shown(frames) == set(anning)


async def test_alerts_and_alarms_go_to_their_district_and_the_city_only():
    live = LiveState()
    hub = hub_of(live)
    anning, qilihe, city = hub.join(ANNING), hub.join(QILIHE), hub.join(None)
    hub.publish_event("alarm", {"device": "mh-3001", "kind": "tilt"}, QILIHE)
    hub.publish_event("alert", {"alert": {"collector": "c1001"}}, ANNING)
    hub.publish_event("alarm", {"device": "x-0001", "kind": "tilt"}, None)  # of no known district: the city's
    hub.publish_event("alarm", {"device": "x-0104", "kind": "tilt"}, XIGU)  # nobody of Xigu watches
    assert [f.get("device") or f["alert"]["collector"] for f in await frames_of(anning, live)] == ["c1001"]
    assert [f.get("device") or f["alert"]["collector"] for f in await frames_of(qilihe, live)] == ["mh-3001"]
    assert [f.get("device") or f["alert"]["collector"] for f in await frames_of(city, live)] == ["mh-3001", "c1001", "x-0001", "x-0104"]


async def test_devices_of_a_district_nobody_watches_are_not_encoded_without_city_clients(monkeypatch):
    live = LiveState()
    anning = fleet(live, ANNING, 3, "a")
    fleet(live, QILIHE, 3, "q")
    hub = hub_of(live)
    client = hub.join(ANNING)
    encoded: list[list[dict]] = []
    import tracker.live.fanout as fanout

    real = fanout._encode_list
    monkeypatch.setattr(fanout, "_encode_list", lambda devices: encoded.append(devices) or real(devices))
    hub.tick()
    assert [{d["id"] for d in part} for part in encoded] == [set(anning)]
    assert shown(await frames_of(client, live)) == set(anning)


def test_clients_leave_their_district_group():
    hub = hub_of(LiveState())
    a, city = hub.join(ANNING), hub.join(None)
    assert set(hub.by_district) == {ANNING, None}
    hub.disconnect(a)
    assert set(hub.by_district) == {None} and hub.clients == {city}
    hub.disconnect(city)
    assert hub.by_district == {} and not hub.clients


def test_a_district_subscription_snapshot_holds_its_district_only():
    live = LiveState()
    anning = fleet(live, ANNING, 7, "a")
    qilihe = fleet(live, QILIHE, 4, "q")
    feed = HubFeed(hub_of(live), live)
    for district, expected in ((ANNING, anning), (QILIHE, qilihe), (None, anning + qilihe)):
        frames = [json.loads(f) for f in feed.subscribe(district).snapshot_frames(3)]
        assert [d["id"] for f in frames for d in f["devices"]] == expected
        assert frames[0]["type"] == "snapshot" and all(f["type"] == "snapshot_part" for f in frames[1:])


async def test_latency_is_counted_per_fix_shown_to_each_client():
    """Receive times sampled from a slice of fixes of both districts: a district's client
    counts its district's share of them, a city client all of them."""
    live = LiveState()
    hub = hub_of(live)
    histogram = hub.metrics.histogram("gridwatch_ws_delta_latency_seconds", "")
    anning, city = hub.join(ANNING), hub.join(None)
    fixes = []
    for n in range(8):
        district = ANNING if n % 2 else QILIHE
        move(live, f"d{n}", district, T0 + n)
        fixes.append(live.devices[f"d{n}"].fix)
    hub.placed(fixes, len(fixes))
    hub.tick()
    await frames_of(anning, live)
    assert histogram.count == 4
    await frames_of(city, live)
    assert histogram.count == 4 + 8
