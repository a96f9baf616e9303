"""The demo city: the committed file is what the city generator draws, and it imports
cleanly as 384 unit grids in 8 streets of 4 communities."""

from __future__ import annotations

from geofence.importer import cover, read_geojson
from tracker.devcity.city import PATH, demo_city, demo_plan


def test_the_committed_demo_city_is_what_the_generator_draws(tmp_path):
    assert demo_city().write(tmp_path / "anning.geojson").read_bytes() == PATH.read_bytes()


def test_the_demo_city_imports_cleanly_into_streets_communities_and_grids():
    report = read_geojson(PATH)
    assert report.ok and report.warnings == [], (report.errors, report.warnings)
    codes = [g.code for g in report.grids]
    assert len(codes) == len(set(codes)) == 384
    assert {c[:6] for c in codes} == {"620105"}
    assert len({c[:9] for c in codes}) == 8 and len({c[:12] for c in codes}) == 32
    owner, problems = cover(report.grids, 12)
    assert problems == [] and set(owner.values()) == set(codes)


def test_the_demo_plan_gives_each_community_one_responsibility_grid():
    plan = demo_plan(demo_city().geojson(), collectors=40)
    assert len(plan["areas"]) == 32
    assert sum(len(a["grids"]) for a in plan["areas"].values()) == 384
    assert {s["collector"] for s in plan["shifts"]} == {f"c{i:04d}" for i in range(1, 41)}
