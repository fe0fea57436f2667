"""Connect e-conomic in a real browser, against the product started the way `make run` starts it and the fake
e-conomic's grant page: press Connect e-conomic, accept on e-conomic's page, land back on Connections showing
the company and agreement number; the Connections page does not scroll sideways at 1280 px nor at 390 px."""

import pytest

from doubles.economic import GRANT_PAGE, FakeEconomic

from ..live import running_portal
from .helpers import no_sideways_scroll, sign_in

pytestmark = pytest.mark.browser

EMAIL = "owner@connect.test"
PASSWORD = "a connect e-conomic password"
APP_PUBLIC_TOKEN = "browserAppPublicToken1"
APP_SECRET_TOKEN = "browserAppSecretToken1"
CONNECTED = "Connected to e-conomic as Fake ApS (agreement 123456)."
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture
def world(tmp_path):
    with FakeEconomic(app_secret_token=APP_SECRET_TOKEN, app_public_token=APP_PUBLIC_TOKEN) as economic_fake:
        env = {"PORTAL_ADMIN_EMAIL": EMAIL, "PORTAL_ADMIN_PASSWORD": PASSWORD, "PORTAL_MERCHANT_NAME": "Connect Shop ApS",
               "ECONOMIC_API_URL": economic_fake.url, "ECONOMIC_INSTALL_URL": economic_fake.url + GRANT_PAGE,
               "ECONOMIC_APP_PUBLIC_TOKEN": APP_PUBLIC_TOKEN, "ECONOMIC_APP_SECRET_TOKEN": APP_SECRET_TOKEN}
        with running_portal(tmp_path, env) as portal:
            yield portal, economic_fake


def at_both_widths(page, shoot, step: str) -> None:
    for name, size in (("1280", WIDE), ("390", NARROW)):
        page.set_viewport_size(size)
        assert no_sideways_scroll(page), f"the Connections page scrolls sideways at {name} px ({step})"
        shoot(page, f"{step}-{name}")
    page.set_viewport_size(WIDE)


def test_connect_e_conomic_through_its_grant_page_and_back(world, page, screenshots):
    portal, economic_fake = world
    shoot = screenshots
    page.set_viewport_size(WIDE)
    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    page.click("nav >> text=Connections")
    card = page.locator("#economic-connection")
    assert "not connected" in card.locator(".connection-state").inner_text()
    assert card.locator("summary", has_text="Paste tokens instead").is_visible()
    at_both_widths(page, shoot, "not-connected")

    # e-conomic's grant page (the fake's), then back.
    card.locator("button", has_text="Connect e-conomic").click()
    page.wait_for_url(economic_fake.url + GRANT_PAGE + "?**")
    assert page.locator("main p").first.inner_text() == "Invoice Sync wants access to Fake ApS (agreement 123456)."
    shoot(page, "grant-page")
    page.click("button:text-is('Accept')")
    page.wait_for_url(portal.base_url + "/connections")

    assert page.locator(".flash-success").first.inner_text() == CONNECTED
    state = " ".join(page.locator("#economic-connection .connection-state").inner_text().split())
    assert "Agreement Fake ApS, agreement 123456" in state and "Last check passed" in state
    grant = next(token for token in economic_fake.grant_tokens if token != "grant")
    assert grant not in page.content() and APP_SECRET_TOKEN not in page.content()
    at_both_widths(page, shoot, "connected")

    # Test connection answers in place, and the check is what the card shows after a reload.
    card.locator("button", has_text="Test connection").click()
    page.locator("#economic-check p").wait_for()
    assert page.locator("#economic-check p").inner_text() == CONNECTED
    page.reload()
    assert "Last check passed" in " ".join(card.locator(".connection-state").inner_text().split())
    assert page.console_errors == []
