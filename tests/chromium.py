"""Headless Debian Chromium for tests that look at a page (used beside tests/ui/conftest.py).

Outside CI a missing Chromium or Playwright skips the test with the reason; in CI it fails.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("MM_ASSETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def artifacts_dir() -> Path:
    """``$MM_ASSETS_ARTIFACTS`` or ``tests/ui/artifacts`` (git-ignored), created."""
    path = Path(os.environ.get("MM_ASSETS_ARTIFACTS") or REPO / "tests" / "ui" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator:
    """A Playwright page in headless Chromium (skips, or fails in CI, when unavailable)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        (pytest.fail if os.environ.get("CI") else pytest.skip)("playwright not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()
