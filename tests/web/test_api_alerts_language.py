"""GET /api/alerts speaks the asker's language: Chinese by default, English for ?lang=en
or an English Accept-Language (?lang wins); each alert names its kind's severity. Texts
are rendered again from each alert's stored facts, through the one catalogue."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import trio

from protocols.epoch import ms_to_datetime
from tests.harness import auth_headers, start_service

AREA = "620105001001"


async def test_alerts_are_read_in_chinese_unless_english_is_asked_for(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    now = ms_to_datetime(int(time.time() * 1000))
    slot = (now - timedelta(hours=1), now + timedelta(hours=1))
    rows = [
        ("offline", "c0001", "c0001-slot", AREA, None, *slot, now, now, None, None,
         {"last_fix_ms": 0, "minutes": 16.0}, "no fix for 16 min"),
        ("coverage_warning", "c0002", "c0002-slot", AREA, None, *slot, now - timedelta(minutes=1),
         now - timedelta(minutes=1), None, None,
         {"grids": ["620105001001001", "620105001001002"], "unvisited": ["620105001001002"], "minutes_left": 12}, "stored"),
        # stored before the catalogue knew its facts: its stored text stands
        ("not_started", "c0003", "c0003-slot", AREA, None, *slot, now - timedelta(minutes=2),
         now - timedelta(minutes=2), None, None, {}, "no fix 15 min into the slot"),
    ]
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        await store.record_patrol_alerts(rows)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, headers=await auth_headers(store)) as http:
            answers = {
                "default": (await http.get("/api/alerts?open=1")).json(),
                "lang=en": (await http.get("/api/alerts?open=1&lang=en")).json(),
                "accept en": (await http.get("/api/alerts?open=1", headers={"Accept-Language": "en-GB,en;q=0.9"})).json(),
                "lang=zh over accept en": (await http.get("/api/alerts?open=1&lang=zh",
                                                          headers={"Accept-Language": "en"})).json(),
            }
        nursery.cancel_scope.cancel()

    def read(answer: dict) -> list[tuple[str, str, str]]:
        return [(a["kind"], a["severity"], a["text"]) for a in answer["alerts"]]

    chinese = [("offline", "major", "16 分钟无定位"),
               ("coverage_warning", "warning", "2 个网格尚未巡查到位（其中 1 个未到访），距班次结束 12 分钟"),
               ("not_started", "critical", "no fix 15 min into the slot")]
    english = [("offline", "major", "no fix for 16 min"),
               ("coverage_warning", "warning", "2 grids not yet covered (1 unvisited), 12 min left"),
               ("not_started", "critical", "no fix 15 min into the slot")]
    assert read(answers["default"]) == chinese and answers["default"]["lang"] == "zh"
    assert read(answers["lang=en"]) == english and answers["lang=en"]["lang"] == "en"
    assert read(answers["accept en"]) == english
    assert read(answers["lang=zh over accept en"]) == chinese
    assert answers["default"]["alerts"][0]["texts"] == {"zh": "16 分钟无定位", "en": "no fix for 16 min"}
