"""A simulated citizens' hotline (12319) that posts what callers report as Open311
GeoReport v2 requests to the service, the way any Open311 client does: form-encoded, with
the hotline desk's API token as ``api_key`` and its own ticket number as ``token`` (so a
repost after a lost answer makes no second case).

Each call is placed in one of the demo city's unit grids (the middle of the grid, a few
metres off), filed under one of the services the endpoint lists, with a caller whose name
and phone the service keeps to itself.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

log = logging.getLogger(__name__)

SURNAMES = "王李张刘陈杨赵黄周吴"
GIVEN = ("建国", "秀英", "伟", "芳", "强", "丽", "军", "敏")
# what callers say, per category (a category without words here gets its service name)
WORDS = {
    "E0102": ("小区门口垃圾堆了好几天", "路边有人乱倒生活垃圾"),
    "E0104": ("马路上有大片油污", "路面泥土很多，车过扬尘"),
    "E0105": ("人行道上有摊贩占道卖菜", "早市摊位占了半条路"),
    "C0101": ("井盖缺了一角，有人差点踩空", "井盖松动，车压过去哐哐响"),
    "E0404": ("下雨后路口积水到膝盖",),
}


@dataclass(frozen=True, slots=True)
class Call:
    ticket: str
    service_code: str
    lat: float
    lon: float
    description: str
    first_name: str
    last_name: str
    phone: str


def grid_centres(grid_file: Path) -> list[tuple[float, float]]:
    """The middle of each unit grid of the demo city (the mean of its outer ring), as (lat, lon)."""
    doc = json.loads(grid_file.read_text(encoding="utf-8"))
    centres = []
    for feature in doc.get("features", []):
        geometry = feature.get("geometry") or {}
        rings = geometry.get("coordinates") or []
        if geometry.get("type") == "MultiPolygon":
            rings = rings[0] if rings else []
        if not rings:
            continue
        ring = rings[0][:-1] or rings[0]
        centres.append((sum(p[1] for p in ring) / len(ring), sum(p[0] for p in ring) / len(ring)))
    return centres


def make_call(number: int, prefix: str, codes: list[str], centres: list[tuple[float, float]], rng: random.Random) -> Call:
    code = rng.choice(codes)
    lat, lon = rng.choice(centres)
    words = WORDS.get(code)
    return Call(ticket=f"{prefix}-{number:05d}", service_code=code, lat=round(lat + rng.uniform(-2e-4, 2e-4), 6),
                lon=round(lon + rng.uniform(-2e-4, 2e-4), 6), description=rng.choice(words) if words else "",
                first_name=rng.choice(GIVEN), last_name=rng.choice(SURNAMES),
                phone=f"139{rng.randrange(10**8):08d}")


async def run_hotline(base_url: str, api_key: str, grid_file: Path, *, every_s: float = 60.0, prefix: str = "12319",
                      seed: int | None = None, calls: int | None = None,
                      task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Post a request every ``every_s`` (± a third) to ``base_url``'s ``/open311/v2``, the
    first at once; ``calls``: stop after that many (None: until cancelled). A refused or
    failed post is logged and the next call comes as usual."""
    rng = random.Random(seed)
    centres = grid_centres(grid_file)
    async with httpx.AsyncClient(base_url=base_url.rstrip("/") + "/open311/v2", timeout=10) as http:
        services = (await http.get("/services.json")).json()
        preferred = [s["service_code"] for s in services if s["service_code"] in WORDS]
        codes = preferred or [s["service_code"] for s in services]
        task_status.started()
        if not codes or not centres:
            log.warning("hotline: no services or no grids: no calls")
            return
        number = 0
        while calls is None or number < calls:
            number += 1
            call = make_call(number, prefix, codes, centres, rng)
            try:
                response = await http.post("/requests.json", data={
                    "api_key": api_key, "service_code": call.service_code, "lat": str(call.lat), "long": str(call.lon),
                    "description": call.description, "first_name": call.first_name, "last_name": call.last_name,
                    "phone": call.phone, "token": call.ticket})
                if response.status_code >= 400:
                    log.warning("hotline: request %s refused: %s", call.ticket, response.text[:200])
                else:
                    log.info("hotline: request %s is case %s", call.ticket, response.json()[0]["service_request_id"])
            except httpx.HTTPError as exc:
                log.warning("hotline: request %s not posted: %s", call.ticket, exc)
            await trio.sleep(every_s * rng.uniform(2 / 3, 4 / 3))
