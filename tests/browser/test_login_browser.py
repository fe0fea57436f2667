"""A new user's first minute, in a real browser against the product started as `make run` starts it."""

import pytest

from ..live import free_port, running_portal

pytestmark = pytest.mark.browser

EMAIL = "owner@shop.test"
PASSWORD = "a long browser test password"


@pytest.fixture
def portal(tmp_path):
    env = {
        "PORTAL_ADMIN_EMAIL": EMAIL,
        "PORTAL_ADMIN_PASSWORD": PASSWORD,
        "PORTAL_MERCHANT_NAME": "Browser Shop ApS",
        # Nothing listens here: the connection test must show e-conomic as unreachable.
        "ECONOMIC_API_URL": f"http://127.0.0.1:{free_port()}",
    }
    with running_portal(tmp_path, env) as running:
        yield running


def test_sign_in_save_a_connection_and_test_it_without_reload(portal, page, screenshots):
    page.goto(portal.base_url + "/")
    assert page.url.startswith(portal.base_url + "/login")
    shoot = screenshots
    shoot(page, "login")

    page.fill("#email", EMAIL)
    page.fill("#password", "wrong password")
    page.click("input[type=submit]")
    assert page.locator("small.error").inner_text() == "Invalid e-mail or password."

    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(portal.base_url + "/")
    assert page.locator("h1").inner_text() == "Browser Shop ApS"
    shoot(page, "start-page")

    page.click("text=Connections")
    page.fill("#economic_app_secret_token", "appSecretFromTheBrowser1")
    page.fill("#economic_agreement_grant_token", "grantTokenFromTheBrowser")
    page.click("input[type=submit]")
    assert page.locator(".flash-success").first.inner_text() == "Connections saved."
    assert "…ser1" in page.content()
    assert "appSecretFromTheBrowser1" not in page.content()

    # Test connection answers in place (HTMX, CSRF header and all); the page is not reloaded.
    page.evaluate("window.notReloaded = true")
    page.click("#economic-check >> xpath=preceding-sibling::button[1]")
    result = page.locator("#economic-check p")
    result.wait_for()
    assert result.inner_text().startswith("Could not reach e-conomic")
    assert page.evaluate("window.notReloaded") is True
    shoot(page, "connection-test")
    assert page.console_errors == []  # no CSP violations, no script errors

    page.click("text=Sign out")
    page.wait_for_url(portal.base_url + "/login")
