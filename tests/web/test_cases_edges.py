"""The case API at its edges, over real HTTP on the running service (real Mosquitto and
PostgreSQL, the demo city's example taxonomy, the service's clock fixed): garbage a client
may send is a 400 naming the field, never a 500; a case goes only to a department that
works where the case is."""

from __future__ import annotations

import httpx

from tests.web.test_cases_api import signed_in, start


async def test_garbage_in_a_new_case_or_the_list_filters_is_a_400_naming_the_field(settings, nursery):
    store, running = await start(nursery, settings)
    _, city = await signed_in(store, "commander", None)
    async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
        huge = "1" + "0" * 400  # a JSON integer no float holds
        for field, body in (("lat", f'{{"category": "E0102", "lat": {huge}, "lon": 103.72}}'),
                            ("lon", f'{{"category": "E0102", "lat": 36.1, "lon": -{huge}}}'),
                            ("description", '{"category": "E0102", "lat": 36.105, "lon": 103.72, "description": "a\\u0000b"}')):
            r = await http.post("/api/cases", headers={**city, "Content-Type": "application/json"}, content=body)
            assert r.status_code == 400 and field in r.json()["error"], (field, r.status_code, r.text)
        for key in ("state", "category", "street", "district", "source"):
            r = await http.get("/api/cases", headers=city, params={key: "E01\x0002"})
            assert r.status_code == 400 and key in r.json()["error"], (key, r.status_code, r.text)
        r = await http.get("/api/cases", headers=city, params={"category": "E" * 100})
        assert r.status_code == 400 and "category" in r.json()["error"]
        assert (await http.get("/api/cases", headers=city)).json()["cases"] == []  # nothing was made

