"""`tracker taxonomy` and `tracker departments` as real processes against the test
database: each load of a changed file is a new version with its digest (the same text
again is not), a bad file is refused naming its problems and changes nothing, members are
added and removed, every change audited as ``cli:<os user>``; and a case keeps the
version it was filed under when a newer one is loaded."""

from __future__ import annotations

import os
import sys

import trio

from tests.harness import REPO, store_task
from tests.tracker.cases.conftest import ANNING, CITY_COMMANDER, COMMANDER
from tracker.cases.engine import NewCase
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY


async def tracker(dsn: str, *args: str) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environ["TRACKER_DATABASE__DSN"] = dsn
    with trio.fail_after(60):
        done = await trio.run_process([sys.executable, "-m", "tracker", *args], cwd=REPO, env=environ,
                                      capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_taxonomy_versions_and_department_members_from_the_command_line(database, tmp_path, nursery):
    store = await nursery.start(store_task, database)
    code, out, err = await tracker(database, "taxonomy", "show")
    assert code == 1 and "no taxonomy loaded" in err
    code, out, _ = await tracker(database, "taxonomy", "load", str(DEMO_TAXONOMY))
    assert code == 0 and out.startswith("taxonomy version 1: example-2026.1") and "an example" in out
    code, out, _ = await tracker(database, "taxonomy", "load", str(DEMO_TAXONOMY))
    assert code == 0 and out.startswith("taxonomy version 1 (unchanged")
    changed = tmp_path / "city.toml"
    changed.write_text(DEMO_TAXONOMY.read_text(encoding="utf-8").replace('version = "example-2026.1"',
                                                                         'version = "example-2026.2"'), encoding="utf-8")
    assert (await tracker(database, "taxonomy", "load", str(changed)))[1].startswith("taxonomy version 2: example-2026.2")
    broken = tmp_path / "broken.toml"
    broken.write_text('city = "x"\nversion = "1"\n[[major]]\nkind = "component"\ncode = "1"\n', encoding="utf-8")
    code, _, err = await tracker(database, "taxonomy", "load", str(broken))
    assert code == 1 and "major[0]: code must be two digits" in err
    code, out, _ = await tracker(database, "taxonomy", "show")
    assert code == 0 and "taxonomy version 2: example-2026.2" in out and "E0102" in out and "620105-HW" in out
    assert [v["version"] for v in await store.taxonomy_versions()] == [2, 1]
    assert [e["target"] for e in await store.audit_entries(action="taxonomy.load")] == ["taxonomy:2", "taxonomy:1"]

    await store.add_account("wang.fang", "viewer", "620105", "-")
    assert (await tracker(database, "departments", "add-member", "620105-HW", "wang.fang"))[1] == \
        "wang.fang is a member of 620105-HW\n"
    assert (await tracker(database, "departments", "members"))[1].split() == ["620105-HW", "wang.fang"]
    code, _, err = await tracker(database, "departments", "add-member", "NOPE", "wang.fang")
    assert code == 1 and "no department 'NOPE'" in err
    code, _, err = await tracker(database, "departments", "add-member", "620105-HW", "nobody")
    assert code == 1 and "no account named 'nobody'" in err
    # an Anning account in Qilihe's office could act on none of its cases (it sees Anning's only)
    code, _, err = await tracker(database, "departments", "add-member", "620103-HW", "wang.fang")
    assert code == 1 and "account wang.fang is 620105's; department 620103-HW works in 620103" in err
    assert (await tracker(database, "departments", "remove-member", "620105-HW", "wang.fang"))[0] == 0
    assert await store.department_members() == []
    audit = await store.audit_entries(action="department.")
    assert [(e["action"], e["actor"].startswith("cli:")) for e in audit] == [
        ("department.member_remove", True), ("department.member_add", True)]


async def test_a_case_keeps_the_taxonomy_version_it_was_filed_under(world):
    case, _ = await world.engine.create(NewCase("dispatcher", "E0102", lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    renamed = DEMO_TAXONOMY.read_text(encoding="utf-8").replace('name = "暴露垃圾"', 'name = "积存垃圾渣土"')
    version, taxonomy, created = await world.engine.load_taxonomy(renamed, CITY_COMMANDER)
    assert created and version == case["taxonomy_version"] + 1 and taxonomy.categories["E0102"].name == "积存垃圾渣土"
    again = world.engine_again()
    assert (await again.get(case["id"], COMMANDER))["category_name"] == "暴露垃圾"
    newer, _ = await again.create(NewCase("dispatcher", "E0102", lat=ANNING[0], lon=ANNING[1]), COMMANDER)
    assert newer["taxonomy_version"] == version and newer["category_name"] == "积存垃圾渣土"
