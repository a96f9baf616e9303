"""The demo fleet over two districts: collectors, vehicles and sensors in Anning and in
Qilihe, each publishing under its own district, each collector walking its own
community's grids (the community the demo's plan assigns it), nobody crossing the river."""

from __future__ import annotations

import json
import random

from geofence.importer import cover, read_geojson
from geofence.index import GridIndex
from tests.harness import DEMO_CITY
from tracker.devcity.city import demo_plan
from tracker.devcity.simulator import build_fleet

ANNING, QILIHE = "620105", "620103"


def _index() -> GridIndex:
    owner, problems = cover(read_geojson(DEMO_CITY).grids, 12)
    assert problems == []
    return GridIndex(12, owner.items())


def test_the_demo_fleet_has_devices_of_both_districts_publishing_under_their_own():
    fleet = build_fleet(DEMO_CITY, collectors=48, vehicles=6, sensors=12)
    districts = {
        "collector": [w.district for w in fleet.collectors],
        "vehicle": [v.walker.district for v in fleet.vehicles],
        "sensor": [s.district for s in fleet.sensors],
    }
    assert {kind: (d.count(ANNING), d.count(QILIHE)) for kind, d in districts.items()} == {
        "collector": (32, 16), "vehicle": (4, 2), "sensor": (8, 4)}
    assert {(s.district, s.type) for s in fleet.sensors} == {
        (d, kind) for d in (ANNING, QILIHE) for kind in ("manhole", "bin", "waterlog")}
    assert {(v.walker.district, v.speeder) for v in fleet.vehicles} == {(d, fast) for d in (ANNING, QILIHE) for fast in (True, False)}
    for w in fleet.collectors:
        assert w.topic == f"gw/v1/{w.district}/collector/{w.device}/pos"
    for v in fleet.vehicles:
        assert v.walker.topic == f"gw/v1/{v.walker.district}/vehicle/{v.walker.device}/pos"  # its MQTT fallback
        assert v.phone[4:8] == v.walker.district[2:]  # 0139 + county + serial
    for s in fleet.sensors:
        assert s.topic_root == f"gw/v1/{s.district}/sensor/{s.device}"
        assert s.component.startswith(s.district) and len(s.component) == 16
        topics = {topic for topic, _ in s.tick(1_000.0, random.Random(1), 60.0)}
        assert topics == {f"gw/v1/{s.district}/sensor/{s.device}/status"}
    ids = [w.device for w in fleet.collectors] + [v.device for v in fleet.vehicles] + [s.device for s in fleet.sensors]
    assert len(ids) == len(set(ids))


def test_every_device_stands_and_moves_on_grids_of_its_own_district():
    index = _index()
    fleet = build_fleet(DEMO_CITY, collectors=48, vehicles=6, sensors=12)
    for s in fleet.sensors:
        place = index.place(*s.position)
        assert place is not None and place.district == s.district, s.device
    for walker in [*fleet.collectors, *(v.walker for v in fleet.vehicles)]:
        waypoints = [index.place(lat, lon) for lat, lon in walker.route]
        if walker.behaviour == "stray":  # its last waypoint lies in another community of its district
            waypoints = waypoints[:-1]
            stray = index.place(*walker.route[-1])
            assert stray is not None and stray.district == walker.district, walker.device
        assert all(p is not None and p.district == walker.district for p in waypoints), walker.device


def test_each_collector_walks_the_community_the_plan_assigns_it():
    doc = json.loads(DEMO_CITY.read_text(encoding="utf-8"))
    index = _index()
    fleet = build_fleet(DEMO_CITY, collectors=48, vehicles=0, sensors=0)
    plan = demo_plan(doc, collectors=48)
    area_of = {s["collector"]: s["area"] for s in plan["shifts"]}
    for walker in fleet.collectors:
        route = walker.route[:-1] if walker.behaviour == "stray" else walker.route
        places = [index.place(lat, lon) for lat, lon in route]
        assert {p.grid if p else None for p in places} == set(plan["areas"][area_of[walker.device]]["grids"]), walker.device
        if walker.district == QILIHE:
            assert area_of[walker.device].startswith(QILIHE)
