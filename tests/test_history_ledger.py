"""Sync history as a ledger: invoices the rules left alone listed and counted, one row per invoice, times in
the merchant's zone, cards refreshed with the rows, Needs attention with Retry all failed, a CSV in words."""

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from portal.auth.services import user_create
from portal.extensions import db
from portal.history.ledger import economic_document_url, invoice_facts, one_line, status_look
from portal.history.selectors import HistoryFilter, ledger_page
from portal.models import Merchant, Role, SyncRule, SyncRun, SyncSettings, WebhookEvent
from portal.runs.services import sync_run_from_event
from portal.templating import short_when

from .helpers import csrf_token, first_stripe_account, login
from .test_history import add_run

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def invoice_object(invoice_id, number, customer="Anna Bikes ApS", total=12500, **fields):
    return {"id": invoice_id, "object": "invoice", "number": number, "customer_name": customer,
            "customer_email": "anna@bikes.dk", "total": total, "currency": "dkk", "status": "open",
            "collection_method": "send_invoice", **fields}


def add_ignored(merchant_id, invoice_id, number, at, event_type="invoice.sent", reason="The rule creates documents when the invoice is Paid; this event says it was Sent.", n=None, **fields):
    event = WebhookEvent(
        merchant_id=merchant_id, stripe_account_id=first_stripe_account(merchant_id),
        stripe_event_id=f"evt_{invoice_id}_{n if n is not None else event_type}", type=event_type, stripe_invoice_id=invoice_id,
        payload=json.dumps({"type": event_type, "data": {"object": invoice_object(invoice_id, number, **fields)}}),
        outcome="ignored", ignored_reason=reason, received_at=at)
    db.session.add(event)
    return event


@pytest.fixture
def signed_in(client, account):
    login(client, account.email)
    return client


def test_an_invoice_the_rules_left_alone_is_listed_with_number_customer_amount_and_reason(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, 1, updated_at=NOW - timedelta(minutes=10))
        add_ignored(account.merchant_id, "in_sent_only", "INV-SENT-1", NOW - timedelta(minutes=5))
        db.session.commit()
    page = signed_in.get("/history").get_data(as_text=True)
    assert "INV-SENT-1" in page and "Anna Bikes ApS" in page and "125.00 DKK" in page
    assert '<span aria-hidden="true">–</span> Not synced' in page
    assert "this event says it was Sent." in page
    assert "in_sent_only</a>" not in page  # its number, not a bare in_… id
    assert page.index("INV-SENT-1") < page.index("INV-00001")  # newest first, across both
    # Counted in the overview.
    assert "1 ignored" in page


def test_an_invoice_is_one_row_its_latest_ignored_event_and_none_once_it_has_a_run(app, signed_in, account):
    with app.app_context():
        add_ignored(account.merchant_id, "in_twice", "INV-TWICE", NOW - timedelta(minutes=9), event_type="invoice.finalized", reason="first reason")
        add_ignored(account.merchant_id, "in_twice", "INV-TWICE", NOW - timedelta(minutes=8), reason="latest reason")
        add_ignored(account.merchant_id, f"in_{account.merchant_id}_7", "INV-00007", NOW - timedelta(minutes=7), event_type="invoice.finalized")
        add_run(account.merchant_id, 7, updated_at=NOW - timedelta(minutes=1))  # synced later, on invoice.paid
        db.session.commit()
    page = signed_in.get("/history").get_data(as_text=True)
    assert page.count("INV-TWICE") == 1 and "latest reason" in page and "first reason" not in page
    assert page.count("INV-00007") == 1 and "Not synced" in page
    ignored_only = signed_in.get("/history?status=ignored").get_data(as_text=True)
    assert "INV-TWICE" in ignored_only and "INV-00007" not in ignored_only
    assert "1 ignored" in page


def test_keyset_pages_cover_runs_and_ignored_invoices_once_each_in_order(app, account):
    with app.app_context():
        for n in range(1, 24):
            add_run(account.merchant_id, n, updated_at=NOW - timedelta(minutes=2 * n))
        for n in range(1, 18):  # some at the very moment of a run: ties are broken the same way on every page
            add_ignored(account.merchant_id, f"in_ign_{n}", f"IGN-{n}", NOW - timedelta(minutes=3 * n))
        db.session.commit()
        seen, cursor = [], None
        while True:
            page = ledger_page(account.merchant_id, HistoryFilter(), cursor, size=7)
            seen += [(type(row).__name__, row.id, row.updated_at if isinstance(row, SyncRun) else row.received_at) for row in page.rows]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(seen) == 23 + 17 and len(set(seen)) == len(seen)
        moments = [moment for _, _, moment in seen]
        assert moments == sorted(moments, reverse=True)
        # A status filter lists runs only.
        failed_only = ledger_page(account.merchant_id, HistoryFilter(status="succeeded"), None, size=100)
        assert all(isinstance(row, SyncRun) for row in failed_only.rows) and len(failed_only.rows) == 23


def test_a_run_queued_from_an_event_shows_number_customer_and_amount_before_its_first_fetch(app, account):
    with app.app_context():
        event = add_ignored(account.merchant_id, "in_paid", "INV-PAID-1", NOW, event_type="invoice.paid", reason=None)
        event.outcome = "received"
        db.session.commit()
        run = sync_run_from_event(event, invoice_object("in_paid", "INV-PAID-1", status="paid"), None)
        assert run is not None and run.status == "queued"
        run = db.session.get(SyncRun, run.id)
        assert (run.stripe_invoice_number, run.customer_name, run.customer_email, run.total_minor, run.currency) == (
            "INV-PAID-1", "Anna Bikes ApS", "anna@bikes.dk", 12500, "DKK")


def test_sync_this_invoice_now_describes_the_run_from_the_stored_event(app, signed_in, account):
    with app.app_context():
        event = add_ignored(account.merchant_id, "in_now", "INV-NOW", NOW)
        db.session.commit()
        event_id = event.id
    token = csrf_token(signed_in, "/history/invoices/in_now")
    signed_in.post(f"/history/events/{event_id}/sync-now", data={"csrf_token": token})
    with app.app_context():
        run = db.session.scalar(db.select(SyncRun).where(SyncRun.stripe_invoice_id == "in_now"))
        assert (run.status, run.stripe_invoice_number, run.customer_name, run.total_minor) == ("queued", "INV-NOW", "Anna Bikes ApS", 12500)


def test_the_polled_rows_carry_the_overview_cards_out_of_band(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 1, status="queued", updated_at=NOW)
        db.session.commit()
        run_id = run.id
    first = signed_in.get("/history/rows", headers={"HX-Request": "true"})
    body = first.get_data(as_text=True)
    assert first.status_code == 200 and 'id="history-overview"' in body and 'hx-swap-oob="true"' in body
    assert "1 queued" in body
    with app.app_context():
        db.session.get(SyncRun, run_id).status = "succeeded"
        db.session.commit()
    last = signed_in.get("/history/rows", headers={"HX-Request": "true"})
    body = last.get_data(as_text=True)
    assert last.status_code == 286  # nothing in flight: polling stops, with rows and cards of the same moment
    assert "1 succeeded" in body and "1 queued" not in body
    assert "HX-Request" in last.headers["Vary"]


def test_needs_attention_lists_failed_and_held_and_retry_all_failed_queues_each(app, client, account):
    with app.app_context():
        user_create(db.session.get(Merchant, account.merchant_id), "member@acme.test", "correct horse battery staple 1", role=Role.MEMBER)
        add_run(account.merchant_id, 1, status="failed", last_error="e-conomic: the customer group is missing. " * 5)
        add_run(account.merchant_id, 2, status="failed", last_error="timeout")
        add_run(account.merchant_id, 3, status="held", held_reason="VAT differs")
        add_run(account.merchant_id, 4)
        db.session.commit()
    login(client, "member@acme.test", "correct horse battery staple 1")  # members may retry, as Sync again
    page = client.get("/history?status=attention").get_data(as_text=True)
    assert "INV-00001" in page and "INV-00002" in page and "INV-00003" in page and "INV-00004" not in page
    assert "Retry all failed (2)" in page
    # The row's error is one line, cut at a word; the full text is on the invoice page.
    assert "e-conomic: the customer group is missing. e-conomic: the customer group is missing." in page
    assert ("e-conomic: the customer group is missing. " * 5).strip() not in page
    assert client.post("/history/retry-failed").status_code == 400  # CSRF
    done = client.post("/history/retry-failed", data={"csrf_token": csrf_token(client, "/history")}, follow_redirects=True)
    assert "Queued 2 failed runs to sync again." in done.get_data(as_text=True)
    with app.app_context():
        statuses = dict(db.session.execute(db.select(SyncRun.stripe_invoice_number, SyncRun.status)).all())
    assert statuses == {"INV-00001": "queued", "INV-00002": "queued", "INV-00003": "held", "INV-00004": "succeeded"}


def test_retry_all_failed_touches_only_the_merchants_own_runs(app, signed_in, account, other_account):
    with app.app_context():
        add_run(other_account.merchant_id, 1, status="failed")
        db.session.commit()
    done = signed_in.post("/history/retry-failed", data={"csrf_token": csrf_token(signed_in, "/history")}, follow_redirects=True)
    assert "Nothing to retry" in done.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(SyncRun.status)) == "failed"


def test_times_are_short_and_in_the_merchants_time_zone(app, signed_in, account):
    with app.app_context():
        db.session.add(SyncSettings(merchant_id=account.merchant_id, time_zone="America/New_York"))
        add_run(account.merchant_id, 1, updated_at=datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc))
        db.session.commit()
    page = signed_in.get("/history").get_data(as_text=True)
    assert '<time datetime="2026-06-01T08:00:00-04:00" title="2026-06-01 08:00:00 EDT (America/New_York)">' in page
    zone = ZoneInfo("Europe/Copenhagen")
    now = datetime(2026, 11, 28, 13, 0, tzinfo=timezone.utc)
    assert short_when(datetime(2026, 11, 28, 13, 5, tzinfo=timezone.utc), zone, now) == "today 14:05"
    assert short_when(datetime(2026, 11, 27, 22, 30, tzinfo=timezone.utc), zone, now) == "yesterday 23:30"
    assert short_when(datetime(2026, 11, 27, 23, 30, tzinfo=timezone.utc), zone, now) == "today 00:30"  # local midnight
    assert short_when(datetime(2026, 11, 2, 8, 12, tzinfo=timezone.utc), zone, now) == "2 Nov 09:12"
    assert short_when(datetime(2025, 11, 2, 8, 12, tzinfo=timezone.utc), zone, now) == "2 Nov 2025"


def test_the_csv_speaks_words_has_offsets_includes_ignored_invoices_and_defuses_every_cell(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, 1, document_type="booked_invoice", economic_booked_number=20003,
                updated_at=datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc), customer_email="@evil.test",
                stripe_invoice_number="=1+1", last_error="-2+3 was refused")
        add_run(account.merchant_id, 2, total_minor=-1250)
        add_ignored(account.merchant_id, "in_ign_csv", "+INV-IGN", datetime(2026, 11, 20, 13, 0, tzinfo=timezone.utc),
                    customer="@SUM(A1)", reason="=HYPERLINK(\"x\") not synced")
        db.session.commit()
    rows = list(csv.DictReader(io.StringIO(signed_in.get("/history.csv").get_data(as_text=True))))
    booked = next(row for row in rows if row["economic_document_number"] == "20003")
    assert (booked["document_type"], booked["trigger"], booked["status"]) == ("Booked invoice", "Paid", "Succeeded")
    assert booked["last_update"] == "2026-11-20T13:00:00+01:00"
    assert (booked["invoice_number"], booked["email"], booked["error"]) == ("'=1+1", "'@evil.test", "'-2+3 was refused")
    assert next(row for row in rows if row["invoice_number"] == "INV-00002")["amount"] == "-12.50"  # a number stays one
    ignored = next(row for row in rows if row["stripe_invoice_id"] == "in_ign_csv")
    assert (ignored["status"], ignored["invoice_number"], ignored["customer"], ignored["amount"]) == ("Not synced", "'+INV-IGN", "'@SUM(A1)", "125.00")
    assert ignored["not_synced_reason"] == "'=HYPERLINK(\"x\") not synced" and ignored["last_update"] == "2026-11-20T14:00:00+01:00"
    only_failed = list(csv.DictReader(io.StringIO(signed_in.get("/history.csv?status=failed").get_data(as_text=True))))
    assert only_failed == []


def test_economic_document_links_and_small_helpers():
    app_url = "https://secure.e-conomic.com"
    assert economic_document_url(app_url, "booked_invoice", 20003) == "https://secure.e-conomic.com/sales/invoicing/archive"
    assert economic_document_url(app_url + "/", "draft_invoice", 12) == "https://secure.e-conomic.com/sales/invoicing/invoices"
    assert economic_document_url(app_url, "draft_order", None) is None
    assert economic_document_url(app_url, "something_else", 3) is None
    assert set(SyncRule.DOCUMENT_TYPES) <= {"booked_invoice", "draft_invoice", "draft_order"}
    assert status_look("held").word == "Held for review" and status_look("ignored").word == "Not synced"
    assert one_line("a  b\nc") == "a b c" and one_line("word " * 40).endswith("…")
    assert invoice_facts("").number is None and invoice_facts("not json").customer_name is None
