"""The headless Chromium every browser test drives: Debian's, through Playwright, never a
downloaded browser; a fresh desktop-sized tab with its own cookies per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.web import CHROMIUM, CHROMIUM_ARGS

DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless Debian chromium for the module."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: object) -> Iterator[object]:
    """A fresh desktop-sized tab with its own cookies."""
    context = chromium.new_context(viewport=DESKTOP)  # type: ignore[attr-defined]
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
