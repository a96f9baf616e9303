"""Logging in and out through the pages, in headless Chromium against the real service: an
unauthenticated visit lands on the login page, a wrong password is said so, the right
one opens the map with who is logged in, and logout goes back to the login page with the
old cookie dead."""

from __future__ import annotations

import httpx
import trio
from selenium.webdriver.common.by import By

from tests.browser import browser_errors, open_browser, save_screenshot, wait_for_js
from tests.harness import new_account, start_service
from tests.web.fake_map import FakeService, serving


async def test_log_in_see_the_map_and_who_is_logged_in_then_log_out(settings, broker):
    settings = settings.replace("jt808", enabled=False)
    async with trio.open_nursery() as nursery:
        store, running = await start_service(nursery, settings)
        name, password = await new_account(store, role="commander", district="620105")

        def in_browser() -> dict:
            seen: dict = {}
            with open_browser() as driver:
                driver.get(running.url + "/")
                wait_for_js(driver, "location.pathname === '/login' && window.gridwatchLogin && window.gridwatchLogin.ready")
                seen["labels"] = driver.execute_script(
                    "return [...document.querySelectorAll('label, button')].map(e => e.textContent.trim())")
                driver.find_element(By.ID, "gw-login-name").send_keys(name)
                driver.find_element(By.ID, "gw-login-password").send_keys("not the password")
                driver.find_element(By.ID, "gw-login-submit").click()
                wait_for_js(driver, "!document.getElementById('gw-login-error').hidden")
                seen["error"] = driver.find_element(By.ID, "gw-login-error").text
                driver.find_element(By.ID, "gw-login-password").clear()
                driver.find_element(By.ID, "gw-login-password").send_keys(password)
                driver.find_element(By.ID, "gw-login-submit").click()
                wait_for_js(driver, "location.pathname === '/' && window.gridwatch && window.gridwatch.gridsLoaded", timeout=20)
                wait_for_js(driver, "window.gridwatch.wsState === 'open' && window.gridwatch.framesReceived >= 1", timeout=20)
                seen["user"] = [driver.find_element(By.ID, i).text for i in ("gw-user-name", "gw-user-role", "gw-user-scope")]
                seen["logout_label"] = driver.find_element(By.ID, "gw-logout").text
                seen["cookie"] = driver.get_cookie("gw_session")
                save_screenshot(driver, "/tmp/gridwatch-logged-in.png")
                driver.find_element(By.ID, "gw-logout").click()
                wait_for_js(driver, "location.pathname === '/login'", timeout=10)
                seen["after_logout"] = driver.get_cookie("gw_session")
                driver.get(running.url + "/")
                wait_for_js(driver, "location.pathname === '/login'", timeout=10)
                seen["errors"] = [e for e in browser_errors(driver) if "401" not in e]
            return seen

        seen = await trio.to_thread.run_sync(in_browser)
        async with httpx.AsyncClient(base_url=running.url, timeout=10, cookies={"gw_session": seen["cookie"]["value"]}) as http:
            replayed = (await http.get("/api/devices")).status_code
        nursery.cancel_scope.cancel()
    assert seen["labels"] == ["用户名", "密码", "登录"]
    assert seen["error"].startswith("用户名或密码错误")
    assert seen["user"] == [name, "指挥员", "辖区 620105"]
    assert seen["logout_label"] == "退出"
    assert seen["cookie"]["httpOnly"] is True and seen["cookie"]["sameSite"] == "Strict"
    assert seen["after_logout"] is None
    assert replayed == 401
    assert seen["errors"] == []


def test_the_page_of_a_collector_says_the_map_is_not_for_it_and_loads_nothing(driver):
    service = FakeService(user={"account": "c0001-li", "role": "collector", "scope": "620105", "district": "620105",
                                "device": "c0001", "via": "session", "csrf": "x"})
    with serving(service.app()) as url:
        browser_errors(driver)
        driver.get(url + "/")
        wait_for_js(driver, "window.gridwatch && window.gridwatch.user !== null && !document.getElementById('gw-banner').hidden")
        banner = driver.find_element(By.ID, "gw-banner").text
        role = driver.find_element(By.ID, "gw-user-role").text
        loaded = driver.execute_script("return window.gridwatch.gridsLoaded")
        errors = browser_errors(driver)
        driver.get("about:blank")
    assert banner.startswith("采集员账号仅可查看本人设备") and role == "采集员"
    assert loaded is False and service.connections == 0
    assert errors == []


def test_without_a_session_the_page_goes_to_the_login_page(driver):
    service = FakeService(user=None)
    with serving(service.app()) as url:
        driver.get(url + "/")
        wait_for_js(driver, "location.pathname === '/login'")
        driver.get("about:blank")
    assert service.connections == 0
