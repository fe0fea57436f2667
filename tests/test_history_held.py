"""Held and skipped runs in the Sync history: the filter and count, the rows, the review panel on the
invoice page (both sides' totals as a merchant reads them), Book anyway and Sync again, and the CSV."""

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from portal.extensions import db
from portal.models import SyncRun
from portal.sync.vat import Figures, reconcile

from .helpers import csrf_token, login, first_stripe_account

BASE = datetime(2026, 11, 27, 9, 30, tzinfo=timezone.utc)

REVERSE_CHARGE_REASON = (
    "Stripe charged no VAT on this invoice (EU reverse charge: the customer gave a VAT id), but the e-conomic "
    "draft adds 25 % VAT. “EU reverse charge” is mapped to the VAT zone Domestic. Map it to a VAT zone without "
    "VAT, then use Sync again."
)
ROUNDING_REASON = (
    "Stripe rounded VAT per line and e-conomic rounds it on the total, so they differ by 0.01 DKK. "
    "A rounding line would make them agree, but no rounding product is set."
)


def totals_json(currency, stripe, economic, rounding="0"):
    """`totals` exactly as the engine stores it: portal.sync.vat's reconciliation as JSON."""
    result = reconcile(currency, Figures(*map(Decimal, stripe)), Figures(*map(Decimal, economic)), Decimal(rounding))
    return json.dumps(result.as_json())


def add_run(merchant_id, n, status="succeeded", **fields):
    values = dict(
        merchant_id=merchant_id, stripe_account_id=first_stripe_account(merchant_id), stripe_invoice_id=f"in_held_{n}", document_type="booked_invoice", trigger="paid",
        status=status, stripe_invoice_number=f"INV-{n:05d}", customer_name=f"Customer {n}", customer_email=f"c{n}@shop.test",
        currency="DKK", total_minor=862000, attempts=1, updated_at=BASE + timedelta(minutes=n), created_at=BASE,
    )
    values.update(fields)
    run = SyncRun(**values)
    db.session.add(run)
    db.session.flush()
    return run


def add_reverse_charge_held(merchant_id, n=1, **fields):
    """A Booked Invoice run held: Stripe charged no VAT, e-conomic's draft added 25 %."""
    values = dict(
        status="held", economic_draft_number=31, economic_customer_number=5001, customer_name="Nordic Bikes GmbH",
        held_reason=REVERSE_CHARGE_REASON, held_setting="vat-mapping",
        totals=totals_json("DKK", ("8620.00", "0.00", "8620.00"), ("8620.00", "2155.00", "10775.00")),
        reconciled=False,
    )
    values.update(fields)
    return add_run(merchant_id, n, **values)


def add_rounding_held(merchant_id, n=2, **fields):
    """A Draft Invoice run held: VAT rounded per line in Stripe, on the total in e-conomic."""
    values = dict(
        status="held", document_type="draft_invoice", economic_draft_number=32, total_minor=12498,
        held_reason=ROUNDING_REASON, held_setting="rounding-product",
        totals=totals_json("DKK", ("99.99", "24.99", "124.98"), ("99.99", "25.00", "124.99")), reconciled=False,
    )
    values.update(fields)
    return add_run(merchant_id, n, **values)


class _Tables(HTMLParser):
    """Each <table class="…">'s rows as lists of cell texts."""

    def __init__(self):
        super().__init__()
        self.tables, self._row, self._cell = {}, None, None
        self._current = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._current = self.tables.setdefault(dict(attrs).get("class", ""), [])
        elif tag == "tr" and self._current is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._current.append(self._row)
            self._row = None
        elif tag == "table":
            self._current = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table(html: str, css_class: str) -> list[list[str]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables[css_class]


def text_of(html: str) -> str:
    """The page's words as a reader sees them: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def signed_in(client, account):
    login(client, account.email)
    return client


def press(client, run_id, invoice_id, action, reviewed=False):
    """Press a run's button on its invoice page (with the page's CSRF token); the page it lands on."""
    token = csrf_token(client, f"/history/invoices/{invoice_id}")
    data = {"csrf_token": token, **({"reviewed": "1"} if reviewed else {})}
    return client.post(f"/history/runs/{run_id}/{action}", data=data, follow_redirects=True).get_data(as_text=True)


def test_held_and_skipped_are_filters_and_the_overview_counts_held_runs(app, signed_in, account):
    now = datetime.now(timezone.utc)
    with app.app_context():
        for n in (1, 2, 3):
            add_reverse_charge_held(account.merchant_id, n, updated_at=now)
        add_run(account.merchant_id, 4, status="failed", last_error="e-conomic refused the document.", updated_at=now)
        add_run(account.merchant_id, 5, status="skipped", last_error="The invoice was voided in Stripe before it was synced.",
                updated_at=now)
        add_run(account.merchant_id, 6, updated_at=now, economic_booked_number=20003)
        db.session.commit()

    page = signed_in.get("/history").get_data(as_text=True)
    assert '<option value="held" >Held for review</option>' in page
    assert '<option value="skipped" >Skipped</option>' in page
    assert '<a href="/history?status=held" class="status status-held">3 held for review</a>' in page
    assert '<a href="/history?status=failed" class="status status-failed">1 failed</a>' in page
    assert "3 held for review" in text_of(page.split("Last 7 days")[0])  # today's figures say it in words too

    held = signed_in.get("/history?status=held").get_data(as_text=True)
    assert '<option value="held" selected>Held for review</option>' in held
    assert re.findall(r"INV-\d{5}", held.split('id="history-rows"')[1]) == ["INV-00003", "INV-00002", "INV-00001"]

    skipped = signed_in.get("/history?status=skipped").get_data(as_text=True)
    assert re.findall(r"INV-\d{5}", skipped.split('id="history-rows"')[1]) == ["INV-00005"]


def test_a_held_row_shows_the_first_difference_and_a_skipped_row_its_reason(app, signed_in, account):
    with app.app_context():
        add_reverse_charge_held(account.merchant_id, 1)
        add_run(account.merchant_id, 2, status="skipped", last_error="The invoice was voided in Stripe before it was synced.")
        add_run(account.merchant_id, 3, status="held", held_reason=REVERSE_CHARGE_REASON, totals=None)  # held before a draft
        db.session.commit()

    rows = {row[0]: row for row in table(signed_in.get("/history").get_data(as_text=True), "history ledger striped")[1:]}
    # The status cell: its icon, the status in words, then the one-line note.
    assert rows["INV-00001"][4] == "⚠ Held for review VAT: Stripe 0.00 DKK, e-conomic 2,155.00 DKK"
    assert rows["INV-00002"][4] == "– Skipped The invoice was voided in Stripe before it was synced."
    # Without figures, the reason stands in, cut at a word to fit the row.
    note = rows["INV-00003"][4].removeprefix("⚠ Held for review ")
    assert note.startswith("Stripe charged no VAT on this invoice (EU reverse charge")
    assert note.endswith("…") and len(note) <= 121


def test_the_invoice_page_of_a_held_booked_invoice_shows_both_figures_and_the_way_on(app, signed_in, account):
    with app.app_context():
        run = add_reverse_charge_held(account.merchant_id)
        db.session.commit()
        run_id, invoice_id = run.id, run.stripe_invoice_id

    page = signed_in.get(f"/history/invoices/{invoice_id}").get_data(as_text=True)
    words = text_of(page)
    assert "Held for review — nothing was booked" in words
    assert words.count("Held for review") >= 2  # the heading, and the status in words
    assert "Draft invoice no. 31 in e-conomic" in words
    assert REVERSE_CHARGE_REASON in words
    assert table(page, "held-figures") == [
        ["Totals", "Stripe", "e-conomic", "Difference"],
        ["Net", "8,620.00 DKK", "8,620.00 DKK", "none"],
        ["VAT", "0.00 DKK", "2,155.00 DKK", "+2,155.00 DKK"],
        ["Gross", "8,620.00 DKK", "10,775.00 DKK", "+2,155.00 DKK"],
    ]
    assert "rounding line" not in words
    assert '<a href="/customer-product-settings#vat-mapping" class="open-setting">Open the setting</a>' in page

    book = re.search(r'<form method="post" action="/history/runs/(\d+)/book-anyway".*?</form>', page, re.S)
    assert book and int(book.group(1)) == run_id
    assert 'name="csrf_token"' in book.group(0)
    assert '<input type="checkbox" name="reviewed" value="1" required> I have reviewed the draft in e-conomic' in book.group(0)
    assert ">Book anyway</button>" in book.group(0)
    assert "Books draft no. 31 in e-conomic exactly as it is" in book.group(0)

    again = re.search(rf'<form method="post" action="/history/runs/{run_id}/sync-again".*?</form>', page, re.S)
    assert again and ">Sync again</button>" in again.group(0)
    assert ("Deletes the held draft no. 31 in e-conomic and makes a new one under your current settings: "
            "change the setting first.") in text_of(again.group(0))
    assert page.count("/sync-again") == 1  # the panel's Sync again replaces the general one
    assert "create a credit note" not in words


def test_a_held_draft_offers_to_keep_the_draft_and_shows_a_rounding_line(app, signed_in, account):
    with app.app_context():
        run = add_rounding_held(account.merchant_id)
        other = add_run(account.merchant_id, 3, status="held", document_type="draft_order", economic_order_number=7,
                        totals=totals_json("DKK", ("99.99", "24.99", "124.98"), ("100.00", "0.00", "100.00"), rounding="0.01"),
                        held_reason="The VAT zone adds no VAT.", held_setting="vat-mapping")
        db.session.commit()
        invoice_id, order_invoice_id = run.stripe_invoice_id, other.stripe_invoice_id

    page = signed_in.get(f"/history/invoices/{invoice_id}").get_data(as_text=True)
    words = text_of(page)
    assert "The draft is in e-conomic, flagged for review" in words
    assert "nothing was booked" not in words
    assert ">Keep the draft as it is</button>" in page and ">Book anyway</button>" not in page
    assert "Leaves draft no. 32 in e-conomic as it is and marks this invoice done" in words
    assert table(page, "held-figures")[1:] == [
        ["Net", "99.99 DKK", "99.99 DKK", "none"],
        ["VAT", "24.99 DKK", "25.00 DKK", "+0.01 DKK"],
        ["Gross", "124.98 DKK", "124.99 DKK", "+0.01 DKK"],
    ]
    assert 'href="/customer-product-settings#rounding-product"' in page

    order = signed_in.get(f"/history/invoices/{order_invoice_id}").get_data(as_text=True)
    assert "Draft order no. 7 in e-conomic" in text_of(order)
    assert table(order, "held-figures")[1:] == [
        ["Net", "99.99 DKK", "100.00 DKK", "+0.01 DKK"],
        ["VAT", "24.99 DKK", "0.00 DKK", "-24.99 DKK"],
        ["Gross", "124.98 DKK", "100.00 DKK", "-24.98 DKK"],
    ]
    assert "e-conomic's net includes a rounding line of 0.01 DKK." in text_of(order)


def test_a_run_held_before_a_draft_existed_offers_only_sync_again(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 1, status="held", document_type="draft_invoice", totals=None, currency="SEK",
                      held_reason="Stripe charged this invoice in SEK, but the settings make every document in DKK.",
                      held_setting="currency")
        db.session.commit()
        invoice_id = run.stripe_invoice_id

    page = signed_in.get(f"/history/invoices/{invoice_id}").get_data(as_text=True)
    words = text_of(page)
    assert "Held for review — nothing was made in e-conomic" in words
    assert "Stripe charged this invoice in SEK, but the settings make every document in DKK." in words
    assert "held-figures" not in page and "/book-anyway" not in page
    assert 'href="/customer-product-settings#currency"' in page
    assert "Makes the document anew under your current settings: change the setting first." in words


def test_a_voided_booked_invoice_asks_for_a_credit_note(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 1, economic_booked_number=20003, needs_credit_note=True)
        db.session.commit()
        invoice_id = run.stripe_invoice_id
    page = text_of(signed_in.get(f"/history/invoices/{invoice_id}").get_data(as_text=True))
    assert "Voided in Stripe after it was booked: a credit note for the whole invoice undoes it in e-conomic" in page
    assert "Make the credit note in e-conomic" in page
    assert "credit note due" in text_of(signed_in.get("/history").get_data(as_text=True))


def test_csv_has_the_new_statuses_the_held_reason_and_the_differences(app, signed_in, account):
    with app.app_context():
        add_reverse_charge_held(account.merchant_id, 1)
        add_run(account.merchant_id, 2, status="skipped", last_error="The invoice was voided in Stripe before it was synced.")
        add_run(account.merchant_id, 3)
        db.session.commit()

    rows = list(csv.DictReader(io.StringIO(signed_in.get("/history.csv").get_data(as_text=True))))
    by_number = {row["invoice_number"]: row for row in rows}
    held, skipped = by_number["INV-00001"], by_number["INV-00002"]
    assert held["status"] == "Held for review"
    assert held["held_reason"] == REVERSE_CHARGE_REASON
    assert held["totals_differences"] == "VAT: Stripe 0.00 DKK, e-conomic 2,155.00 DKK; gross: Stripe 8,620.00 DKK, e-conomic 10,775.00 DKK"
    assert held["amount"] == "8620.00"
    assert skipped["status"] == "Skipped"
    assert skipped["error"] == "The invoice was voided in Stripe before it was synced."
    assert by_number["INV-00003"]["held_reason"] == ""

    only_held = list(csv.DictReader(io.StringIO(signed_in.get("/history.csv?status=held").get_data(as_text=True))))
    assert [row["invoice_number"] for row in only_held] == ["INV-00001"]


def test_book_anyway_without_the_confirmation_is_refused(app, signed_in, account):
    with app.app_context():
        run = add_reverse_charge_held(account.merchant_id)
        db.session.commit()
        run_id, invoice_id = run.id, run.stripe_invoice_id
    token = csrf_token(signed_in, f"/history/invoices/{invoice_id}")
    response = signed_in.post(f"/history/runs/{run_id}/book-anyway", data={"csrf_token": token})
    assert response.status_code == 302 and response.location.endswith(f"/history/invoices/{invoice_id}")
    page = signed_in.get(response.location).get_data(as_text=True)
    assert 'class="flash flash-error"' in page
    assert "Nothing was done: tick “I have reviewed the draft in e-conomic” to confirm first." in page
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        assert (run.status, run.override_reconciliation, run.economic_booked_number) == ("held", False, None)


def test_book_anyway_needs_csrf(app, signed_in, account):
    with app.app_context():
        run_id = add_reverse_charge_held(account.merchant_id).id
        db.session.commit()
    assert signed_in.post(f"/history/runs/{run_id}/book-anyway", data={"reviewed": "1"}).status_code == 400
    with app.app_context():
        assert db.session.get(SyncRun, run_id).status == "held"


def test_keep_the_draft_as_it_is_accepts_a_held_draft(app, signed_in, account):
    with app.app_context():
        run = add_rounding_held(account.merchant_id)
        db.session.commit()
        run_id, invoice_id = run.id, run.stripe_invoice_id
    page = press(signed_in, run_id, invoice_id, "book-anyway", reviewed=True)
    assert 'class="flash flash-success"' in page and "Kept the draft as it is" in page
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        assert (run.status, run.reconciled, run.economic_draft_number) == ("succeeded", False, 32)


def test_book_anyway_queues_the_reviewed_draft_of_a_booked_invoice_rule(app, signed_in, account):
    with app.app_context():
        run = add_reverse_charge_held(account.merchant_id)
        db.session.commit()
        run_id, invoice_id = run.id, run.stripe_invoice_id
    page = press(signed_in, run_id, invoice_id, "book-anyway", reviewed=True)
    assert "Queued: the reviewed draft will be booked as it is in a moment." in page
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        assert (run.status, run.override_reconciliation, run.economic_draft_number) == ("queued", True, 31)


def test_book_anyway_on_a_run_that_is_not_held_shows_the_refusal(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 1, status="failed", last_error="e-conomic refused the document.")
        db.session.commit()
        run_id, invoice_id = run.id, run.stripe_invoice_id
    page = press(signed_in, run_id, invoice_id, "book-anyway", reviewed=True)
    assert '<p class="flash flash-error" role="status">Only a run held for review can be booked anyway.</p>' in page
    with app.app_context():
        assert db.session.get(SyncRun, run_id).status == "failed"


def test_sync_again_on_a_held_run_queues_it(app, signed_in, account):
    with app.app_context():
        run = add_reverse_charge_held(account.merchant_id)
        db.session.commit()
        run_id, invoice_id = run.id, run.stripe_invoice_id
    page = press(signed_in, run_id, invoice_id, "sync-again")
    assert "Queued: the invoice will be synced again in a moment." in page
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        # The held draft is to be deleted and a new one made: the run no longer counts as held.
        assert (run.status, run.discard_draft_number, run.economic_draft_number) == ("queued", 31, None)
    assert "Nothing has failed or is held for review." in signed_in.get("/history").get_data(as_text=True)
