"""Open311 GeoReport v2 against the running service, read by ``georeport`` (an Open311
client written elsewhere, speaking the spec as published) and posted to in the spec's form
encoding: the services are the taxonomy's categories, a post makes a case of source
hotline, and the request closes when the case is closed through the engine."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import httpx
import pytest
import trio
from georeport import GeoReport

from tests.harness import auth_headers, new_account, start_service
from tracker.cases.engine import NewCase
from tracker.cases.roles import SERVICE, Actor
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY

ANNING = (36.1050, 103.7200)  # in grid 620105003003010
REFUSE = "E0102"  # exposed refuse (环卫)


async def _service(nursery, settings):
    store, running = await start_service(nursery, settings.replace("jt808", enabled=False))
    assert running.cases is not None
    await running.cases.load_taxonomy(DEMO_TAXONOMY.read_text(encoding="utf-8"), SERVICE)
    key = (await auth_headers(store, role="commander"))["Authorization"].removeprefix("Bearer ")
    return store, running, key


def _form(key: str, **extra: str) -> dict[str, str]:
    return {"api_key": key, "service_code": REFUSE, "lat": str(ANNING[0]), "long": str(ANNING[1]),
            "description": "路边堆放生活垃圾", "first_name": "建国", "last_name": "王", "email": "wang@example.cn",
            "phone": "13900000000", "media_url": "https://example.cn/p/1.jpg", **extra}


async def test_georeport_lists_services_follows_a_posted_request_until_closed(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running, key = await _service(nursery, settings)
        client = GeoReport(running.url + "/open311/v2")
        services = await trio.to_thread.run_sync(client.get_service_list)
        by_code = {s["service_code"]: s for s in services}
        _, taxonomy = await running.cases.taxonomy()
        assert set(by_code) == set(taxonomy.categories)
        refuse = by_code[REFUSE]
        assert refuse["service_name"] == taxonomy.categories[REFUSE].name
        assert refuse["group"] == taxonomy.categories[REFUSE].major_name
        assert refuse["metadata"] is False and refuse["type"] == "realtime"
        definition = await trio.to_thread.run_sync(client.get_service_definition, REFUSE)
        assert definition == {"service_code": REFUSE, "attributes": []}

        async with httpx.AsyncClient(base_url=running.url + "/open311/v2") as http:
            posted = await http.post("/requests.json", data=_form(key, token="hotline-20260001"))
            assert posted.status_code == 201, posted.text
            assert posted.request.headers["content-type"] == "application/x-www-form-urlencoded"
            [answer] = posted.json()
            request_id = answer["service_request_id"]
            assert answer["service_notice"]
            again = await http.post("/requests.json", data=_form(key, token="hotline-20260001"))
            assert again.status_code == 200 and again.json()[0]["service_request_id"] == request_id

        case = await running.cases.get(int(request_id), SERVICE)
        assert (case["source"], case["external_id"], case["category"]) == ("hotline", "hotline-20260001", REFUSE)
        assert "wang@example.cn" in case["reporter"] and case["district"] == "620105"

        found = await trio.to_thread.run_sync(client.get_service_request, request_id)
        assert found["status"] == "open" and found["service_code"] == REFUSE
        assert (found["lat"], found["long"]) == ANNING
        assert found["media_url"] == "https://example.cn/p/1.jpg"
        assert found["expected_datetime"] and found["requested_datetime"]
        text = str(found)
        for personal in ("wang@example.cn", "13900000000", "建国"):
            assert personal not in text
        listed = await trio.to_thread.run_sync(lambda: client.get_service_requests(service_code=REFUSE, status="open"))
        assert [r["service_request_id"] for r in listed] == [request_id]

        # the loop: filed, dispatched, handled by the department, verified and closed
        commander = Actor("cmd-open311", "commander", None)
        worker, _ = await new_account(store, role="viewer", district="620105")
        await store.add_department_member("620105-HW", worker)
        engine = running.cases
        await engine.transition(int(request_id), "file", commander)
        await engine.transition(int(request_id), "dispatch", commander, {"department": "620105-HW"})
        dispatched = await trio.to_thread.run_sync(client.get_service_request, request_id)
        assert dispatched["status"] == "open" and dispatched["agency_responsible"] == "安宁区环境卫生管理所"
        await engine.transition(int(request_id), "handle", Actor(worker, "viewer", "620105"), {"feedback": "已清运"})
        await engine.transition(int(request_id), "verify", commander, {"collector": "c0001"})
        await engine.transition(int(request_id), "close", commander)
        closed = await trio.to_thread.run_sync(client.get_service_request, request_id)
        assert closed["status"] == "closed" and closed["expected_datetime"] is None
        assert closed["updated_datetime"] > found["updated_datetime"]
        assert await trio.to_thread.run_sync(lambda: client.get_service_requests(status="open")) == []
        by_status = await trio.to_thread.run_sync(lambda: client.get_service_requests(status="closed"))
        assert [r["service_request_id"] for r in by_status] == [request_id]
        nursery.cancel_scope.cancel()


async def test_refusals_are_open311_errors(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running, key = await _service(nursery, settings)
        viewer_key = (await auth_headers(store, role="viewer"))["Authorization"].removeprefix("Bearer ")
        qilihe_key = (await auth_headers(store, role="commander", district="620103"))["Authorization"][7:]
        async with httpx.AsyncClient(base_url=running.url + "/open311/v2") as http:
            cases = [
                (await http.get("/services.xml"), 400, "JSON only"),
                (await http.get("/requests.csv"), 404, ".json only"),
                (await http.post("/requests.json", data={k: v for k, v in _form(key).items() if k != "api_key"}),
                 400, "api_key is required"),
                (await http.post("/requests.json", data=_form("not-a-token")), 403, "not valid"),
                (await http.post("/requests.json", data=_form(viewer_key)), 403, "viewer"),
                (await http.post("/requests.json", data=_form(qilihe_key)), 403, "620103"),
                (await http.post("/requests.json", json={"api_key": key}), 400, "form-encoded"),
                (await http.post("/requests.json", data={**_form(key), "lat": "", "long": "",
                                                         "address_string": "安宁西路 1 号"}), 400, "no position"),
                (await http.post("/requests.json", data=_form(key, service_code="X9999")), 400, "X9999"),
                (await http.post("/requests.json", data=_form(key, lat="91")), 400, "lat must be"),
                (await http.post("/requests.json", data=_form(key, **{"attribute[size]": "big"})), 400, "attributes"),
                (await http.get("/requests.json", params={"status": "pending"}), 400, "status"),
                (await http.get("/requests.json", params={"start_date": "2026-01-01"}), 400, "offset"),
                (await http.get("/requests.json", params={"start_date": "2026-01-01T00:00:00Z",
                                                          "end_date": "2026-06-01T00:00:00Z"}), 400, "90 days"),
                (await http.get("/requests/abc.json"), 400, "positive integer"),
                (await http.get("/requests/424242.json"), 404, "no service request"),
                (await http.get("/services/X9999.json"), 404, "no service"),
            ]
        for response, status, words in cases:
            assert response.status_code == status, (response.request.url, response.text)
            [body] = response.json()
            assert body["code"] == status and words in body["description"], body
        assert await running.cases.list(SERVICE) == ([], None)  # nothing refused made a case
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("window", [("2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z")])
async def test_the_date_window_keeps_to_when_requests_were_made(settings, broker, window):
    async with trio.open_nursery() as nursery:
        _store, running, key = await _service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url + "/open311/v2") as http:
            made = (await http.post("/requests.json", data=_form(key))).json()[0]["service_request_id"]
            recent = (await http.get("/requests.json")).json()
            old = (await http.get("/requests.json", params={"start_date": window[0], "end_date": window[1]})).json()
            both = (await http.get("/requests.json", params={"service_request_id": f"{made},999"})).json()
        assert [r["service_request_id"] for r in recent] == [made]
        assert old == []
        assert [r["service_request_id"] for r in both] == [made]
        nursery.cancel_scope.cancel()


async def test_dates_at_the_ends_of_the_calendar_and_a_place_outside_every_grid_are_400s(settings, broker):
    async with trio.open_nursery() as nursery:
        _store, running, key = await _service(nursery, settings)
        async with httpx.AsyncClient(base_url=running.url + "/open311/v2") as http:
            cases = [
                # the default window of 90 days would run past the calendar's ends
                (await http.get("/requests.json", params={"start_date": "9999-12-31T23:59:59Z"}), "start_date"),
                (await http.get("/requests.json", params={"end_date": "0001-01-01T00:00:00+14:00"}), "end_date"),
                # a '+' sent raw in a query string arrives as a space: the answer says so
                (await http.get("/requests.json?start_date=2026-12-03T00:00:00+08:00"), "%2B"),
                # the Gulf of Guinea: no grid of the city, no district to handle it
                (await http.post("/requests.json", data=_form(key, lat="0", long="0")), "outside"),
                (await http.post("/requests.json", data=_form(key, lat="39.9042", long="116.4074")), "outside"),
            ]
        for response, words in cases:
            assert response.status_code == 400, (response.request.url, response.status_code, response.text)
            [body] = response.json()
            assert body["code"] == 400 and words in body["description"], body
        assert await running.cases.list(SERVICE) == ([], None)  # nothing refused made a case
        nursery.cancel_scope.cancel()


async def test_a_token_is_the_posting_clients_own_another_clients_same_token_is_a_409(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running, key = await _service(nursery, settings)
        app_key = (await auth_headers(store, role="supervisor"))["Authorization"].removeprefix("Bearer ")
        async with httpx.AsyncClient(base_url=running.url + "/open311/v2") as http:
            first = await http.post("/requests.json", data=_form(key, token="1001"))
            assert first.status_code == 201
            made = first.json()[0]["service_request_id"]
            again = await http.post("/requests.json", data=_form(key, token="1001"))
            assert again.status_code == 200 and again.json()[0]["service_request_id"] == made
            # a city app numbering its tickets as the hotline does: not the hotline's request
            other = await http.post("/requests.json", data=_form(app_key, token="1001", description="另一位市民"))
            [read] = (await http.get(f"/requests/{made}.json")).json()
        # every datetime to the millisecond, with its offset, written alike
        for name in ("requested_datetime", "updated_datetime", "expected_datetime"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00", read[name]), (name, read[name])
        assert other.status_code == 409, other.text
        [body] = other.json()
        assert body["code"] == 409 and "another client" in body["description"] and "service_request_id" not in body
        assert len((await running.cases.list(SERVICE))[0]) == 1
        # the post's audit entry says who as every entry does: the api_key's account, role and scope
        [entry] = await store.audit_entries(action="open311.", limit=10)
        assert (entry["target"], entry["role"], entry["scope"]) == (f"case:{made}", "commander", "city"), dict(entry)
        nursery.cancel_scope.cancel()


async def test_a_form_is_read_in_its_declared_charset_and_undecodable_text_is_a_400(settings, broker):
    async with trio.open_nursery() as nursery:
        _store, running, key = await _service(nursery, settings)
        form = _form(key, description="路边堆放生活垃圾 + 纸箱", first_name="建国")
        async with httpx.AsyncClient(base_url=running.url + "/open311/v2") as http:
            posted = {}
            for charset in ("GBK", "gb18030", "utf-8"):
                r = await http.post("/requests.json", content=urlencode(form, encoding=charset),
                                    headers={"Content-Type": f"application/x-www-form-urlencoded; charset={charset}"})
                assert r.status_code == 201, (charset, r.text)
                posted[charset] = r.json()[0]["service_request_id"]
            refused = [
                # GBK bytes under no charset (UTF-8): not silently turned into U+FFFD
                (await http.post("/requests.json", content=urlencode(form, encoding="gbk"),
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}), "UTF-8"),
                (await http.post("/requests.json", content=urlencode(form),
                                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=klingon"}), "klingon"),
                (await http.post("/requests.json", content=urlencode(form),
                                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=base64"}), "base64"),
            ]
            read = {charset: (await http.get(f"/requests/{rid}.json")).json()[0] for charset, rid in posted.items()}
        for response, words in refused:
            assert response.status_code == 400, response.text
            [body] = response.json()
            assert words in body["description"], body
        assert {r["description"] for r in read.values()} == {"路边堆放生活垃圾 + 纸箱"}
        case = await running.cases.get(int(posted["GBK"]), SERVICE)
        assert json.loads(case["reporter"])["first_name"] == "建国"
        assert len((await running.cases.list(SERVICE))[0]) == 3
        nursery.cancel_scope.cancel()


async def test_the_public_reads_answer_citizens_requests_not_the_citys_own_cases(settings, broker):
    async with trio.open_nursery() as nursery:
        _store, running, key = await _service(nursery, settings)
        engine = running.cases
        commander = Actor("cmd-open311", "commander", None)
        # a dispatcher's note and a vehicle's alarm: the city's own work, not a citizen's request
        own, _ = await engine.create(NewCase("dispatcher", REFUSE, "王师傅说垃圾站满了", *ANNING), commander)
        alarm, _ = await engine.create(NewCase("vehicle", REFUSE, "overspeed alarm from vehicle v001: 72 km/h", *ANNING,
                                               external_id="v001:overspeed:1"), SERVICE)
        async with httpx.AsyncClient(base_url=running.url + "/open311/v2") as http:
            made = (await http.post("/requests.json", data=_form(key))).json()[0]["service_request_id"]
            listed = (await http.get("/requests.json")).json()
            by_id = (await http.get("/requests.json", params={"service_request_id": f"{own['id']},{alarm['id']},{made}"})).json()
            one = [await http.get(f"/requests/{case['id']}.json") for case in (own, alarm)]
        assert [r["service_request_id"] for r in listed] == [made]
        assert [r["service_request_id"] for r in by_id] == [made]
        assert [r.status_code for r in one] == [404, 404]
        nursery.cancel_scope.cancel()
