"""The Journal entries tab in a real browser, against the product started the way `make run` starts it and
the fake e-conomic: turn payments on, choose the journal and account, save, and find them again after a
reload; at a phone's width the page does not scroll sideways."""

import pytest

from doubles.economic import FakeEconomic

from ..live import running_portal
from .helpers import no_sideways_scroll, sign_in

pytestmark = pytest.mark.browser

EMAIL = "owner@journals.test"
PASSWORD = "a journal entries password"
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture
def world(tmp_path):
    with FakeEconomic() as economic_fake:
        env = {"PORTAL_ADMIN_EMAIL": EMAIL, "PORTAL_ADMIN_PASSWORD": PASSWORD, "PORTAL_MERCHANT_NAME": "Journal Shop ApS",
               "ECONOMIC_API_URL": economic_fake.url}
        with running_portal(tmp_path, env) as portal:
            yield portal, economic_fake


def test_turn_payments_on_choose_journal_and_account_and_find_them_after_a_reload(world, page, screenshots):
    portal, economic_fake = world
    shoot = screenshots
    page.set_viewport_size(WIDE)
    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    # e-conomic's tokens (the fake's), so the tab can offer its journals and accounts.
    page.click("nav >> text=Connections")
    page.fill("#economic_app_secret_token", "app")
    page.fill("#economic_agreement_grant_token", "grant")
    page.click("input[value='Check and save e-conomic tokens']")
    assert "Connected to e-conomic as Fake ApS (agreement 123456)." in page.locator(".flash-success").first.inner_text()

    # The tab sits beside the other settings tabs.
    page.click("nav >> text=Rules & mappings")
    page.click(".tabs >> text=Journal entries")
    page.wait_for_url(portal.base_url + "/settings/journals")
    assert page.locator(".tabs a[aria-current=page]").inner_text() == "Journal entries"
    assert page.locator("#payments_enabled").is_checked() is False
    shoot(page, "journal-entries-empty")

    page.check("#payments_enabled")
    page.select_option("#journal_number", label="1 – Kassekladde")
    page.select_option("#stripe_balance_account", label="5830 – Stripe balance")
    page.click("input[value='Save journal entries']")
    assert page.locator(".flash-success").inner_text() == "Journal entries saved."
    assert page.locator("#stripe-events code", has_text="invoice_payment.paid").count() == 1
    shoot(page, "journal-entries-saved")

    page.reload()
    assert page.locator(".flash-success").count() == 0
    assert page.locator("#payments_enabled").is_checked()
    assert page.locator("#refunds_enabled").is_checked() is False
    assert page.locator("#journal_number option:checked").inner_text() == "1 – Kassekladde"
    assert page.locator("#stripe_balance_account option:checked").inner_text() == "5830 – Stripe balance"
    assert page.locator("#bank_account").input_value() == ""
    assert any(request["path"] == "/journals" for request in economic_fake.requests)
    assert no_sideways_scroll(page)

    page.set_viewport_size(NARROW)
    assert no_sideways_scroll(page), "the Journal entries page scrolls sideways at 390 px"
    assert page.locator("input[value='Save journal entries']").is_visible()
    shoot(page, "journal-entries-390")
    assert page.console_errors == []
