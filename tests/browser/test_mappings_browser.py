"""The mappings page in a real browser, against the product started the way `make run` starts it and the fake
Stripe: rows in words, a text box only for the choices that take a text, Preview by the invoice's number with
the edits not saved yet, and Preview's error in place; at 1400 px and at a phone's 390 px."""

import pytest

from doubles.stripe import FakeStripe, make_invoice

from ..live import running_portal
from .helpers import no_sideways_scroll, sign_in

pytestmark = pytest.mark.browser

EMAIL = "owner@mappings.test"
PASSWORD = "a mappings browser password"
WIDE, NARROW = {"width": 1400, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture
def world(tmp_path):
    with FakeStripe() as stripe_fake:
        invoice, customer, products = make_invoice(number="NB-2026-0042")
        stripe_fake.add_invoice(invoice, customer, products)
        env = {"PORTAL_ADMIN_EMAIL": EMAIL, "PORTAL_ADMIN_PASSWORD": PASSWORD, "PORTAL_MERCHANT_NAME": "Mapping Shop ApS",
               "STRIPE_API_BASE": stripe_fake.url}
        with running_portal(tmp_path, env) as portal:
            yield portal, stripe_fake, invoice


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1400", "390"])
def test_preview_by_invoice_number_with_unsaved_edits_and_its_error(world, page, screenshots, viewport):
    portal, stripe_fake, invoice = world
    shoot = screenshots
    page.set_viewport_size(viewport)
    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    # The Stripe key, tested as typed before it is saved.
    page.goto(portal.base_url + "/connections")
    page.fill(".stripe-account input[name=secret_key]", stripe_fake.api_key)
    page.click(".stripe-account >> text=Test this key")
    tested = page.locator(".stripe-account [id$=-key-test] p")
    tested.wait_for()
    assert "Not saved yet" in tested.inner_text()
    page.click("text=Save and check the key")
    assert "Key saved" in page.locator(".flash-success").first.inner_text()

    page.goto(portal.base_url + "/mappings")
    terms = page.locator("#row-delivery-deliveryTerms")
    # Words for people, the e-conomic key in a tooltip only.
    assert terms.locator("th").inner_text().startswith("Delivery terms")
    assert "deliveryTerms" not in terms.inner_text()
    assert terms.locator("th span").get_attribute("title") == "e-conomic field delivery.deliveryTerms"
    city = page.locator("#row-delivery-city")
    assert "Ship to (as on the invoice) › City" in city.inner_text()
    assert "ship_to" not in city.inner_text()

    # Edit: no text box while a field or "Not mapped" is chosen; one for fixed text, named for it.
    terms.locator("button", has_text="Edit").click()
    source = terms.locator("select[name='source-delivery.deliveryTerms']")
    source.wait_for()
    text_box = terms.locator("label.source-text")
    assert not text_box.is_visible()
    source.select_option("field:customer_shipping.address.city")
    assert page.evaluate("s => s.selectedOptions[0].text", source.element_handle()) == "Shipping address › City"
    assert not text_box.is_visible()
    source.select_option("fixed")
    assert text_box.is_visible() and text_box.inner_text().strip() == "Text"
    text_box.locator("input").fill("Free delivery, DAP Copenhagen")
    source.select_option("metadata")
    assert text_box.inner_text().strip() == "Metadata key"
    source.select_option("fixed")
    shoot(page, "row-edited")

    # Preview by the number as printed (typed in lower case), with the edit not saved yet.
    page.fill("#preview-invoice", "nb-2026-0042")
    page.click("#mapping-preview button[type=submit]")
    result = page.locator("#preview table")
    result.wait_for()
    assert "NB-2026-0042" in page.locator("#preview").inner_text()
    assert "With your changes, which are not saved yet." in page.locator("#preview").inner_text()
    assert "Free delivery, DAP Copenhagen" in result.locator("tr", has_text="Delivery terms").inner_text()
    assert any(request["path"] == "/v1/invoices/search" for request in stripe_fake.requests)
    assert no_sideways_scroll(page), f"the mappings page scrolls sideways at {viewport['width']} px"
    shoot(page, "preview-by-number")

    # An invoice number Stripe does not know: the error shows in place.
    page.fill("#preview-invoice", "NB-2026-9999")
    page.click("#mapping-preview button[type=submit]")
    alert = page.locator("#preview [role=alert]")
    alert.wait_for()
    assert "There is no invoice numbered NB-2026-9999 in your Stripe account." in alert.inner_text()
    assert page.locator("#preview table").count() == 0
    alert.scroll_into_view_if_needed()
    assert no_sideways_scroll(page)
    shoot(page, "preview-error")

    # Nothing was saved by previewing; Save mappings does.
    page.locator("#mappings-form button[type=submit]").click()
    assert "Mappings saved." in page.locator(".flash-success").inner_text()
    assert "Fixed text: “Free delivery, DAP Copenhagen”" in page.locator("#row-delivery-deliveryTerms").inner_text()
    assert page.console_errors == []


def test_settings_fields_show_only_when_their_option_is_chosen(world, page, screenshots):
    portal, _, _ = world
    page.set_viewport_size(NARROW)
    sign_in(page, portal.base_url, EMAIL, PASSWORD)
    page.goto(portal.base_url + "/customer-product-settings")
    custom_key = page.locator("#custom_match_stripe_key")
    assert not custom_key.is_visible() and not page.locator("#fixed_currency").is_visible()
    assert not page.locator("#simple_search_on").is_visible() and page.locator("#product_number_metadata_key").is_visible()
    page.check("input[name=match_customers_on][value=custom]")
    assert custom_key.is_visible() and page.locator("#custom_match_economic_field").is_visible()
    page.check("input[name=currency_mode][value=fixed]")
    assert page.locator("#fixed_currency").is_visible()
    page.check("input[name=product_matching][value=simple]")
    assert page.locator("#simple_search_on").is_visible() and not page.locator("#product_number_metadata_key").is_visible()
    page.check("input[name=product_not_found][value=skip]")
    assert not page.locator("#new_product_group_number").is_visible() and page.locator("#default_product_number").is_visible()
    page.uncheck("#apply_invoice_discounts")
    assert not page.locator("#discount_product_number").is_visible()
    screenshots(page, "options-chosen-390")
    page.check("input[name=match_customers_on][value=email]")
    assert not custom_key.is_visible()
    assert no_sideways_scroll(page)
    assert page.console_errors == []
