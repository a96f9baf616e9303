"""The command map in headless Chromium against the real service: the demo city's unit
grids are drawn, and markers appear and move as handsets publish over MQTT."""

from __future__ import annotations

import time

import msgpack
import trio

from tests.browser import browser_errors, open_browser, save_screenshot, wait_for_js
from tests.harness import new_account, start_service
from tests.helpers import apublish, wait_for
from tests.web.access import sign_in

WALKERS = {"c0301": (36.1050, 103.7150), "c0302": (36.1080, 103.7250), "v0301": (36.1010, 103.7100)}


def _positions(step: int) -> list[tuple[str, bytes]]:
    # a minute between steps: ~55 m in 60 s is a plausible walk for the position filters
    now = int(time.time() * 1000) - (1 - step) * 60_000
    messages = []
    for device, (lat, lon) in WALKERS.items():
        cls = "vehicle" if device.startswith("v") else "collector"
        fix = {"t": now, "lat": lat + step * 0.0004, "lon": lon + step * 0.0004, "acc": 5.0, "bat": 70.0}
        messages.append((f"gw/v1/620105/{cls}/{device}/pos", msgpack.packb(fix)))
    return messages


def _marker_centres(driver) -> dict[str, tuple[float, float]]:
    return driver.execute_script(
        "const out = {};"
        "for (const el of document.querySelectorAll('.gw-marker[data-device]')) {"
        "  const r = el.getBoundingClientRect(); out[el.dataset.device] = [r.x + r.width / 2, r.y + r.height / 2]; }"
        "return out;"
    )


async def test_map_draws_grids_and_moving_markers(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        await apublish(broker, _positions(0))

        def in_browser() -> tuple[int, dict, dict, list]:
            with open_browser() as driver:
                sign_in(driver, running.url, name, password)
                wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded", timeout=20)
                wait_for_js(driver, "document.querySelectorAll('.gw-marker[data-device]').length === 3", timeout=20)
                grids = driver.execute_script("return document.querySelectorAll('path.gw-grid[data-code]').length")
                before = _marker_centres(driver)
                trio.from_thread.run(apublish, broker, _positions(1))
                wait_for_js(driver, "window.gridwatch.devices.get('c0301') && window.gridwatch.devices.get('c0301').lat > 36.1053", timeout=10)
                # markers glide to their new place: wait until each has left the old one
                moved = " && ".join(
                    f"(() => {{ const r = document.querySelector(\".gw-marker[data-device='{d}']\").getBoundingClientRect();"
                    f" return Math.abs(r.x + r.width / 2 - {x}) + Math.abs(r.y + r.height / 2 - {y}) > 5; }})()"
                    for d, (x, y) in before.items())
                wait_for_js(driver, moved, timeout=10)
                after = _marker_centres(driver)
                save_screenshot(driver, "/tmp/gridwatch-live-map.png")
                return grids, before, after, browser_errors(driver)

        grids, before, after, errors = await trio.to_thread.run_sync(in_browser)
        nursery.cancel_scope.cancel()
    assert grids == 576  # the demo city: Anning and Qilihe
    assert set(before) == set(WALKERS)
    moved = {d for d in WALKERS if abs(after[d][0] - before[d][0]) + abs(after[d][1] - before[d][1]) > 5}
    assert moved == set(WALKERS)
    assert errors == []


async def test_with_gcj02_tiles_markers_and_grids_shift_together(settings, broker):
    from protocols.coords import wgs84_to_gcj02

    settings = settings.replace("web", map_datum="gcj02")
    lat, lon, grid = 36.1050, 103.7200, "620105003003010"  # the middle of that grid
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        fix = {"t": int(time.time() * 1000), "lat": lat, "lon": lon, "acc": 5.0}
        await apublish(broker, [("gw/v1/620105/collector/c0310/pos", msgpack.packb(fix))])

        def in_browser():
            with open_browser() as driver:
                sign_in(driver, running.url, name, password)
                wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded", timeout=20)
                wait_for_js(driver, "window.gridwatch.devices.has('c0310')", timeout=20)
                shown = driver.execute_script("const d = window.gridwatch.devices.get('c0310'); return [d.lat, d.lon, d.wgs];")
                inside = driver.execute_script(
                    "const m = document.querySelector(\".gw-marker[data-device='c0310']\").getBoundingClientRect();"
                    "const g = document.querySelector(\"path.gw-grid[data-code='" + grid + "']\").getBoundingClientRect();"
                    "const x = m.x + m.width / 2, y = m.y + m.height / 2;"
                    "return x > g.left && x < g.right && y > g.top && y < g.bottom;")
                driver.find_element("css selector", ".gw-device-row[data-device='c0310']").click()
                wait_for_js(driver, "document.body.innerText.includes('36.105000, 103.720000')", timeout=10)
                return shown, inside, browser_errors(driver)

        shown, inside, errors = await trio.to_thread.run_sync(in_browser)
        nursery.cancel_scope.cancel()
    expected = wgs84_to_gcj02(lat, lon)
    assert abs(shown[0] - expected[0]) < 1e-9 and abs(shown[1] - expected[1]) < 1e-9 and shown[2] == [lat, lon]
    assert inside
    assert errors == []


async def test_a_snapshot_in_many_frames_shows_every_device_once_complete(settings, broker):
    settings = settings.replace("web", ws_snapshot_devices=1)  # one device a frame
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="viewer")
        await apublish(broker, _positions(0))
        await wait_for(lambda: len(running.pipeline.live.devices) == len(WALKERS))

        def in_browser() -> tuple[list[str], list]:
            with open_browser() as driver:
                sign_in(driver, running.url, name, password)
                wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded", timeout=20)
                wait_for_js(driver, "document.querySelectorAll('.gw-marker[data-device]').length === 3", timeout=20)
                shown = driver.execute_script("return [...window.gridwatch.devices.keys()].sort()")
                return shown, browser_errors(driver)

        shown, errors = await trio.to_thread.run_sync(in_browser)
        nursery.cancel_scope.cancel()
    assert shown == sorted(WALKERS)  # the page took the parts as one snapshot, not the first frame alone
    assert errors == []
