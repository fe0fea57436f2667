"""The invoice page in plain words, in a real browser against the product started the way `make run` starts it,
at 1400 and 390 px: a run e-conomic refused with a 401 says what to do and links to Connections, with
e-conomic's exact words and logId in a closed "Technical details"; a synced run reads as sentences with the
values sent as a table. The runs are written straight into the portal's database."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, insert, select

from portal.models import AuditRow, Merchant, StripeAccount, SyncRun

from ..live import running_portal
from .helpers import no_sideways_scroll, sign_in

pytestmark = pytest.mark.browser

EMAIL = "owner@invoice-page.test"
PASSWORD = "an invoice page password"
LOG_ID = "0HN7ABCDEF:00000042"
TOKENS_REFUSED = ("e-conomic refused customer: e-conomic answered 401: The app secret token or the agreement grant "
                  f"token is not valid. The app secret token or the agreement grant token is not valid. [logId {LOG_ID}]")
WIDE, NARROW = {"width": 1400, "height": 900}, {"width": 390, "height": 844}


def insert_runs(database_path) -> None:
    """A run e-conomic refused (wrong tokens, stored as before the message was said once) and one that synced."""
    engine = create_engine(f"sqlite:///{database_path}")
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        merchant_id = connection.scalar(select(Merchant.id))
        account_id = connection.scalar(select(StripeAccount.id).where(StripeAccount.merchant_id == merchant_id))
        common = dict(merchant_id=merchant_id, stripe_account_id=account_id, trigger="paid", currency="DKK",
                      document_type="booked_invoice", created_at=now - timedelta(hours=1))
        failed = connection.execute(insert(SyncRun.__table__).values(
            **common, stripe_invoice_id="in_1TokensRefused", stripe_invoice_number="NB-2026-0051",
            customer_name="Kystlys Studio ApS", total_minor=124900, status="failed", attempts=1,
            last_error=TOKENS_REFUSED, updated_at=now - timedelta(minutes=3))).inserted_primary_key[0]
        synced = connection.execute(insert(SyncRun.__table__).values(
            **common, stripe_invoice_id="in_1Synced", stripe_invoice_number="NB-2026-0042",
            customer_name="Kystlys Studio ApS", total_minor=124900, status="succeeded", attempts=1,
            economic_customer_number=1001, economic_draft_number=12, economic_booked_number=20003, reconciled=True,
            reconciliation="Totals agree", updated_at=now - timedelta(minutes=2))).inserted_primary_key[0]

        def step(run_id, name, outcome, numbers=None, summary=None, error=None, ms=14):
            connection.execute(insert(AuditRow.__table__), dict(
                run_id=run_id, merchant_id=merchant_id, attempt=1, step=name, outcome=outcome, numbers=numbers,
                summary=json.dumps(summary) if summary else None, error=error, duration_ms=ms, created_at=now))

        step(failed, "fetch", "found", "NB-2026-0051", {"lines": 2})
        step(failed, "vat", "found", "VAT zone 1", {"treatments": ["Danish VAT 25 %"]})
        step(failed, "customer", "failed", error=TOKENS_REFUSED, ms=230)
        step(synced, "fetch", "found", "NB-2026-0042", {"lines": 2})
        step(synced, "vat", "found", "VAT zone 1", {"treatments": ["Danish VAT 25 %"]})
        step(synced, "customer", "found", "customer 1001", {"how": "matched on email"})
        step(synced, "products", "created", "prod_PMpro, prod_PMseats", {
            "prod_PMpro": {"number": "prod_PMpro", "how": "created", "name": "Pro plan"},
            "prod_PMseats": {"number": "prod_PMseats", "how": "created", "name": "Seats"}})
        step(synced, "document", "created", "draft invoice 12", {
            "mapped": {"notes.heading": "Invoice NB-2026-0042 — Pro plan, November",
                       "delivery.address": "Strandvejen 12, 2. th.", "delivery.city": "Aarhus C"},
            "cut": {}, "fallbacks": [], "lines": 2}, ms=1834)
        step(synced, "book", "created", "booked invoice 20003 (from draft 12)")
        step(synced, "write_back", "done", "Stripe invoice NB-2026-0042")
    engine.dispose()


@pytest.fixture
def portal(tmp_path):
    env = {"PORTAL_ADMIN_EMAIL": EMAIL, "PORTAL_ADMIN_PASSWORD": PASSWORD, "PORTAL_MERCHANT_NAME": "Kystlys Shop ApS"}
    with running_portal(tmp_path, env) as running:
        insert_runs(tmp_path / "instance" / "portal.db")
        yield running


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1400", "390"])
def test_a_refused_token_links_to_connections_and_a_synced_run_reads_as_sentences(portal, page, screenshots, viewport):
    page.set_viewport_size(viewport)
    width = viewport["width"]
    sign_in(page, portal.base_url, EMAIL, PASSWORD)

    # The run e-conomic refused: one sentence, the action linked, the exact words (once) behind a disclosure.
    page.goto(portal.base_url + "/history/invoices/in_1TokensRefused")
    error = page.locator(".run-error")
    assert error.locator(".error-sentence").inner_text() == (
        "Your e-conomic tokens were refused — reconnect on Connections. This run will not retry by itself.")
    link = error.locator("a.error-action")
    assert link.get_attribute("href") == "/connections#economic"
    details = error.locator("details.technical-details")
    assert details.get_attribute("open") is None
    assert not details.locator("pre").is_visible()  # collapsed
    assert LOG_ID not in error.locator(".error-sentence").inner_text()
    details.locator("summary").click()
    assert details.locator("pre").inner_text().count("is not valid.") == 1
    assert details.locator(".log-id").inner_text() == LOG_ID
    assert page.locator("text=Could not find or create the customer in e-conomic").is_visible()
    assert no_sideways_scroll(page), f"the failed run's page scrolls sideways at {width} px"
    screenshots(page, f"invoice-refused-{width}")
    link.click()
    page.wait_for_url(portal.base_url + "/connections#economic")

    # The synced run: what happened in words, the values sent as a table, durations only on hover.
    page.goto(portal.base_url + "/history/invoices/in_1Synced")
    sentences = [text.strip() for text in page.locator("table.steps .step-sentence").all_inner_texts()]
    assert sentences == [
        "Read invoice NB-2026-0042 from Stripe (2 lines)",
        "Checked the VAT Stripe charged (Danish VAT 25 %): VAT zone 1 in e-conomic",
        "Found customer 1001 Kystlys Studio ApS (matched on email)",
        "Created products Pro plan, Seats",
        "Created draft invoice 12 in e-conomic",
        "Booked draft 12 as invoice 20003",
        "Wrote the e-conomic number into Stripe invoice NB-2026-0042",
    ]
    assert page.locator("table.steps tr", has_text="Created draft invoice 12").get_attribute("title") == "took 1.8 s"
    values = [[cell.strip() for cell in row.split("\t")] for row in page.locator("table.values-sent tbody tr").all_inner_texts()]
    assert values == [["Delivery address", "Strandvejen 12, 2. th."], ["Delivery city", "Aarhus C"],
                      ["Heading", "Invoice NB-2026-0042 — Pro plan, November"]]
    visible = page.locator("main").inner_text()
    assert "prod_PM" not in visible.split("Technical details of the steps")[0]
    assert "write_back" not in visible.split("Technical details of the steps")[0]
    assert page.locator("a.stripe-invoice").get_attribute("href") == "https://dashboard.stripe.com/test/invoices/in_1Synced"
    assert page.locator("a.economic-document").get_attribute("href").endswith("/sales/invoicing/archive")
    assert no_sideways_scroll(page), f"the synced run's page scrolls sideways at {width} px"
    screenshots(page, f"invoice-synced-{width}")
    assert page.console_errors == []
