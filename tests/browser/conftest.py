"""Browser fixtures: a real `backprop-live serve` (the server tests' helper) and Debian's
chromium driven by Playwright. Without chromium the tests skip, except in CI, where they fail."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from live_server import LiveServer, start_server
from needs import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("BACKPROP_LIVE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the whole session: Playwright's sync API keeps
    its event loop running between calls, and later tests that call asyncio.run would fail."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (pip install -e '.[test]')")
    if not CHROMIUM.is_file():
        skip_or_fail(f"chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server (built-in sample data, known token) shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("browser-server")
    live = start_server(tmp / "state", tmp)
    live.tmp = tmp  # type: ignore[attr-defined]
    yield live
    live.stop()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(url, width=1920, height=1080, **context_options)``: a page in a fresh
    context that fails the test on any uncaught script error."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_(url: str, width: int = 1920, height: int = 1080, **options: Any) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"script errors in the page: {errors}"


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
