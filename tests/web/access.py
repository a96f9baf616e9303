"""Calling the web application as a given principal without logging in: wraps the ASGI
application so every request and WebSocket carries the principal, as authentication
would have put it in the scope. For tests of what a route returns to whom; tests of
authentication itself go through the login and the tokens."""

from __future__ import annotations

from typing import Any

from tests.browser import wait_for_js
from web.principal import PRINCIPAL_KEY, Principal, Role

CITY_ADMIN = Principal("admin", Role.ADMIN, None, 1)
CITY_VIEWER = Principal("city-viewer", Role.VIEWER, None, 2)


def as_principal(app: Any, who: Principal) -> Any:
    async def wrapped(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, PRINCIPAL_KEY: who}
        await app(scope, receive, send)

    wrapped.state = getattr(app, "state", None)  # type: ignore[attr-defined]
    return wrapped


def sign_in(driver: Any, url: str, name: str, password: str) -> None:
    """Log in through the login page in the browser, and wait for the map to load."""
    from selenium.webdriver.common.by import By

    driver.get(url + "/")  # without a session the map sends the browser to the login page
    wait_for_js(driver, "location.pathname === '/login' && window.gridwatchLogin && window.gridwatchLogin.ready")
    driver.find_element(By.ID, "gw-login-name").send_keys(name)
    driver.find_element(By.ID, "gw-login-password").send_keys(password)
    driver.find_element(By.ID, "gw-login-submit").click()
    wait_for_js(driver, "location.pathname === '/' && window.gridwatch && window.gridwatch.user !== null", timeout=20)
