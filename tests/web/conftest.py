"""Fixtures of the page tests: one headless Chromium per module, a page loaded on the fake server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser import open_browser
from tests.web.fake_map import FakeService, Page, loaded_page


@pytest.fixture(scope="module")
def driver() -> Iterator[WebDriver]:
    with open_browser(width=1440, height=900) as browser:
        yield browser



@pytest.fixture
def page(driver: WebDriver) -> Iterator[Page]:
    with loaded_page(driver, FakeService()) as loaded:
        yield loaded
