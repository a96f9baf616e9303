"""The city generator's command line: a damaged file names its seeded errors, and the
import's report finds each of them."""

from __future__ import annotations

import re

from geofence.citygen import main
from geofence.importer import read_geojson


def test_a_damaged_city_says_where_its_errors_are_and_the_import_report_names_them(tmp_path, capsys):
    path = tmp_path / "damaged.geojson"
    assert main(["120", str(path), "--damage", "--seed", "3"]) == 0
    said = capsys.readouterr().out
    bad, duplicate, bow_tie, grown, neighbour, removed = re.search(
        r"bad code (\d+); duplicate code (\d+); self-intersecting (\d+); (\d+) overlaps (\d+); hole where (\d+) was", said).groups()
    report = read_geojson(path)
    assert not report.ok and len(report.grids) < 119
    errors = "\n".join(report.errors)
    assert f"bad code '{bad}'" in errors
    assert f"duplicate code {duplicate}" in errors
    assert f"({bow_tie}): self-intersecting polygon" in errors
    assert re.search(rf"grids ({grown} and {neighbour}|{neighbour} and {grown}) overlap", errors)
    (hole,) = report.warnings
    assert hole.startswith("hole of") and removed not in hole
