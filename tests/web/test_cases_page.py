"""The case tab of the command map in headless Chromium against the real service: a
commander logged in through the login page files, dispatches and (the collector's check
done) closes a case with the buttons the API offers, the department's handling arriving
live; a case made while the page is open shows up on the list and the map by itself."""

from __future__ import annotations

import re
from pathlib import Path

import trio
from selenium.webdriver.common.by import By

from tests.browser import browser_errors, open_browser, save_screenshot, wait_for_js
from tests.harness import new_account, start_service
from tests.web.access import sign_in
from tracker.cases.engine import NewCase
from tracker.cases.roles import SERVICE, Actor

ANNING = (36.1050, 103.7200)
REFUSE = "E0102"
STATIC = Path(__file__).resolve().parents[2] / "web" / "static"


def click(driver, selector: str) -> None:
    """Click what ``selector`` finds once it is there (the list and the detail are redrawn
    as the live feed brings news, so an element found earlier may be gone)."""
    wait_for_js(driver, f"document.querySelector({selector!r}) !== null")
    driver.execute_script(f"document.querySelector({selector!r}).click()")


def detail_state(state: str) -> str:
    return f"document.getElementById('gw-case-detail').dataset.state === '{state}'"


async def service_with_a_case(nursery, settings):
    """The service with the example taxonomy, an Anning commander (name, password) and a
    hotline case of Anning reported."""
    store, running = await start_service(nursery, settings.replace("jt808", enabled=False))
    await running.cases.load_taxonomy((STATIC.parents[1] / "tracker/devcity/taxonomy.toml").read_text(encoding="utf-8"),
                                      SERVICE)
    commander = await new_account(store, role="commander", district="620105")
    case, _ = await running.cases.create(NewCase("hotline", REFUSE, "路边堆放生活垃圾", *ANNING), SERVICE)
    return store, running, commander, case["id"]


async def test_a_commander_files_dispatches_and_closes_a_case_on_the_page(settings, broker):
    async with trio.open_nursery() as nursery:
        store, running, (name, password), case_id = await service_with_a_case(nursery, settings)
        engine = running.cases
        worker, _ = await new_account(store, role="viewer", district="620105")
        await store.add_department_member("620105-HW", worker)

        def in_browser() -> dict:
            seen: dict = {}
            with open_browser() as driver:
                sign_in(driver, running.url, name, password)
                wait_for_js(driver, "window.gridwatch.wsState === 'open' && window.gridwatch.framesReceived >= 1",
                            timeout=20)
                driver.find_element(By.ID, "gw-tab-cases").click()
                wait_for_js(driver, f"window.gridwatch.casesLoaded && window.gridwatch.cases.has({case_id})")
                row = driver.find_element(By.CSS_SELECTOR, f"li[data-case-id='{case_id}']")
                seen["row"] = row.text
                seen["badge"] = driver.find_element(By.ID, "gw-case-count").text
                click(driver, f"li[data-case-id='{case_id}']")
                wait_for_js(driver, detail_state("reported"))
                seen["offered"] = driver.execute_script(
                    "return [...document.querySelectorAll('#gw-case-actions button')].map(b => b.textContent)")
                click(driver, "#gw-case-actions [data-action='file']")
                wait_for_js(driver, detail_state("filed"))
                click(driver, "#gw-case-actions [data-action='dispatch']")
                wait_for_js(driver, "document.getElementById('gw-case-field-department') !== null")
                seen["department"] = driver.execute_script("return document.getElementById('gw-case-field-department').value")
                click(driver, "#gw-case-submit")
                wait_for_js(driver, detail_state("dispatched"))
                seen["dispatched_actions"] = driver.execute_script(
                    "return [...document.querySelectorAll('#gw-case-actions button')].map(b => b.dataset.action)")
                # the department reports it done elsewhere: the page hears it live
                trio.from_thread.run(engine.transition, case_id, "handle", Actor(worker, "viewer", "620105"),
                                     {"feedback": "已清运"})
                wait_for_js(driver, detail_state("handled"), timeout=15)
                seen["candidates"] = driver.find_element(By.ID, "gw-case-candidates").text
                click(driver, "#gw-case-actions [data-action='verify']")
                driver.find_element(By.ID, "gw-case-field-collector").send_keys("c0001")
                click(driver, "#gw-case-submit")
                wait_for_js(driver, detail_state("verifying"))
                click(driver, "#gw-case-actions [data-action='close']")
                wait_for_js(driver, detail_state("closed"))
                seen["timeline"] = driver.execute_script("return document.getElementById('gw-case-timeline').textContent")
                seen["marker"] = driver.execute_script(
                    f"return window.gridwatch.cases.get({case_id}).state")
                # a case made while the page is open arrives over the live feed
                later, _ = trio.from_thread.run(engine.create, NewCase("hotline", REFUSE, "又一处垃圾", *ANNING), SERVICE)
                wait_for_js(driver, f"window.gridwatch.cases.has({later['id']})", timeout=15)
                seen["later_row"] = driver.find_element(By.CSS_SELECTOR, f"li[data-case-id='{later['id']}']").text
                seen["markers"] = driver.execute_script("return document.querySelectorAll('.leaflet-interactive').length")
                save_screenshot(driver, "/tmp/gridwatch-cases.png")
                seen["errors"] = browser_errors(driver)
            return seen

        seen = await trio.to_thread.run_sync(in_browser)
        final = await engine.get(case_id, SERVICE)
        timeline = await engine.timeline(case_id, SERVICE)
        nursery.cancel_scope.cancel()
    assert "待立案" in seen["row"] and f"#{case_id}" in seen["row"]
    assert seen["badge"] == "1"
    assert seen["offered"] == ["立案", "不予立案"]
    assert seen["department"] == "620105-HW"
    assert "request_extension" not in seen["dispatched_actions"] and "park" in seen["dispatched_actions"]
    # the service proposes the collectors on duty near the case; none is near this one, so
    # the page says so and the collector is named by hand
    assert seen["candidates"].startswith("附近暂无采集员"), seen["candidates"]
    assert final["state"] == "closed" and final["department"] == "620105-HW" and final["verifier"] == "c0001"
    assert [(e["action"], e["actor"]) for e in timeline] == [
        ("create", "system"), ("file", name), ("dispatch", name), ("handle", worker), ("verify", name), ("close", name)]
    for label in ("上报", "立案", "派遣", "处置反馈", "派发核查", "结案"):
        assert label in seen["timeline"]
    assert seen["marker"] == "closed"
    assert "待立案" in seen["later_row"]
    assert seen["markers"] >= 2
    assert [e for e in seen["errors"] if "candidates" not in e] == []


async def test_a_form_being_filled_in_stays_when_the_same_case_is_asked_for_again(settings, broker):
    """The page's own action and the live feed's news of it may both fetch the case: the
    second answer holds nothing new and must not wipe the dispatch form in between. Asking
    for the case again from its row is the same path, made deterministic."""
    async with trio.open_nursery() as nursery:
        _, running, (name, password), case_id = await service_with_a_case(nursery, settings)
        await running.cases.transition(case_id, "file", Actor(name, "commander", "620105"))

        def in_browser() -> dict:
            with open_browser() as driver:
                sign_in(driver, running.url, name, password)
                wait_for_js(driver, "window.gridwatch.wsState === 'open'", timeout=20)
                driver.find_element(By.ID, "gw-tab-cases").click()
                wait_for_js(driver, f"window.gridwatch.casesLoaded && window.gridwatch.cases.has({case_id})")
                click(driver, f"li[data-case-id='{case_id}']")
                wait_for_js(driver, detail_state("filed"))
                click(driver, "#gw-case-actions [data-action='dispatch']")
                wait_for_js(driver, "document.getElementById('gw-case-field-department') !== null")
                fetched = driver.execute_script("return window.gridwatch.caseDetailFetches")
                click(driver, f"li[data-case-id='{case_id}']")  # the same case, nothing new in it
                wait_for_js(driver, f"window.gridwatch.caseDetailFetches > {fetched}")
                return driver.execute_script(
                    "const f = document.getElementById('gw-case-form');"
                    "const d = document.getElementById('gw-case-field-department');"
                    "return {form: Boolean(f && !f.hidden), department: d && d.value,"
                    " submit: Boolean(document.getElementById('gw-case-submit'))}")

        seen = await trio.to_thread.run_sync(in_browser)
        nursery.cancel_scope.cancel()
    assert seen == {"form": True, "department": "620105-HW", "submit": True}


def test_the_page_names_actions_as_the_lifecycle_does():
    from alerts.cases.lifecycle import LABELS_ZH, Action, CaseState

    text = (STATIC / "cases.js").read_text(encoding="utf-8")
    def table(name: str) -> dict[str, str]:
        body = re.search(r"export const " + name + r" = \{(.*?)\};", text, re.S)
        assert body is not None, name
        return dict(re.findall(r"(\w+): '([^']+)'", body.group(1)))

    assert table("ACTION_ZH") == {action.value: LABELS_ZH[action] for action in Action}
    assert table("STATE_ZH") == {state.value: LABELS_ZH[state] for state in CaseState}
