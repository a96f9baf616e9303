"""Screenshots of the command map, for people to look at: the desktop page and the big
screen (/wall) at 1440×900 and 3840×2160, without a base map, over the demo city's
unit grids (Anning 620105 and Qilihe 620103, tracker/devcity/data/lanzhou-demo.geojson),
with devices at some of their grids, a few open alarms and patrol slots in progress.

The page runs in headless Chromium against the page tests' throwaway server
(tests/web/fake_map.py), which serves web/static and canned API answers: no database,
broker or tile service is needed. Writes bench/results/screenshots/{desktop,wall}-WxH.png
and prints what each shows (labels drawn and hidden, the grids' share of the screen).

    python -m bench.screenshots [--out bench/results/screenshots]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from tests.browser import after_paint, open_browser, save_screenshot, wait_for_js
from tests.web.fake_map import FakeService, serving

REPO = Path(__file__).resolve().parent.parent
DEMO_GRIDS = REPO / "tracker" / "devcity" / "data" / "lanzhou-demo.geojson"
OUT = REPO / "bench" / "results" / "screenshots"
SIZES = ((1440, 900), (3840, 2160))
PAGES = (("desktop", "/"), ("wall", "/wall"))


# What a screenshot shows: labels drawn (and hidden by the collision pass), and the share
# of the window the grids' bounding box spans.
SEEN = """
const shown = (s) => [...document.querySelectorAll(s)].filter(e => e.getClientRects().length).length;
const r = [...document.querySelectorAll('path.gw-grid')].map(p => p.getBoundingClientRect());
return {streets: shown('.gw-label--street'), communities: shown('.gw-label--community'),
        grid_codes: shown('.gw-label--grid'), hidden: document.querySelectorAll('.gw-label.gw-collided').length,
        grids_width_share: (Math.max(...r.map(b => b.right)) - Math.min(...r.map(b => b.left))) / innerWidth,
        grids_height_share: (Math.max(...r.map(b => b.bottom)) - Math.min(...r.map(b => b.top))) / innerHeight};
"""


def demo_grids() -> dict[str, Any]:
    """The demo's grid file with the codes the service derives from each grid's code."""
    doc = json.loads(DEMO_GRIDS.read_text(encoding="utf-8"))
    for f in doc["features"]:
        code = f["properties"]["code"]
        f["properties"].update(district=code[:6], street=code[:9], community=code[:12])
    return doc


def centre(feature: dict[str, Any]) -> tuple[float, float]:
    ring = feature["geometry"]["coordinates"][0][:-1]
    return sum(p[1] for p in ring) / len(ring), sum(p[0] for p in ring) / len(ring)


def demo_service() -> FakeService:
    grids = demo_grids()
    now = int(time.time() * 1000)
    features = grids["features"]
    devices = []
    for i, f in enumerate(features[::9]):
        lat, lon = centre(f)
        cls = ("collector", "collector", "vehicle", "sensor")[i % 4]
        age = 3_600_000 if i % 11 == 5 else (i % 7) * 20_000
        devices.append({"id": f"{cls[0]}{i:04d}", "class": cls, "district": f["properties"]["district"], "t": now - age,
                        "lat": lat, "lon": lon, "acc": 5.0, "spd": 1.0, "hdg": None, "bat": 80, "cell": None,
                        "grid": f["properties"]["code"]})
    alarms = [{"id": k + 1, "source": "sensor", "device": devices[k * 4 + 3]["id"], "component": None, "kind": kind,
               "raised": True, "t": now - k * 60_000, "value": None, "detail": "", "lat": devices[k * 4 + 3]["lat"],
               "lon": devices[k * 4 + 3]["lon"], "grid": devices[k * 4 + 3]["grid"]}
              for k, kind in enumerate(("tilt", "full", "waterlog"))]
    slots = [{"collector": d["id"], "area": d["grid"][:12], "grids_total": 12, "grids_covered": (3 * k) % 13}
             for k, d in enumerate(devices[:8]) if d["class"] == "collector"]
    service = FakeService(grids=grids, devices=devices)
    service.alarms = alarms
    service.coverage = {"now": now, "grids": {}, "unvisited": [], "slots": slots}
    service.centre, service.zoom = (36.09, 103.72), 13
    return service


def shoot(out: Path) -> list[dict[str, Any]]:
    service = demo_service()
    shots = []
    with serving(service.app()) as url:
        for width, height in SIZES:
            with open_browser(width=width, height=height) as driver:
                for name, path in PAGES:
                    driver.get(url + path)
                    wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded", timeout=30)
                    wait_for_js(driver, "window.gridwatch.wsState === 'open'", timeout=30)
                    wait_for_js(driver, "Number(document.getElementById('gw-map').dataset.labelPasses) >= 1", timeout=30)
                    time.sleep(1.5)  # the alarms' and coverage's first answers, and a second of the live feed
                    after_paint(driver)
                    target = save_screenshot(driver, out / f"{name}-{width}x{height}.png")
                    seen = driver.execute_script(SEEN)
                    shots.append({"file": str(target.relative_to(REPO)), "page": path, "size": [width, height], **seen})
    return shots


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    shots = shoot(args.out)
    print(f"{'file':<48} {'streets':>7} {'comm.':>6} {'codes':>6} {'hidden':>6} {'grids w':>8} {'grids h':>8}")
    for s in shots:
        print(f"{s['file']:<48} {s['streets']:>7} {s['communities']:>6} {s['grid_codes']:>6} {s['hidden']:>6} "
              f"{s['grids_width_share']:>8.0%} {s['grids_height_share']:>8.0%}")
    (args.out / "screenshots.json").write_text(json.dumps(shots, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
