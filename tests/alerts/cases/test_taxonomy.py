"""Case categories as data: the demo's example file loads whole; a broken file is refused
with every problem named by place; any text at all gives a taxonomy or a TaxonomyError."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from alerts.cases.lifecycle import Stage
from alerts.cases.taxonomy import Kind, Limit, TaxonomyError, limit_duration, load_taxonomy, parse_limit, taxonomy_from_doc

EXAMPLE = Path(__file__).resolve().parents[3] / "tracker" / "devcity" / "taxonomy.toml"

MINIMAL = """
city = "某市"
version = "1"
[[department]]
code = "HW"
name = "环卫所"
[[major]]
kind = "event"
code = "01"
name = "市容环境"
[[major.minor]]
code = "02"
name = "暴露垃圾"
department = "HW"
limits = { file = "30min", dispatch = "30min", handle = "4h", verify = "2h", close = "1d" }
"""


def test_the_demo_example_loads_and_says_it_is_an_example():
    taxonomy = load_taxonomy(EXAMPLE.read_text(encoding="utf-8"))
    assert taxonomy.example
    cover = taxonomy.category("C0101")
    assert (cover.kind, cover.major_name, cover.name, cover.urgent, cover.natural_clock) == \
        (Kind.COMPONENT, "公用设施", "上水井盖", True, True)
    assert cover.limits[Stage.HANDLE] == Limit(2, "h")
    refuse = taxonomy.category("E0102")
    assert (refuse.name, refuse.urgent, refuse.natural_clock) == ("暴露垃圾", False, False)
    assert {c.kind for c in taxonomy.categories.values()} == {Kind.COMPONENT, Kind.EVENT}
    assert all(set(c.limits) == set(Stage) for c in taxonomy.categories.values())


def test_a_district_case_goes_to_the_districts_own_department_where_there_is_one():
    taxonomy = load_taxonomy(EXAMPLE.read_text(encoding="utf-8"))
    refuse = taxonomy.category("E0102")
    assert taxonomy.department_for(refuse, "620103").name == "七里河区环境卫生管理所"
    assert taxonomy.department_for(refuse, "620104").name == "兰州市环境卫生管理局"  # Xigu has none of its own
    assert taxonomy.department_for(taxonomy.category("C0101"), "620105").name == "兰州市供水集团"


def test_a_sensors_component_code_names_its_category():
    taxonomy = load_taxonomy(EXAMPLE.read_text(encoding="utf-8"))
    assert taxonomy.category_of_component("6201050102000017").code == "C0102"
    assert taxonomy.category_of_component("6201059999000017") is None
    assert taxonomy.category_of_component("620105") is None


def test_the_same_version_with_other_content_has_another_digest():
    first = load_taxonomy(MINIMAL)
    second = load_taxonomy(MINIMAL.replace('handle = "4h"', 'handle = "5h"'))
    assert first.version == second.version and first.digest != second.digest


def test_a_broken_file_is_refused_with_every_problem_named():
    broken = MINIMAL.replace('department = "HW"', 'department = "XX"').replace('handle = "4h"', 'handle = "soon"') \
        .replace('close = "1d"', 'closing = "1d"').replace('kind = "event"', 'kind = "event"\n') + """
[[major]]
kind = "other"
code = "02"
name = "x"
"""
    with pytest.raises(TaxonomyError) as refused:
        load_taxonomy(broken)
    message = str(refused.value)
    assert "major[0].minor[0] (E0102): department 'XX' is not among the departments" in message
    assert "limits.handle: 'soon' is not a limit" in message
    assert "unknown stage 'closing'" in message
    assert "limits missing for close" in message
    assert "major[1]: kind must be one of component, event" in message


@pytest.mark.parametrize(("text", "problem"), [
    ("city = ", "not TOML"),
    ('city = "x"\nversion = "1"', "no categories"),
    (MINIMAL.replace('version = "1"', 'version = ""'), "version: a non-empty text is needed"),
    (MINIMAL + MINIMAL[MINIMAL.index("[[major.minor]]"):], "category E0102 appears twice"),
    (MINIMAL.replace('code = "02"', 'code = "2"'), "code must be two digits"),
])
def test_other_mistakes_are_named(text, problem):
    with pytest.raises(TaxonomyError, match=problem):
        load_taxonomy(text)


@pytest.mark.parametrize(("text", "limit"), [("30min", Limit(30, "min")), ("4h", Limit(4, "h")), (" 1.5 d ", Limit(1.5, "d"))])
def test_limits_read_with_their_units(text, limit):
    assert parse_limit(text) == limit


@pytest.mark.parametrize("text", ["0h", "-1h", "4", "4 hours", "", 4])
def test_limits_without_a_positive_amount_and_unit_are_refused(text):
    with pytest.raises(ValueError, match="is not a limit"):
        parse_limit(text)


def test_a_working_day_limit_lasts_as_long_as_the_calendars_working_day():
    day = timedelta(hours=7, minutes=30)
    assert limit_duration(Limit(2, "d"), day) == timedelta(hours=15)
    assert limit_duration(Limit(30, "min"), day) == timedelta(minutes=30)


@given(st.text(max_size=400))
def test_any_text_gives_a_taxonomy_or_a_taxonomy_error(text):
    try:
        load_taxonomy(text)
    except TaxonomyError:
        pass


LOOSE = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                  st.dictionaries(st.text(max_size=8), st.text(max_size=5), max_size=3))


@given(st.dictionaries(st.sampled_from(["city", "version", "department", "major"]),
                       st.one_of(LOOSE, st.lists(st.dictionaries(
                           st.sampled_from(["kind", "code", "name", "minor", "department", "limits", "clock", "district"]),
                           st.one_of(LOOSE, st.lists(st.dictionaries(st.sampled_from(["code", "name", "department", "limits"]),
                                                                     LOOSE, max_size=4), max_size=2)),
                           max_size=6), max_size=2))))
def test_any_shape_of_document_gives_a_taxonomy_or_a_taxonomy_error(doc):
    try:
        taxonomy_from_doc(doc, "0")
    except TaxonomyError:
        pass
