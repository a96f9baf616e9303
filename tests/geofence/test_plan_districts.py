"""A patrol plan across districts: each responsibility area lies in one district; a
district sees its areas, the shifts in them, its own exceptions and the city-wide ones;
an exception is a district's only when all it names is."""

from __future__ import annotations

import pytest

from geofence.plan import PatrolPlan, PlanError

ANNING, QILIHE = "620105", "620103"
A_AREA, Q_AREA = "620105001001", "620103001001"


def doc() -> dict:
    return {
        "zone": "Asia/Shanghai",
        "areas": {A_AREA: {"name": "Anning 1", "grids": ["620105001001001", "620105001001002"]},
                  Q_AREA: {"name": "Qilihe 1", "grids": ["620103001001001"]}},
        "shifts": [{"collector": "a1", "area": A_AREA, "days": "Mon-Fri", "start": "08:00", "end": "10:00"},
                   {"collector": "q1", "area": Q_AREA, "days": "Mon-Fri", "start": "08:00", "end": "10:00"},
                   # patrols in both districts: neither district's alone
                   {"collector": "both", "area": A_AREA, "days": "Sat", "start": "08:00", "end": "10:00"},
                   {"collector": "both", "area": Q_AREA, "days": "Sun", "start": "08:00", "end": "10:00"}],
        "exceptions": [{"type": "holiday", "day": "2020-10-01", "name": "国庆节"},
                       {"type": "leave", "collector": "a1", "day": "2020-11-24"},
                       {"type": "leave", "collector": "q1", "day": "2020-11-24"},
                       {"type": "swap", "day": "2020-11-25", "giver": "a1", "taker": "q1"},
                       {"type": "extra", "collector": "a1", "area": A_AREA, "day": "2020-11-26", "start": "19:00", "end": "21:00"}],
        "rules": {"areas": {A_AREA: {"passes_required": 2}, Q_AREA: {"passes_required": 3}}},
    }


def test_an_area_spanning_two_districts_is_refused():
    bad = doc()
    bad["areas"][A_AREA]["grids"].append("620103001001002")
    with pytest.raises(PlanError, match="one district"):
        PatrolPlan.from_dict(bad)


def test_areas_and_collectors_belong_to_the_district_of_their_grids():
    plan = PatrolPlan.from_dict(doc())
    assert (plan.area_district(A_AREA), plan.area_district(Q_AREA), plan.area_district("nowhere")) == (ANNING, QILIHE, None)
    assert plan.district_areas(ANNING) == {A_AREA}
    assert plan.district_collectors(ANNING) == {"a1"} and plan.district_collectors(QILIHE) == {"q1"}


def test_a_district_sees_its_areas_shifts_rules_its_exceptions_and_the_city_wide_ones():
    anning = PatrolPlan.from_dict(doc()).scoped(ANNING).to_dict()
    assert list(anning["areas"]) == [A_AREA]
    assert [s["collector"] for s in anning["shifts"]] == ["a1", "both"]
    assert [(e["type"], e.get("collector")) for e in anning["exceptions"]] == [("holiday", None), ("leave", "a1"), ("extra", "a1")]
    assert anning["rules"] == {"areas": {A_AREA: {"passes_required": 2}}}
    assert "q1" not in str(anning) and Q_AREA not in str(anning)
    assert PatrolPlan.from_dict(doc()).scoped(None) == PatrolPlan.from_dict(doc())


@pytest.mark.parametrize(("item", "anning", "qilihe"), [
    ({"type": "leave", "collector": "a1", "day": "2020-12-01"}, True, False),
    ({"type": "leave", "collector": "q1", "day": "2020-12-01"}, False, True),
    ({"type": "leave", "collector": "both", "day": "2020-12-01"}, False, False),
    ({"type": "leave", "collector": "nobody", "day": "2020-12-01"}, False, False),
    ({"type": "swap", "day": "2020-12-01", "giver": "a1", "taker": "q1"}, False, False),
    ({"type": "reassign", "collector": "a1", "day": "2020-12-01", "area": Q_AREA}, False, False),
    ({"type": "extra", "collector": "a1", "area": A_AREA, "day": "2020-12-01", "start": "19:00", "end": "21:00"}, True, False),
    ({"type": "holiday", "day": "2020-12-01"}, False, False),
    ({"type": "makeup", "day": "2020-12-05", "follows": 0}, False, False),
    ({"type": "leave", "collector": ["a1"], "day": "2020-12-01"}, False, False),
])
def test_an_exception_is_a_districts_when_all_it_names_is(item, anning, qilihe):
    plan = PatrolPlan.from_dict(doc())
    assert (plan.owned_by(item, ANNING), plan.owned_by(item, QILIHE)) == (anning, qilihe)
