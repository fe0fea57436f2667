"""End to end in a real browser: connections, settings, rule, mappings, a signed invoice.paid, and the
booked invoice in the (fake) e-conomic, all against the product started the way `make run` starts it."""


import pytest

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe, deliver, make_invoice

from ..live import running_portal
from .helpers import sign_in

pytestmark = pytest.mark.browser

EMAIL = "owner@e2e.test"
PASSWORD = "an end to end password"
SECRET = "whsec_end_to_end_secret"


@pytest.fixture
def world(tmp_path):
    with FakeStripe() as stripe_fake, FakeEconomic() as economic_fake:
        economic_fake.add_product("MISC", "Miscellaneous")
        economic_fake.add_product("DISCOUNT", "Discount")
        env = {"PORTAL_ADMIN_EMAIL": EMAIL, "PORTAL_ADMIN_PASSWORD": PASSWORD, "PORTAL_MERCHANT_NAME": "E2E Shop ApS",
               "STRIPE_API_BASE": stripe_fake.url, "ECONOMIC_API_URL": economic_fake.url}
        with running_portal(tmp_path, env) as portal:
            yield portal, stripe_fake, economic_fake


def test_from_connections_to_a_booked_invoice(world, page, screenshots):
    portal, stripe_fake, economic_fake = world
    shoot = screenshots

    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    # Connections, pointing at the doubles, and both connection tests.
    page.click("nav >> text=Connections")
    page.fill(".stripe-account input[name=secret_key]", stripe_fake.api_key)
    page.click("text=Save and check the key")
    assert "Key saved for “Stripe”." in page.locator(".flash-success").first.inner_text()
    page.click("text=Or paste the signing secret of an endpoint you added in Stripe")
    page.fill(".stripe-account input[name=webhook_secret]", SECRET)
    page.click("text=Save the signing secret")
    assert "Signing secret saved" in page.locator(".flash-success").first.inner_text()
    page.fill("#economic_app_secret_token", "app")
    page.fill("#economic_agreement_grant_token", "grant")
    page.click("input[value='Check and save e-conomic tokens']")
    assert "Connected to e-conomic as Fake ApS (agreement 123456)." in page.locator(".flash-success").first.inner_text()
    page.click(".stripe-account >> text=Test connection")
    stripe_check = page.locator(".stripe-account [aria-live] p")
    stripe_check.wait_for()
    assert stripe_check.inner_text() == (f"Connected to Stripe account {stripe_fake.account['id']} (Demo Shop ApS) in test mode; "
                                         "the key can read what the sync needs.")
    page.click("#economic-check >> xpath=preceding-sibling::button[1]")
    page.locator("#economic-check p").wait_for()
    assert page.locator("#economic-check p").inner_text() == "Connected to e-conomic as Fake ApS (agreement 123456)."
    webhook_url = page.locator(".webhook-url code").inner_text().strip()
    shoot(page, "connections")

    # Customer & product settings, chosen from the (fake) e-conomic's lists.
    page.click("nav >> text=Customer & product settings")
    page.select_option("#payment_terms_number", label="Net 14 days (1)")
    page.select_option("#customer_group_number", label="Domestic customers (1)")
    for field, label in (("vat_zone_domestic", "Domestic (1)"), ("vat_zone_eu_with_vat_id", "EU (2)"),
                         ("vat_zone_eu_without_vat_id", "EU (2)"), ("vat_zone_outside_eu", "Abroad (3)")):
        page.select_option(f"#{field}", label=label)
    page.select_option("#layout_number", label="Standard invoice layout (19)")
    page.select_option("#new_product_group_number", label="Services (1)")
    page.fill("#default_product_number", "MISC")
    page.fill("#discount_product_number", "DISCOUNT")
    page.click("input[value='Save settings']")
    assert "Customer & product settings saved." in page.locator(".flash-success").inner_text()
    shoot(page, "customer-product-settings")

    # Rule: Paid → Booked Invoice.
    page.click("nav >> text=Rules & mappings")
    page.check("input[name=trigger][value=paid]")
    page.check("input[name=document_type][value=booked_invoice]")
    page.click("input[value=Save]")
    shoot(page, "rules")

    # Mappings: Delivery Terms becomes a fixed text, edited inline, then Save Mappings.
    page.click(".tabs >> text=Invoice/Order field mappings")
    terms = page.locator("#row-delivery-deliveryTerms")
    terms.locator("button", has_text="Edit").click()
    terms.locator("select").select_option("fixed")
    terms.locator("input[type=text]").fill("Free delivery, DAP Copenhagen")
    page.click("text=Save Mappings")
    assert "Mappings saved." in page.locator(".flash-success").inner_text()
    shoot(page, "mappings")

    # Stripe sends invoice.paid; e-conomic answers slowly, so the run can be watched in flight.
    invoice, customer, products = make_invoice(number="E2E-0001")
    stripe_fake.add_invoice(invoice, customer, products)
    economic_fake.latency = 0.7
    assert deliver(webhook_url, "invoice.paid", invoice, SECRET).status_code == 200
    page.click("nav >> text=Sync history")
    page.evaluate("window.notReloaded = true")
    row = page.locator("#history-rows tr", has_text="E2E-0001")
    row.wait_for(timeout=30000)
    shoot(page, "history-in-flight")
    assert row.locator(".status").first.inner_text() in ("◷ Queued", "↻ Syncing", "✓ Succeeded")
    row.locator(".status-succeeded").wait_for(timeout=60000)
    assert page.evaluate("window.notReloaded") is True  # updated by HTMX polling, not a reload
    shoot(page, "history-succeeded")

    # The detail shows the booked number and the delivery values that reached e-conomic.
    [booked] = economic_fake.documents("invoices/booked")
    page.click("text=E2E-0001")
    page.locator(".document-number").wait_for()
    assert page.locator(".document-number").first.inner_text() == str(booked["bookedInvoiceNumber"])
    assert booked["delivery"]["deliveryTerms"] == "Free delivery, DAP Copenhagen"
    page.locator("caption", has_text="Values sent to e-conomic").wait_for()  # a field/value table, not JSON
    details = page.content()
    for value in (booked["delivery"]["deliveryTerms"], booked["delivery"]["city"], booked["delivery"]["address"]):
        assert value in details
    shoot(page, "invoice-detail")
    assert page.console_errors == []
