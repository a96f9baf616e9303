"""Headless Chromium for page tests: Debian's chromium and chromedriver through Selenium.

The driver is always Debian's ``/usr/bin/chromedriver`` named explicitly, so Selenium
Manager never tries to download one. The project's bootstrap installs both packages;
a test that needs the browser fails (never skips) when they are missing.

    from tests.browser import open_browser, wait_for_js, save_screenshot, browser_errors

    with open_browser() as driver:
        driver.get(url)
        wait_for_js(driver, "window.gridwatch && window.gridwatch.gridsLoaded")
        assert browser_errors(driver) == []
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

INSTALL_HINT = "apt-get install chromium chromium-driver, and selenium from the test extra"


class BrowserUnavailable(RuntimeError):
    """Chromium, chromedriver or Selenium is not installed."""


def browser_available() -> tuple[bool, str]:
    """Whether a headless browser can be started here, and if not, why not."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (path.is_file() and os.access(path, os.X_OK)):
            return False, f"{path} is missing ({INSTALL_HINT})"
    if importlib.util.find_spec("selenium") is None:
        return False, f"selenium is not installed ({INSTALL_HINT})"
    return True, "ok"


@contextlib.contextmanager
def open_browser(
    *, width: int = 1440, height: int = 900, extra_args: tuple[str, ...] = (), env: Mapping[str, str] | None = None
) -> Iterator[WebDriver]:
    """A fresh headless Chromium with its own temporary profile, quit on exit.

    Browser console messages of every level are kept; read them with
    :func:`browser_log` or :func:`browser_errors`.
    """
    ok, reason = browser_available()
    if not ok:
        raise BrowserUnavailable(reason)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gridwatch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", *extra_args):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # ``env``: added to the environment of chromedriver and so of Chromium (TZ, LANG, ...)
    service = Service(executable_path=str(CHROMEDRIVER), env={**os.environ, **env} if env else None)
    try:
        driver = webdriver.Chrome(service=service, options=options)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def wait_for_js(driver: WebDriver, expression: str, *, timeout: float = 10.0, poll: float = 0.05) -> Any:
    """Evaluate a JS expression until it is truthy; return its value.

    Raises ``AssertionError`` naming the expression, its last value and the browser's
    console errors when ``timeout`` seconds pass first.
    """
    from selenium.common.exceptions import JavascriptException

    deadline = time.monotonic() + timeout
    last: Any = None
    last_error: str | None = None
    while True:
        try:
            last = driver.execute_script(f"return ({expression});")
            last_error = None
        except JavascriptException as error:
            last_error = error.msg
        if last and last_error is None:
            return last
        if time.monotonic() >= deadline:
            detail = f"raised {last_error}" if last_error else f"last value {last!r}"
            raise AssertionError(
                f"timed out after {timeout} s waiting for JS `{expression}`: {detail}; "
                f"console errors: {browser_errors(driver)}"
            )
        time.sleep(poll)


def save_screenshot(driver: WebDriver, path: str | os.PathLike[str]) -> Path:
    """Save a PNG of the current viewport to ``path`` (parents created) and return it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(driver.get_screenshot_as_png())
    return target


def browser_log(driver: WebDriver) -> list[dict[str, Any]]:
    """Console entries logged since the previous call: ``{"level", "message", ...}``."""
    return driver.get_log("browser")


def browser_errors(driver: WebDriver) -> list[str]:
    """Messages of SEVERE console entries (uncaught errors, failed loads) since the last read."""
    return [entry["message"] for entry in browser_log(driver) if entry.get("level") == "SEVERE"]


def after_paint(driver: WebDriver) -> None:
    """Return once the browser has painted two more frames: what the page shows is drawn."""
    driver.set_script_timeout(10)
    driver.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[arguments.length - 1]));")


def wait_until_still(driver: WebDriver, selector: str, *, timeout: float = 10.0) -> tuple[float, float]:
    """Wait until the element's centre holds still for a few frames (an animation ended)."""
    script = ("const r = document.querySelector(arguments[0]).getBoundingClientRect();"
              "return [r.x + r.width / 2, r.y + r.height / 2];")
    deadline = time.monotonic() + timeout
    last = driver.execute_script(script, selector)
    still = 0
    while still < 3:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{selector} still moving after {timeout} s")
        after_paint(driver)
        now = driver.execute_script(script, selector)
        still = still + 1 if now == last else 0
        last = now
    return tuple(last)
