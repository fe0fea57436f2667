"""A new user's first minutes, in a real browser against the product started as `make run` starts it."""

import pytest

from ..live import free_port, running_portal
from .helpers import open_account_menu, sign_in

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
    page.click("input[value='Check and save e-conomic tokens']")
    # Tokens are checked with e-conomic before they are stored; there is no e-conomic here.
    assert "nothing was stored" in page.locator(".flash-error").first.inner_text().lower()
    assert "appSecretFromTheBrowser1" not in page.content()

    # Test connection answers in place (HTMX, CSRF header and all); the page is not reloaded.
    page.evaluate("window.notReloaded = true")
    page.click(".stripe-account >> text=Test connection")
    result = page.locator(".stripe-account [aria-live] p")
    result.wait_for()
    assert result.inner_text() == "Enter and save the secret key of “Stripe” first."
    assert page.evaluate("window.notReloaded") is True
    shoot(page, "connection-test")
    assert page.console_errors == []  # no CSP violations, no script errors

    open_account_menu(page)
    page.click("text=Sign out")
    page.wait_for_url(portal.base_url + "/login")


def test_save_a_rule_and_edit_two_mappings_inline(portal, page, screenshots):
    shoot = screenshots
    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    page.click("nav >> text=Rules & mappings")
    page.check("input[name=trigger][value=paid]")
    page.check("input[name=document_type][value=booked_invoice]")
    page.click("input[value=Save]")
    assert "Invoice Sync Rules saved." in page.locator(".flash-success").inner_text()
    page.reload()
    assert page.is_checked("input[name=trigger][value=paid]")
    assert page.is_checked("input[name=document_type][value=booked_invoice]")
    shoot(page, "rules-saved")

    page.click(".tabs >> text=Invoice/Order field mappings")
    page.evaluate("window.notReloaded = true")

    # Delivery Terms: from invoice metadata, typed key.
    terms = page.locator("#row-delivery-deliveryTerms")
    terms.locator("button", has_text="Edit").click()
    terms.locator("select").wait_for()
    assert page.evaluate("window.notReloaded") is True  # swapped in place by HTMX
    terms.locator("select").select_option("metadata")
    terms.locator("input[type=text]").fill("delivery_terms")
    terms.locator("input[type=text]").dispatch_event("change")
    assert "changed" in terms.get_attribute("class")
    assert page.locator(".unsaved-note").is_visible()

    # Delivery Date: only dates can be picked; choose "Paid at".
    date = page.locator("#row-delivery-deliveryDate")
    date.locator("button", has_text="Edit").click()
    source = date.locator("select[name='source-delivery.deliveryDate']")
    source.wait_for()
    assert source.locator("option[value='field:customer_name']").is_disabled()
    source.select_option("field:status_transitions.paid_at")
    shoot(page, "mappings-edited")

    # Leaving now would lose the edits: the page asks first (dismissed here).
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.click("text=Cancel")
    assert dialogs == ["Discard your unsaved changes?"]
    assert page.evaluate("window.notReloaded") is True

    page.click("text=Save Mappings")
    page.wait_for_load_state()
    assert "Mappings saved." in page.locator(".flash-success").inner_text()
    page.reload()
    assert "Invoice metadata › delivery_terms" in page.locator("#row-delivery-deliveryTerms").inner_text()
    assert "Dates › Paid at" in page.locator("#row-delivery-deliveryDate").inner_text()
    shoot(page, "mappings-after-reload")
    assert page.console_errors == []


def test_change_the_password_on_the_account_page_then_the_old_one_no_longer_signs_in(portal, page, screenshots):
    new_password = "a new browser test passphrase"
    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    open_account_menu(page)
    page.click("header .account-menu a:text-is('Account')")
    page.wait_for_url(portal.base_url + "/account")
    page.fill("#current_password", PASSWORD)
    page.fill("#new_password", new_password)
    page.fill("#new_password_again", new_password)
    page.click("input[value='Change password']")
    assert page.locator(".flash-success").inner_text() == "Your password is changed. Your other sessions are signed out."
    screenshots(page, "password-changed")

    open_account_menu(page)
    page.click("header button:text-is('Sign out')")
    page.wait_for_url(portal.base_url + "/login")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("input[type=submit]")
    assert page.locator("small.error").inner_text() == "Invalid e-mail or password."

    sign_in(page, portal.base_url, EMAIL, new_password)
    assert page.locator("h1").inner_text() == "Browser Shop ApS"
    assert page.console_errors == []
