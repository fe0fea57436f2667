"""Runs held for review, in a real browser against the product started the way `make run` starts it:
the count and the filter in the history, the review panel with both sides' totals, Book anyway (after
the confirmation) and Sync again. The held runs are written straight into the portal's database; the
worker making a held run end to end is tested with the engine."""

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, insert, select

from portal.models import Merchant, StripeAccount, SyncRun
from portal.sync.vat import Figures, reconcile

from ..live import running_portal
from .helpers import no_sideways_scroll, sign_in

pytestmark = pytest.mark.browser

EMAIL = "owner@held.test"
PASSWORD = "a held for review password"
REVERSE_CHARGE_REASON = (
    "Stripe charged no VAT on this invoice (EU reverse charge: the customer gave a VAT id), but the e-conomic "
    "draft adds 25 % VAT. “EU reverse charge” is mapped to the VAT zone Domestic. Map it to a VAT zone without "
    "VAT, then use Sync again."
)
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


def totals(stripe, economic):
    return json.dumps(reconcile("DKK", Figures(*map(Decimal, stripe)), Figures(*map(Decimal, economic))).as_json())


def insert_held_runs(database_path) -> None:
    """Two held runs and one that succeeded, for the merchant `make run` created."""
    engine = create_engine(f"sqlite:///{database_path}")
    now = datetime.now(timezone.utc)
    common = dict(trigger="paid", currency="DKK", attempts=1, created_at=now - timedelta(hours=1))
    with engine.begin() as connection:
        merchant_id = connection.scalar(select(Merchant.id))
        common["stripe_account_id"] = connection.scalar(select(StripeAccount.id).where(StripeAccount.merchant_id == merchant_id))
        for row in [
            dict(common, merchant_id=merchant_id, stripe_invoice_id="in_1HeldReverseCharge", stripe_invoice_number="NB-2026-0042",
                 customer_name="Nordic Bikes GmbH", customer_email="ap@nordicbikes.de", document_type="booked_invoice",
                 status="held", total_minor=862000, economic_customer_number=5001, economic_draft_number=31,
                 held_reason=REVERSE_CHARGE_REASON, held_setting="vat-mapping", reconciled=False,
                 totals=totals(("8620.00", "0.00", "8620.00"), ("8620.00", "2155.00", "10775.00")),
                 updated_at=now - timedelta(minutes=5)),
            dict(common, merchant_id=merchant_id, stripe_invoice_id="in_1HeldRounding", stripe_invoice_number="NB-2026-0043",
                 customer_name="Fjord Café ApS", customer_email="regnskab@fjordcafe.dk", document_type="draft_invoice",
                 status="held", total_minor=12498, economic_customer_number=5002, economic_draft_number=32,
                 held_reason="Stripe rounded VAT per line and e-conomic rounds it on the total, so they differ by 0.01 DKK. "
                             "A rounding line would make them agree, but no rounding product is set.",
                 held_setting="rounding-product", reconciled=False,
                 totals=totals(("99.99", "24.99", "124.98"), ("99.99", "25.00", "124.99")),
                 updated_at=now - timedelta(minutes=4)),
            dict(common, merchant_id=merchant_id, stripe_invoice_id="in_1Fine", stripe_invoice_number="NB-2026-0041",
                 customer_name="Aarhus Print A/S", customer_email="bogholderi@aarhusprint.dk", document_type="booked_invoice",
                 status="succeeded", total_minor=125000, economic_booked_number=20003, reconciled=True,
                 reconciliation="Totals agree", updated_at=now - timedelta(minutes=6)),
        ]:
            connection.execute(insert(SyncRun.__table__), row)
    engine.dispose()


@pytest.fixture
def portal(tmp_path):
    env = {"PORTAL_ADMIN_EMAIL": EMAIL, "PORTAL_ADMIN_PASSWORD": PASSWORD, "PORTAL_MERCHANT_NAME": "Nordic Shop ApS"}
    with running_portal(tmp_path, env) as running:
        insert_held_runs(tmp_path / "instance" / "portal.db")
        yield running


def test_review_a_held_run_then_book_it_anyway_and_sync_another_again(portal, page, screenshots):
    shoot = screenshots
    page.set_viewport_size(WIDE)
    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    # The overview counts the held runs beside the failed ones and links to the filter.
    page.click("nav >> text=Sync history")
    held_link = page.locator("a.status-held")
    assert held_link.inner_text() == "2 held for review"
    held_link.click()
    page.wait_for_url(portal.base_url + "/history?status=held")
    assert page.locator("select[name=status] option:checked").inner_text() == "Held for review"
    rows = page.locator("#history-rows tr")
    assert rows.count() == 2
    reverse_charge = page.locator("#history-rows tr", has_text="NB-2026-0042")
    assert reverse_charge.locator(".status").inner_text() == "⚠ Held for review"  # the icon is aria-hidden
    assert reverse_charge.locator(".note-held").inner_text() == "VAT: Stripe 0.00 DKK, e-conomic 2,155.00 DKK"
    assert page.locator("#history-rows", has_text="NB-2026-0041").count() == 0  # the succeeded one is filtered out
    shoot(page, "history-held-filter")

    # The invoice page: why it is held, both sides' figures, the setting to open.
    reverse_charge.locator("a", has_text="NB-2026-0042").click()
    panel = page.locator(".held-review")
    panel.wait_for()
    assert panel.locator("h2").inner_text() == "Held for review — nothing was booked"
    assert REVERSE_CHARGE_REASON in panel.locator(".held-reason").inner_text()
    figures = [[cell.strip() for cell in row.split("\t")] for row in panel.locator(".held-figures tbody tr").all_inner_texts()]
    assert figures == [
        ["Net", "8,620.00 DKK", "8,620.00 DKK", "none"],
        ["VAT", "0.00 DKK", "2,155.00 DKK", "+2,155.00 DKK"],
        ["Gross", "8,620.00 DKK", "10,775.00 DKK", "+2,155.00 DKK"],
    ]
    assert panel.locator("a.open-setting").get_attribute("href") == "/customer-product-settings#vat-mapping"
    assert no_sideways_scroll(page)
    shoot(page, "invoice-held-1280")
    page.set_viewport_size(NARROW)
    assert no_sideways_scroll(page), "the invoice page scrolls sideways at 390 px"
    assert panel.locator("button", has_text="Book anyway").is_visible()
    shoot(page, "invoice-held-390")
    page.set_viewport_size(WIDE)

    # Book anyway asks for the confirmation first (the browser will not send the form without it).
    panel.locator("button", has_text="Book anyway").click()
    assert page.locator(".flash").count() == 0
    assert page.evaluate("document.querySelector('.book-anyway input[name=reviewed]').validity.valueMissing") is True
    panel.locator("text=I have reviewed the draft in e-conomic").click()
    panel.locator("button", has_text="Book anyway").click()
    page.wait_for_load_state()
    assert page.locator(".flash-success").inner_text() == "Queued: the reviewed draft will be booked as it is in a moment."
    assert page.locator(".held-review").count() == 0
    shoot(page, "invoice-book-anyway")

    # The other held run (a Draft Invoice rule): Sync again replaces its draft under the current settings.
    page.goto(portal.base_url + "/history?status=held")
    assert page.locator("#history-rows tr").count() == 1
    page.click("text=NB-2026-0043")
    panel = page.locator(".held-review")
    assert panel.locator("h2").inner_text() == "The draft is in e-conomic, flagged for review"
    assert panel.locator("button", has_text="Keep the draft as it is").is_visible()
    assert "Deletes the held draft no. 32 in e-conomic and makes a new one under your current settings" in panel.inner_text()
    panel.locator("button", has_text="Sync again").click()
    page.wait_for_load_state()
    assert page.locator(".flash-success").inner_text() == "Queued: the invoice will be synced again in a moment."
    assert page.locator(".held-review").count() == 0
    shoot(page, "invoice-sync-again")

    page.goto(portal.base_url + "/history")
    assert page.locator("a.status-held").count() == 0
    assert page.console_errors == []
