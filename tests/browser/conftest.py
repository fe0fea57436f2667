"""Playwright driving Debian's chromium. Without a browser the tests here are skipped, saying why;
in CI (CI=true) a missing browser is an error, since .ci/run installs it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# The README's pictures (`make screenshots`): small JPEGs of the main screens, committed; never written by CI.
README_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
README_VIEWPORT = {"width": 1400, "height": 900}


def readme_screenshots_wanted() -> bool:
    """README_SCREENSHOTS=1 (as `make screenshots` sets it) and not in CI, which must never rewrite docs/."""
    return os.environ.get("README_SCREENSHOTS") == "1" and not os.environ.get("CI")


def _browser_missing_reason() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no browser at {CHROMIUM} (install Debian's chromium: apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = _browser_missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI, but: {reason}")
        if readme_screenshots_wanted():
            pytest.fail(f"README_SCREENSHOTS=1 needs the browser, but: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.console_errors = errors
    yield page
    context.close()


@pytest.fixture
def screenshots(request):
    """A folder named after the test; `shoot(page, "step")` saves one numbered PNG per step."""
    folder = ARTIFACTS / request.node.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    count = [0]

    def shoot(page, step: str, full_page: bool = True) -> Path:
        count[0] += 1
        path = folder / f"{count[0]:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    shoot.folder = folder
    return shoot


@pytest.fixture
def readme_screenshot():
    """`shoot(page, "history")` saves docs/screenshots/history.jpg for the README when README_SCREENSHOTS=1: the
    top 900 px of the page at 1400 px wide, device scale 1, as a JPEG of quality 70 (about 100 KB). Otherwise
    it does nothing, so the tests that call it run as ever."""

    def shoot(page, name: str) -> Path | None:
        if not readme_screenshots_wanted():
            return None
        assert page.viewport_size == README_VIEWPORT, f"README screenshots are taken at {README_VIEWPORT}"
        assert page.evaluate("window.devicePixelRatio") == 1, "README screenshots are taken at device scale 1"
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        path = README_SHOTS / f"{name}.jpg"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), type="jpeg", quality=70, clip={"x": 0, "y": 0, **README_VIEWPORT})
        return path

    return shoot
