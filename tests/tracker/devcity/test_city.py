"""The demo city: the committed file is what the city generator draws; it imports cleanly
as 576 unit grids of two districts, Anning north of the Yellow River and Qilihe south of
it, with no grid in or across the river; and the demo's plan keeps every collector to
its own district."""

from __future__ import annotations

import hashlib
import json

import pytest

from geofence.importer import code_problem, cover, read_geojson
from geofence.plan import PatrolPlan
from tracker.devcity.city import (
    ANNING,
    PATH,
    QILIHE,
    RIVER_CLEARANCE_M,
    collector_areas,
    demo_city,
    demo_plan,
    metres_north_of_river,
    share_out,
)


def test_the_committed_demo_city_is_what_the_generator_draws(tmp_path):
    assert demo_city().write(tmp_path / "lanzhou.geojson").read_bytes() == PATH.read_bytes()


def test_the_demo_city_imports_cleanly_into_two_districts_of_streets_communities_and_grids():
    report = read_geojson(PATH)
    assert report.ok and report.warnings == [], (report.errors, report.warnings)
    codes = [g.code for g in report.grids]
    assert len(codes) == len(set(codes)) == 576
    assert [c for c in codes if code_problem(c) is not None] == []
    anning = [c for c in codes if c.startswith("620105")]
    qilihe = [c for c in codes if c.startswith("620103")]
    assert (len(anning), len(qilihe)) == (384, 192)
    assert len({c[:9] for c in anning}) == 8 and len({c[:12] for c in anning}) == 32
    assert len({c[:9] for c in qilihe}) == 4 and len({c[:12] for c in qilihe}) == 16
    assert {g.district for g in report.grids} == {"620105", "620103"}
    assert {g.street_name for g in report.grids if g.district == "620103"} == {"西园街道", "西湖街道", "敦煌路街道", "建兰路街道"}
    owner, problems = cover(report.grids, 12)
    assert problems == [] and set(owner.values()) == set(codes)


# sha256 of the Anning features of the single-district demo city (sorted-key JSON): the
# codes and geometry the tests' reference points and fixtures were written against
ANNING_FEATURES_SHA256 = "c8bdf71e838b9397ddda25e00407b0a12120a597291983364a7b1aa32d1e4f1a"


def test_the_anning_part_is_the_demo_city_it_always_was():
    features = [f for f in json.loads(PATH.read_text(encoding="utf-8"))["features"]
                if f["properties"]["code"].startswith(ANNING.code)]
    digest = hashlib.sha256(json.dumps(features, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    assert (len(features), digest) == (384, ANNING_FEATURES_SHA256)


def test_each_district_keeps_to_its_own_bank_clear_of_the_river():
    for city in demo_city().cities:
        north = city.district == ANNING.code
        for g in city.grids:
            assert g.code.startswith(city.district)
            clearances = [metres_north_of_river(lat, lon) for lon, lat in g.ring]
            if north:
                assert min(clearances) >= RIVER_CLEARANCE_M, g.code
            else:
                assert max(clearances) <= -RIVER_CLEARANCE_M, g.code


def test_the_two_blocks_lie_where_the_districts_are():
    """Anning's core around 36.10 N 103.72 E; Qilihe's across the river, 36.06–36.08 N,
    103.75–103.79 E; the river between them runs at about 36.08–36.09 N."""
    spans = {}
    for city in demo_city().cities:
        points = [p for g in city.grids for p in g.ring]
        spans[city.district] = (min(p[1] for p in points), max(p[1] for p in points),
                                min(p[0] for p in points), max(p[0] for p in points))
    south, north, west, east = spans[QILIHE.code]
    assert 36.06 <= south < north <= 36.08 and 103.75 <= west < east <= 103.79
    south, north, west, east = spans[ANNING.code]
    assert south > 36.09 and west < 103.72 < east and south < 36.10 < north
    assert spans[ANNING.code][0] - spans[QILIHE.code][1] > 0.01  # over a kilometre of river and banks between


def test_a_point_in_the_river_is_neither_bank_and_the_stretch_is_bounded():
    assert abs(metres_north_of_river(36.0860, 103.755)) < 1
    assert metres_north_of_river(36.10, 103.72) > 0 > metres_north_of_river(36.07, 103.77)
    with pytest.raises(ValueError, match="beyond the stretch"):
        metres_north_of_river(36.06, 103.84)


def test_devices_are_shared_out_in_proportion_and_interleaved():
    assert share_out(6, {"620105": 32, "620103": 16}) == ["620105", "620103", "620105"] * 2
    order = share_out(48, {"620105": 32, "620103": 16})
    assert (order.count("620105"), order.count("620103")) == (32, 16)
    assert share_out(3, {"620105": 1}) == ["620105"] * 3
    with pytest.raises(ValueError):
        share_out(1, {})


def test_the_demo_plan_gives_each_community_one_responsibility_grid_and_every_collector_its_own_district():
    doc = json.loads(PATH.read_text(encoding="utf-8"))
    plan = demo_plan(doc, collectors=48)
    stored = PatrolPlan.from_dict(plan)  # what the demo stores: the plan validates as any imported one
    assert (len(stored.areas), len(stored.shifts)) == (48, 48 * 12)
    assert len(plan["areas"]) == 48
    assert sum(len(a["grids"]) for a in plan["areas"].values()) == 576
    assert {s["collector"] for s in plan["shifts"]} == {f"c{i:04d}" for i in range(1, 49)}
    # 48 collectors: one per community, 32 in Anning and 16 in Qilihe
    areas_of: dict[str, set[str]] = {}
    for s in plan["shifts"]:
        areas_of.setdefault(s["collector"], set()).add(s["area"])
    assert all(len(areas) == 1 for areas in areas_of.values())
    assert sorted(a for areas in areas_of.values() for a in areas) == sorted(plan["areas"])
    qilihe = {c for c, areas in areas_of.items() if next(iter(areas)).startswith("620103")}
    assert len(qilihe) == 16
    for collector in qilihe:
        (area,) = areas_of[collector]
        assert all(g.startswith("620103") for g in plan["areas"][area]["grids"]), collector
    slots = [(s["start"], s["end"]) for s in plan["shifts"] if s["collector"] == min(qilihe)]
    assert slots == [(f"{h:02d}:00", f"{(h + 2) % 24:02d}:00") for h in range(0, 24, 2)]
    assert collector_areas(doc, 48) == {s["collector"]: s["area"] for s in plan["shifts"]}


def test_fewer_collectors_than_communities_still_reach_both_districts():
    assigned = collector_areas(json.loads(PATH.read_text(encoding="utf-8")), 3)
    assert assigned == {"c0001": "620105001001", "c0002": "620103001001", "c0003": "620105001002"}
