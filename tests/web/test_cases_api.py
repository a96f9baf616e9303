"""The case API over real HTTP on the running service (real Mosquitto and PostgreSQL, the
demo city and its example taxonomy, the service's clock fixed to a literal instant): a
dispatcher's new case, the list's filters and paging, the detail with its deadline and
the caller's actions, actions taken and refused (400, 403, 404, 409), district scoping,
and case events on /ws for the case's district only."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import trio
from websockets.trio.client import connect as ws_connect

from protocols.epoch import datetime_to_ms
from tests.harness import new_account, start_service, ws_url
from tracker.app.accounts import create_token
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY

CITY = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 9, 24, 9, 0, tzinfo=CITY)  # a Wednesday morning
ANNING_SPOT = (36.1050, 103.7200)  # grid 620105003003010
QILIHE_SPOT = (36.0765, 103.7526)  # grid 620103001001001


async def signed_in(store, role: str, district: str | None) -> tuple[str, dict[str, str]]:
    name, _ = await new_account(store, role=role, district=district)
    issued = await create_token(store, name, "tests", actor="test")
    return name, {"Authorization": f"Bearer {issued.token}"}


async def start(nursery, settings):
    settings = settings.replace("jt808", enabled=False).replace("cases", taxonomy=str(DEMO_TAXONOMY))
    return await start_service(nursery, settings, clock_ms=lambda: datetime_to_ms(NOW))


async def test_a_case_goes_round_the_loop_over_http_with_every_refusal_a_clear_json_error(settings, nursery):
    store, running = await start(nursery, settings)
    _, anning = await signed_in(store, "commander", "620105")
    _, qilihe = await signed_in(store, "commander", "620103")
    _, city = await signed_in(store, "commander", None)
    worker, worker_headers = await signed_in(store, "viewer", "620105")
    _, viewer = await signed_in(store, "viewer", "620105")
    _, admin = await signed_in(store, "admin", None)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        r = await http.put(f"/api/departments/620105-HW/members/{worker}", headers=admin)
        assert r.status_code == 200 and r.json()["changed"]
        r = await http.post("/api/cases", headers=anning, json={"category": "E0102", "description": "垃圾",
                                                                 "lat": ANNING_SPOT[0], "lon": ANNING_SPOT[1]})
        assert r.status_code == 201, r.text
        case = r.json()
        assert (case["state"], case["source"], case["district"]) == ("reported", "dispatcher", "620105")
        assert case["stage"]["due"] == "2025-09-24T09:30:00+08:00" and case["stage"]["standing"] == "on_time"
        cid = case["id"]

        # bad input: 400; another district's case: 404; a role that may not: 403; the state: 409
        for body, why in (({"description": "x"}, "category is needed"), ({"category": "Z9"}, "category is not in taxonomy"),
                          ({"category": "E0102", "lat": "north", "lon": 1}, "lat must be a number"),
                          ({"category": "E0102", "colour": "red"}, "body has unknown field")):
            r = await http.post("/api/cases", headers=anning, json=body)
            assert r.status_code == 400 and why in r.json()["error"], (body, r.text)
        r = await http.post("/api/cases", headers=anning, content=b"[1,", )
        assert r.status_code == 400
        assert (await http.get(f"/api/cases/{cid}", headers=qilihe)).status_code == 404
        assert (await http.get("/api/cases/nine", headers=anning)).status_code == 400
        assert (await http.get("/api/cases/999999", headers=anning)).status_code == 404
        r = await http.post(f"/api/cases/{cid}/actions/file", headers=viewer)
        assert r.status_code == 403 and "may not file" in r.json()["error"]
        r = await http.post(f"/api/cases/{cid}/actions/dispatch", headers=anning, json={"department": "620105-HW"})
        assert r.status_code == 409 and "cannot dispatch a case that is reported" in r.json()["error"]
        r = await http.post(f"/api/cases/{cid}/actions/reject", headers=anning, json={})
        assert r.status_code == 409 and r.json()["error"] == "reject needs reason"
        r = await http.post(f"/api/cases/{cid}/actions/levitate", headers=anning)
        assert r.status_code == 400 and "action must be one of" in r.json()["error"]
        r = await http.post(f"/api/cases/{cid}/actions/file", headers=anning, json={"hours": "many"})
        assert r.status_code == 400

        detail = (await http.get(f"/api/cases/{cid}", headers=anning)).json()
        assert detail["actions"] == ["file", "reject"] and detail["suggested_department"] == "620105-HW"
        assert (await http.get(f"/api/cases/{cid}", headers=viewer)).json()["actions"] == []
        for action, headers, body in (("file", anning, None), ("dispatch", anning, {"department": "620105-HW"}),
                                      ("handle", worker_headers, {"feedback": "已清运", "photos": ["x.jpg"]})):
            r = await http.post(f"/api/cases/{cid}/actions/{action}", headers=headers, json=body)
            assert r.status_code == 200, r.text
        assert r.json()["state"] == "handled" and r.json()["stage"]["name"] == "verify"
        timeline = (await http.get(f"/api/cases/{cid}/timeline", headers=city)).json()["timeline"]
        assert [(e["action"], e["role"]) for e in timeline] == [
            ("create", "commander"), ("file", "commander"), ("dispatch", "commander"), ("handle", "viewer")]
        assert timeline[-1]["actor"] == worker and timeline[-1]["fields"]["photos"] == ["x.jpg"]
        refused = await store.audit_entries(action="case.", limit=50)
        assert {"refused", "ok"} <= {e["outcome"] for e in refused}

        # the list: scoped, filtered and paged
        for spot, headers in ((ANNING_SPOT, anning), (ANNING_SPOT, anning), (QILIHE_SPOT, qilihe)):
            r = await http.post("/api/cases", headers=headers, json={"category": "C0101", "lat": spot[0], "lon": spot[1]})
            assert r.status_code == 201, r.text
        assert len((await http.get("/api/cases", headers=city)).json()["cases"]) == 4
        anning_ids = [c["id"] for c in (await http.get("/api/cases", headers=anning)).json()["cases"]]
        assert len(anning_ids) == 3 and anning_ids == sorted(anning_ids, reverse=True)
        assert [c["district"] for c in (await http.get("/api/cases?district=620103", headers=city)).json()["cases"]] \
            == ["620103"]
        assert (await http.get("/api/cases?district=620103", headers=anning)).status_code == 403
        urgent = (await http.get("/api/cases?urgent=true", headers=anning)).json()["cases"]
        assert {c["category"] for c in urgent} == {"C0101"} and len(urgent) == 2
        assert [c["id"] for c in (await http.get("/api/cases?state=handled", headers=anning)).json()["cases"]] == [cid]
        assert (await http.get("/api/cases?source=hotline", headers=anning)).json()["cases"] == []
        assert (await http.get("/api/cases?overdue=true", headers=anning)).json()["cases"] == []
        assert (await http.get("/api/cases?state=lost", headers=anning)).status_code == 400
        assert (await http.get("/api/cases?urgent=maybe", headers=anning)).status_code == 400
        assert (await http.get("/api/cases?cursor=x", headers=anning)).status_code == 400
        paged, cursor = [], None
        while True:
            page = (await http.get("/api/cases", headers=anning,
                                   params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
            paged += [c["id"] for c in page["cases"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == anning_ids

        r = await http.get("/api/taxonomy", headers=viewer)
        assert r.json()["example"] and any(c["code"] == "E0102" for c in r.json()["categories"])
        assert (await http.put("/api/taxonomy", headers=admin, content=b"city = ")).status_code == 400


async def test_case_events_reach_the_cases_district_and_the_city_only(settings, nursery):
    store, running = await start(nursery, settings)
    _, anning = await signed_in(store, "commander", "620105")
    _, qilihe = await signed_in(store, "commander", "620103")
    _, city = await signed_in(store, "viewer", None)

    async def case_events(headers, out: list, task_status=trio.TASK_STATUS_IGNORED):
        async with ws_connect(ws_url(running), additional_headers=headers) as ws:
            task_status.started()
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "case":
                    out.append((frame["event"], frame["case"]["district"]))

    seen: dict[str, list] = {"anning": [], "qilihe": [], "city": []}
    async with trio.open_nursery() as feeds:
        for key, headers in (("anning", anning), ("qilihe", qilihe), ("city", city)):
            await feeds.start(case_events, headers, seen[key])
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            r = await http.post("/api/cases", headers=anning, json={"category": "E0102", "lat": ANNING_SPOT[0],
                                                                     "lon": ANNING_SPOT[1]})
            await http.post(f"/api/cases/{r.json()['id']}/actions/file", headers=anning)
            await http.post("/api/cases", headers=qilihe, json={"category": "E0102", "lat": QILIHE_SPOT[0],
                                                                 "lon": QILIHE_SPOT[1]})
        with trio.fail_after(10):
            while len(seen["city"]) < 3 or not seen["qilihe"] or len(seen["anning"]) < 2:
                await trio.sleep(0.05)
        await trio.sleep(0.3)  # anything else would have arrived by now
        feeds.cancel_scope.cancel()
    assert seen["anning"] == [("created", "620105"), ("changed", "620105")]
    assert seen["qilihe"] == [("created", "620103")]
    assert seen["city"] == [("created", "620105"), ("changed", "620105"), ("created", "620103")]


async def test_the_service_watches_deadlines_and_tells_the_district_live(settings, nursery):
    now = [NOW]
    settings = (settings.replace("jt808", enabled=False).replace("cases", taxonomy=str(DEMO_TAXONOMY), watch_max_s=0.2))
    store, running = await start_service(nursery, settings, clock_ms=lambda: datetime_to_ms(now[0]))
    _, anning = await signed_in(store, "commander", "620105")
    events: list[tuple[str, int]] = []

    async def feed(task_status=trio.TASK_STATUS_IGNORED):
        async with ws_connect(ws_url(running), additional_headers=anning) as ws:
            task_status.started()
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "case":
                    events.append((frame["event"], frame["case"]["id"]))

    async with trio.open_nursery() as inner:
        await inner.start(feed)
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
            r = await http.post("/api/cases", headers=anning, json={"category": "E0102", "lat": ANNING_SPOT[0],
                                                                     "lon": ANNING_SPOT[1]})
            cid = r.json()["id"]
            now[0] = NOW.replace(minute=25)  # past the filing warning at 09:24
            with trio.fail_after(10):
                while ("warning", cid) not in events:
                    await trio.sleep(0.05)
            detail = (await http.get(f"/api/cases/{cid}", headers=anning)).json()
        inner.cancel_scope.cancel()
    assert events == [("created", cid), ("warning", cid)]
    assert detail["stage"]["standing"] == "warning"


async def test_the_big_screens_case_figures_count_the_callers_district_on_the_citys_day(settings, nursery):
    clock = {"now": datetime_to_ms(NOW)}
    settings = settings.replace("jt808", enabled=False).replace("cases", taxonomy=str(DEMO_TAXONOMY))
    store, running = await start_service(nursery, settings, clock_ms=lambda: clock["now"])
    _, anning = await signed_in(store, "commander", "620105")
    _, qilihe = await signed_in(store, "commander", "620103")
    _, city = await signed_in(store, "viewer", None)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        for headers, (lat, lon) in ((anning, ANNING_SPOT), (anning, ANNING_SPOT), (qilihe, QILIHE_SPOT)):
            r = await http.post("/api/cases", headers=headers, json={"category": "E0102", "description": "垃圾", "lat": lat,
                                                                     "lon": lon})
            assert r.status_code == 201, r.text
        # 09:25: past the 80% warning of the 30-minute filing limit; 09:31: past the limit
        clock["now"] = datetime_to_ms(NOW.replace(minute=25))
        warned = {name: (await http.get("/api/cases/summary", headers=h)).json()
                  for name, h in (("anning", anning), ("qilihe", qilihe), ("city", city))}
        clock["now"] = datetime_to_ms(NOW.replace(minute=31))
        overdue = (await http.get("/api/cases/summary", headers=city)).json()
        refused = await http.get("/api/cases/summary", params={"district": "620103"}, headers=anning)
        nobody = await http.get("/api/cases/summary")
    assert warned["anning"] == {"open": 2, "overdue": 0, "due_soon": 2, "reported_today": 2, "closed_today": 0}
    assert warned["qilihe"] == {"open": 1, "overdue": 0, "due_soon": 1, "reported_today": 1, "closed_today": 0}
    assert warned["city"]["open"] == 3 and warned["city"]["reported_today"] == 3
    assert overdue["overdue"] == 3 and overdue["due_soon"] == 0
    assert refused.status_code == 400  # it takes no district: the caller's is the one counted
    assert nobody.status_code == 401
