"""The case API at its edges, over real HTTP on the running service (real Mosquitto and
PostgreSQL, the demo city's example taxonomy, the service's clock fixed): garbage a client
may send is a 400 naming the field, never a 500; a case goes only to a department that
works where the case is."""

from __future__ import annotations

import httpx

from tests.web.test_cases_api import ANNING_SPOT, signed_in, start
from tracker.registry.model import RegisteredDevice


async def test_garbage_in_a_new_case_or_the_list_filters_is_a_400_naming_the_field(settings, nursery):
    store, running = await start(nursery, settings)
    _, city = await signed_in(store, "commander", None)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        huge = "1" + "0" * 400  # a JSON integer no float holds
        for field, body in (("lat", f'{{"category": "E0102", "lat": {huge}, "lon": 103.72}}'),
                            ("lon", f'{{"category": "E0102", "lat": 36.1, "lon": -{huge}}}'),
                            ("description", '{"category": "E0102", "lat": 36.105, "lon": 103.72, "description": "a\\u0000b"}'),
                            # cut at 4000 characters without a word, as it was, a long note lost its end
                            ("description", '{"category": "E0102", "lat": 36.105, "lon": 103.72, "description": "%s"}'
                             % ("很" * 4001))):
            r = await http.post("/api/cases", headers={**city, "Content-Type": "application/json"}, content=body)
            assert r.status_code == 400 and field in r.json()["error"], (field, r.status_code, r.text)
        for key in ("state", "category", "street", "district", "source"):
            r = await http.get("/api/cases", headers=city, params={key: "E01\x0002"})
            assert r.status_code == 400 and key in r.json()["error"], (key, r.status_code, r.text)
        r = await http.get("/api/cases", headers=city, params={"category": "E" * 100})
        assert r.status_code == 400 and "category" in r.json()["error"]
        assert (await http.get("/api/cases", headers=city)).json()["cases"] == []  # nothing was made
        # an action's fields, likewise
        cid = (await http.post("/api/cases", headers=city, json={"category": "E0102", "lat": 36.105, "lon": 103.72})).json()["id"]
        r = await http.post(f"/api/cases/{cid}/actions/request_extension", content=f'{{"reason": "rain", "hours": {huge}}}',
                            headers={**city, "Content-Type": "application/json"})
        assert r.status_code == 400 and "hours" in r.json()["error"], (r.status_code, r.text)
        for field, value in (("reason", "很" * 4001), ("photos", ["x" * 100_000])):
            r = await http.post(f"/api/cases/{cid}/actions/reject", headers=city, json={"reason": "x", field: value})
            assert r.status_code == 400 and field in r.json()["error"], (r.status_code, r.text)
        assert (await http.get(f"/api/cases/{cid}", headers=city)).json()["state"] == "reported"


async def test_a_case_is_dispatched_only_to_a_department_of_its_district_or_the_city(settings, nursery):
    store, running = await start(nursery, settings)
    _, anning = await signed_in(store, "commander", "620105")
    _, city = await signed_in(store, "commander", None)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        r = await http.post("/api/cases", headers=anning, json={"category": "E0102", "lat": ANNING_SPOT[0],
                                                                 "lon": ANNING_SPOT[1]})
        cid = r.json()["id"]
        assert (await http.post(f"/api/cases/{cid}/actions/file", headers=anning)).status_code == 200
        # Qilihe's sanitation office cannot see an Anning case: nobody could handle it
        for headers in (anning, city):
            r = await http.post(f"/api/cases/{cid}/actions/dispatch", headers=headers, json={"department": "620103-HW"})
            assert r.status_code == 400 and "620103-HW" in r.json()["error"] and "department" in r.json()["error"], r.text
        after = (await http.get(f"/api/cases/{cid}", headers=anning)).json()
        assert (after["state"], after["department"]) == ("filed", None)
        assert [e["action"] for e in (await http.get(f"/api/cases/{cid}/timeline", headers=anning)).json()["timeline"]] \
            == ["create", "file"]
        # the district's own department, or a city-wide one
        r = await http.post(f"/api/cases/{cid}/actions/dispatch", headers=anning, json={"department": "HW"})
        assert r.status_code == 200 and r.json()["department"] == "HW", r.text

        # a case on no grid is the city's: no district's department can see it either
        r = await http.post("/api/cases", headers=city, json={"category": "E0102"})
        nowhere = r.json()["id"]
        assert (await http.post(f"/api/cases/{nowhere}/actions/file", headers=city)).status_code == 200
        r = await http.post(f"/api/cases/{nowhere}/actions/dispatch", headers=city, json={"department": "620105-HW"})
        assert r.status_code == 400, r.text
        r = await http.post(f"/api/cases/{nowhere}/actions/dispatch", headers=city, json={"department": "HW"})
        assert r.status_code == 200, r.text


async def test_a_department_takes_members_who_can_see_its_cases_and_a_bad_name_is_a_400(settings, nursery):
    store, running = await start(nursery, settings)
    _, admin = await signed_in(store, "admin", None)
    anning_worker, _ = await signed_in(store, "viewer", "620105")
    city_worker, _ = await signed_in(store, "viewer", None)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        # an Anning account would act for Qilihe's office but never see one of its cases
        r = await http.put(f"/api/departments/620103-HW/members/{anning_worker}", headers=admin)
        assert r.status_code == 400 and "620105" in r.json()["error"] and anning_worker in r.json()["error"], r.text
        for department, account in (("620105-HW", anning_worker), ("HW", anning_worker), ("620103-HW", city_worker)):
            r = await http.put(f"/api/departments/{department}/members/{account}", headers=admin)
            assert r.status_code == 200 and r.json()["changed"], (department, account, r.text)
        members = {d["code"]: d["members"] for d in (await http.get("/api/departments", headers=admin)).json()["departments"]}
        assert (members["620103-HW"], members["620105-HW"], members["HW"]) == ([city_worker], [anning_worker], [anning_worker])
        for method in ("PUT", "DELETE"):
            for name in ("a%00b", "x" * 100):
                r = await http.request(method, f"/api/departments/620105-HW/members/{name}", headers=admin)
                assert r.status_code == 400 and "account" in r.json()["error"], (method, name[:8], r.status_code, r.text)


async def test_a_closed_case_is_evaluated_once(settings, nursery):
    store, running = await start(nursery, settings)
    _, anning = await signed_in(store, "commander", "620105")
    worker, worker_headers = await signed_in(store, "viewer", "620105")
    await store.add_department_member("620105-HW", worker)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        cid = (await http.post("/api/cases", headers=anning, json={"category": "E0102", "lat": ANNING_SPOT[0],
                                                                    "lon": ANNING_SPOT[1]})).json()["id"]
        for action, headers, body in (("file", anning, {}), ("dispatch", anning, {"department": "620105-HW"}),
                                      ("handle", worker_headers, {"feedback": "已清运"}),
                                      ("verify", anning, {"collector": "c0001"}), ("close", anning, {}),
                                      ("evaluate", anning, {"grade": "unsatisfied"})):
            r = await http.post(f"/api/cases/{cid}/actions/{action}", headers=headers, json=body)
            assert r.status_code == 200, (action, r.text)
        assert r.json()["grade"] == "unsatisfied"
        # a second grade would overwrite the first, the one the department's figures count
        r = await http.post(f"/api/cases/{cid}/actions/evaluate", headers=anning, json={"grade": "satisfied"})
        assert r.status_code == 409 and "evaluated" in r.json()["error"], r.text
        after = (await http.get(f"/api/cases/{cid}", headers=anning)).json()
        assert after["grade"] == "unsatisfied" and after["actions"] == []
        timeline = (await http.get(f"/api/cases/{cid}/timeline", headers=anning)).json()["timeline"]
        assert [e["action"] for e in timeline].count("evaluate") == 1


async def test_a_district_dispatchers_case_without_a_place_in_its_grids_is_a_400_naming_lat_and_lon(settings, nursery):
    store, running = await start(nursery, settings)
    _, anning = await signed_in(store, "commander", "620105")
    _, city = await signed_in(store, "commander", None)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        for body, words in (({"category": "E0102"}, "lat and lon are needed"),
                            ({"category": "E0102", "lat": 0, "lon": 0}, "outside every unit grid")):
            r = await http.post("/api/cases", headers=anning, json=body)
            assert r.status_code == 400 and words in r.json()["error"], (body, r.status_code, r.text)
        # a city account may still open a case of no place (the city's), as before
        assert (await http.post("/api/cases", headers=city, json={"category": "E0102"})).status_code == 201
        assert len((await http.get("/api/cases", headers=city)).json()["cases"]) == 1


async def test_a_case_is_sent_for_verification_to_a_collector_not_a_vehicle_and_by_a_district_to_its_own(settings, nursery):
    store, running = await start(nursery, settings)
    _, anning = await signed_in(store, "commander", "620105")
    _, city = await signed_in(store, "commander", None)
    worker, worker_headers = await signed_in(store, "viewer", "620105")
    await store.add_department_member("620105-HW", worker)
    for device, klass, district in (("c9105", "collector", "620105"), ("c9103", "collector", "620103"),
                                    ("v9105", "vehicle", "620105")):
        await store.register_device(RegisteredDevice.new(device, klass, district).row())
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        cid = (await http.post("/api/cases", headers=anning, json={"category": "E0102", "lat": ANNING_SPOT[0],
                                                                    "lon": ANNING_SPOT[1]})).json()["id"]
        for action, headers, body in (("file", anning, {}), ("dispatch", anning, {"department": "620105-HW"}),
                                      ("handle", worker_headers, {"feedback": "已清运"})):
            assert (await http.post(f"/api/cases/{cid}/actions/{action}", headers=headers, json=body)).status_code == 200
        # a vehicle has nobody to check on site; a district's dispatcher sends its own district's collectors
        for headers, collector in ((anning, "v9105"), (city, "v9105"), (anning, "c9103")):
            r = await http.post(f"/api/cases/{cid}/actions/verify", headers=headers, json={"collector": collector})
            assert r.status_code == 400 and collector in r.json()["error"] and "collector" in r.json()["error"], r.text
        assert (await http.get(f"/api/cases/{cid}", headers=anning)).json()["state"] == "handled"
        # the city may send the nearest one across a district's border, as its candidates propose
        r = await http.post(f"/api/cases/{cid}/actions/verify", headers=city, json={"collector": "c9103"})
        assert r.status_code == 200 and r.json()["verifier"] == "c9103", r.text
        r = await http.post(f"/api/cases/{cid}/actions/reopen", headers=anning, json={"reason": "未清理干净"})
        assert r.status_code == 200
        r = await http.post(f"/api/cases/{cid}/actions/handle", headers=worker_headers, json={"feedback": "再次清运"})
        r = await http.post(f"/api/cases/{cid}/actions/verify", headers=anning, json={"collector": "c9105"})
        assert r.status_code == 200 and r.json()["verifier"] == "c9105", r.text
