"""The invoice page in plain words: steps as sentences, the values sent as a labelled table, durations only
on hover, the e-conomic document and the Stripe invoice linked, errors that say what to do."""

import html
import json
import re
from datetime import datetime, timezone

import pytest

from portal.extensions import db
from portal.models import AuditRow, SyncRun, WebhookEvent

from .helpers import first_stripe_account, login

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
TOKENS_REFUSED = ("e-conomic refused customer: e-conomic answered 401: The app secret token or the agreement grant "
                  "token is not valid. [logId 0HN7ABCDEF:00000001]")


def page_text(html_page: str) -> str:
    """The page's words as a person reads them: no tags, spacing collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_page)).split()).replace(" .", ".").replace(" ,", ",")


@pytest.fixture
def signed_in(client, account):
    login(client, account.email)
    return client


def add_run(merchant_id, invoice_id, **fields):
    values = dict(merchant_id=merchant_id, stripe_account_id=first_stripe_account(merchant_id), stripe_invoice_id=invoice_id,
                  document_type="booked_invoice", trigger="paid", status="succeeded", stripe_invoice_number="NB-0042",
                  customer_name="Kystlys Studio ApS", currency="DKK", total_minor=124900, attempts=1,
                  created_at=BASE, updated_at=BASE)
    values.update(fields)
    run = SyncRun(**values)
    db.session.add(run)
    db.session.flush()
    return run


def step(run, name, outcome, numbers=None, summary=None, error=None, ms=12, attempt=1):
    db.session.add(AuditRow(run_id=run.id, merchant_id=run.merchant_id, attempt=attempt, step=name, outcome=outcome,
                            numbers=numbers, summary=json.dumps(summary) if summary else None, error=error,
                            duration_ms=ms, created_at=BASE))


def test_a_synced_invoice_reads_as_sentences_with_the_values_sent(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, "in_sentences", economic_customer_number=1001, economic_draft_number=12,
                      economic_booked_number=20003)
        step(run, "fetch", "found", "NB-0042", {"lines": 2})
        step(run, "vat", "found", "VAT zone 1", {"treatments": ["Danish VAT 25 %"]})
        step(run, "customer", "found", "customer 1001", {"how": "matched on email"})
        step(run, "products", "created", "prod_Pro, prod_Seats", {
            "prod_Pro": {"number": "prod_Pro", "how": "created", "name": "Pro plan"},
            "prod_Seats": {"number": "prod_Seats", "how": "created", "name": "Seats"}})
        step(run, "document", "created", "draft invoice 12", {
            "mapped": {"notes.heading": "Invoice NB-0042", "delivery.city": "Aarhus C"}, "cut": {}, "fallbacks": [], "lines": 2},
             ms=1834)
        step(run, "book", "created", "booked invoice 20003 (from draft 12)")
        step(run, "write_back", "done", "Stripe invoice NB-0042")
        db.session.add(WebhookEvent(merchant_id=account.merchant_id, stripe_account_id=run.stripe_account_id,
                                    stripe_event_id="evt_1", type="invoice.paid", stripe_invoice_id="in_sentences",
                                    payload="{}", outcome="queued", sync_run_id=run.id, livemode=True))
        db.session.commit()
    page = signed_in.get("/history/invoices/in_sentences").get_data(as_text=True)
    words = page_text(page)
    for sentence in ("Read invoice NB-0042 from Stripe (2 lines)", "Found customer 1001 Kystlys Studio ApS (matched on email)",
                     "Created products Pro plan, Seats", "Created draft invoice 12 in e-conomic",
                     "Booked draft 12 as invoice 20003", "Wrote the e-conomic number into Stripe invoice NB-0042"):
        assert sentence in words, sentence
    values = page.split('class="values-sent"')[1].split("</table>")[0]
    assert re.findall(r'<th scope="row">([^<]+)</th><td>([^<]+)</td>', values) == [("Delivery city", "Aarhus C"),
                                                                                   ("Heading", "Invoice NB-0042")]
    assert 'title="took 1.8 s"' in page and ">1834<" not in page  # durations only on hover
    visible = page.split('class="technical-details steps-recorded"')[0]
    assert "write_back" not in visible and '"mapped"' not in visible and "prod_Pro" not in visible
    assert 'href="https://dashboard.stripe.com/invoices/in_sentences"' in page  # live: no /test
    assert "booked invoice no." in words
    assert 'href="https://secure.e-conomic.com/sales/invoicing/archive"' in page


def test_a_refused_token_says_what_to_do_with_the_exact_words_in_details(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, "in_refused", status="failed", last_error=TOKENS_REFUSED)
        step(run, "fetch", "found", "NB-0042", {"lines": 1})
        step(run, "customer", "failed", error=TOKENS_REFUSED)
        db.session.commit()
    page = signed_in.get("/history/invoices/in_refused").get_data(as_text=True)
    box = page.split('class="flash flash-error run-error"')[1].split("</div>")[0]
    assert "Your e-conomic tokens were refused — " in box
    assert '<a href="/connections#economic" class="error-action">reconnect on Connections</a>' in box
    assert "This run will not retry by itself." in box
    sentence = box.split("<details")[0]
    assert "0HN7ABCDEF" not in sentence and "401" not in sentence
    assert '<details class="technical-details">' in box and "0HN7ABCDEF:00000001" in box
    assert page.count("Your e-conomic tokens were refused") == 1  # the failed step does not repeat it
    assert "Could not find or create the customer in e-conomic" in page_text(page)


def test_an_ignored_event_says_not_synced_and_what_the_button_does(app, signed_in, account):
    with app.app_context():
        db.session.add(WebhookEvent(merchant_id=account.merchant_id, stripe_account_id=first_stripe_account(account.merchant_id),
                                    stripe_event_id="evt_ign", type="invoice.paid", stripe_invoice_id="in_ignored_words",
                                    payload="{}", outcome="ignored",
                                    ignored_reason="The rule creates documents when the invoice is Sent; this event says it was Paid."))
        db.session.commit()
    words = page_text(signed_in.get("/history/invoices/in_ignored_words").get_data(as_text=True))
    assert "Not synced: The rule creates documents when the invoice is Sent; this event says it was Paid." in words
    assert "queued:" not in words
    assert "Sync this invoice now Sync it now under your current rule" in words


def steps_table(page: str) -> str:
    """The first run's steps table, as words."""
    return page_text(page.split('class="timeline steps"')[1].split("</table>")[0])


def test_an_attempt_that_failed_before_any_step_says_so_not_that_no_step_ran(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, "in_before_steps", status="failed", attempts=2, finished_at=BASE,
                last_error="e-conomic is not connected (Connections), so the document cannot be made.")
        db.session.commit()
    words = steps_table(signed_in.get("/history/invoices/in_before_steps").get_data(as_text=True))
    assert "Attempt 2 failed before any step: e-conomic is not connected failed" in words
    assert "No step has run yet" not in words


def test_a_retrying_run_says_its_attempt_failed_and_when_the_next_one_starts(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, "in_retrying", status="retrying", attempts=1, will_retry=True, finished_at=BASE,
                next_retry_at=datetime(2026, 11, 20, 12, 5, tzinfo=timezone.utc),
                last_error="customer: e-conomic at https://restapi.e-conomic.com did not answer in time.")
        db.session.commit()
    page = signed_in.get("/history/invoices/in_retrying").get_data(as_text=True)
    words = steps_table(page)
    assert "Attempt 1 failed before any step: e-conomic did not answer; it is retried automatically failed" in words
    assert "Waiting for its next attempt at " in words and "No step has run yet" not in words
    waiting = page.split("Waiting for its next attempt at ")[1].split("</td>")[0]
    assert 'datetime="2026-11-20T13:05:00+01:00"' in waiting  # the merchant's zone (Europe/Copenhagen by default)


def test_a_later_attempt_without_steps_is_listed_under_its_own_heading(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, "in_second_attempt", status="failed", attempts=2, finished_at=BASE,
                      last_error="Stripe: Invalid API Key provided: sk_test_****1234")
        step(run, "fetch", "found", "NB-0042", {"lines": 1})
        step(run, "customer", "failed", error="e-conomic answered 503: Service unavailable.")
        db.session.commit()
    words = steps_table(signed_in.get("/history/invoices/in_second_attempt").get_data(as_text=True))
    assert words.index("Attempt 1") < words.index("Read invoice NB-0042") < words.index(
        "Attempt 2 failed before any step: Stripe refused the account's key failed")


def test_a_run_not_started_yet_says_it_is_queued(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, "in_queued_words", status="queued", attempts=0)
        run = add_run(account.merchant_id, "in_queued_again", status="queued", attempts=1)
        step(run, "fetch", "found", "NB-0042", {"lines": 1})
        db.session.commit()
    first = steps_table(signed_in.get("/history/invoices/in_queued_words").get_data(as_text=True))
    assert "Queued: it starts as soon as the worker picks it up queued" in first
    again = steps_table(signed_in.get("/history/invoices/in_queued_again").get_data(as_text=True))
    assert "Queued for attempt 2: it starts as soon as the worker picks it up" in again
