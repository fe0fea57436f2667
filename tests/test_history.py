"""Sync history: list, filters, search, keyset pages, polling, the invoice timeline, actions and CSV."""

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest

from portal.extensions import db
from portal.models import AuditRow, SyncRun, WebhookEvent

from .helpers import csrf_token, login, first_stripe_account

BASE = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def add_run(merchant_id, n, status="succeeded", minutes=0, **fields):
    values = dict(
        merchant_id=merchant_id, stripe_account_id=first_stripe_account(merchant_id), stripe_invoice_id=f"in_{merchant_id}_{n}", document_type="draft_invoice",
        trigger="paid", status=status, stripe_invoice_number=f"INV-{n:05d}", customer_name=f"Customer {n}",
        customer_email=f"c{n}@shop.test", currency="DKK", total_minor=12345 + n, attempts=1,
        updated_at=BASE + timedelta(minutes=minutes or n), created_at=BASE,
    )
    values.update(fields)
    run = SyncRun(**values)
    db.session.add(run)
    return run


@pytest.fixture
def signed_in(client, account):
    login(client, account.email)
    return client


def test_an_empty_history_says_what_will_appear(signed_in):
    page = signed_in.get("/history").get_data(as_text=True)
    assert "No invoices have been synced yet" in page
    assert "Sync history" in page


def test_rows_show_what_a_merchant_needs(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, 1, economic_draft_number=501)
        add_run(account.merchant_id, 2, status="retrying", next_retry_at=BASE + timedelta(hours=1), attempts=3)
        db.session.commit()
    page = signed_in.get("/history").get_data(as_text=True)
    assert "INV-00001" in page and "Customer 1" in page and "c1@shop.test" in page
    assert "123.46 DKK" in page  # 12346 øre
    # What was made, linked to where e-conomic lists it; what a retrying run will make, not yet made.
    assert '<a href="https://secure.e-conomic.com/sales/invoicing/invoices" target="_blank"' in page
    assert ">Draft invoice 501</a>" in page and "Draft invoice, not made yet" in page
    # Status in words with its (decorative) icon; times in the merchant's zone (Copenhagen: UTC+1 in November).
    assert '<span aria-hidden="true">↻</span> Retrying' in page and '<span aria-hidden="true">✓</span> Succeeded' in page
    assert 'next try <time datetime="2026-11-20T14:00:00+01:00" title="2026-11-20 14:00:00 CET (Europe/Copenhagen)">' in page
    assert page.index("INV-00002") < page.index("INV-00001")  # newest first


def test_filters_by_status_date_and_search(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, 1, status="failed", last_error="e-conomic refused")
        add_run(account.merchant_id, 2, minutes=60 * 24 * 3)
        add_run(account.merchant_id, 3, customer_email="anna@bikes.dk")
        db.session.commit()
    failed = signed_in.get("/history?status=failed").get_data(as_text=True)
    assert "INV-00001" in failed and "INV-00002" not in failed
    later = signed_in.get("/history?from=2026-11-22").get_data(as_text=True)
    assert "INV-00002" in later and "INV-00001" not in later
    found = signed_in.get("/history?q=ANNA@bikes").get_data(as_text=True)
    assert "INV-00003" in found and "INV-00001" not in found
    by_number = signed_in.get("/history?q=inv-00002").get_data(as_text=True)
    assert "INV-00002" in by_number and "INV-00003" not in by_number


def test_keyset_pages_cover_every_run_once(app, signed_in, account):
    with app.app_context():
        for n in range(1, 121):
            add_run(account.merchant_id, n, minutes=n // 3)  # ties in updated_at, broken by id
        db.session.commit()
    seen, url = [], "/history"
    while url:
        page = signed_in.get(url).get_data(as_text=True)
        import re

        seen += re.findall(r"INV-\d{5}", page)
        older = re.search(r'href="(/history\?after=[^"]+)">Older', page)
        url = older.group(1).replace("&amp;", "&") if older else None
    assert len(seen) == 120 and len(set(seen)) == 120
    assert seen[0] == "INV-00120"


def test_the_list_polls_while_runs_are_in_flight_and_stops_after(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 1, status="running")
        db.session.commit()
        run_id = run.id
    page = signed_in.get("/history").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in page
    polled = signed_in.get("/history/rows", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "running" in polled.get_data(as_text=True)
    with app.app_context():
        db.session.get(SyncRun, run_id).status = "succeeded"
        db.session.commit()
    done = signed_in.get("/history/rows", headers={"HX-Request": "true"})
    assert done.status_code == 286  # HTMX stops polling
    assert "succeeded" in done.get_data(as_text=True)
    assert 'hx-trigger' not in done.get_data(as_text=True)


def test_the_invoice_timeline_shows_events_steps_values_and_errors(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 7, status="failed", last_error="e-conomic refused document: delivery.city: City is too long.")
        db.session.flush()
        db.session.add(WebhookEvent(merchant_id=account.merchant_id, stripe_account_id=first_stripe_account(account.merchant_id), stripe_event_id="evt_7", type="invoice.paid", stripe_invoice_id=run.stripe_invoice_id, payload="{}", outcome="queued", sync_run_id=run.id))
        db.session.add(AuditRow(run_id=run.id, merchant_id=account.merchant_id, attempt=1, step="customer", outcome="found", numbers="customer 5001", duration_ms=12))
        db.session.add(AuditRow(run_id=run.id, merchant_id=account.merchant_id, attempt=1, step="document", outcome="failed", error="delivery.city: City is too long.", summary='{"mapped": {"delivery.city": "København K"}}', duration_ms=40))
        db.session.commit()
        invoice_id = run.stripe_invoice_id
    page = signed_in.get(f"/history/invoices/{invoice_id}").get_data(as_text=True)
    for text in ("INV-00007", "invoice.paid", "evt_7", "customer 5001", "City is too long.", "København K", "This run will not retry by itself",
                 f"https://dashboard.stripe.com/test/invoices/{invoice_id}", "Sync again"):
        assert text in page, text


def test_sync_again_never_makes_a_second_document_unless_asked(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 3, economic_draft_number=77)
        db.session.commit()
        run_id, invoice_id = run.id, run.stripe_invoice_id
    token = csrf_token(signed_in, f"/history/invoices/{invoice_id}")
    page = signed_in.post(f"/history/runs/{run_id}/sync-again", data={"csrf_token": token}, follow_redirects=True).get_data(as_text=True)
    assert "already in e-conomic as 77" in page
    with app.app_context():
        assert db.session.get(SyncRun, run_id).status == "succeeded"
    signed_in.post(f"/history/runs/{run_id}/sync-again", data={"csrf_token": token, "new_document": "1"})
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        assert (run.status, run.economic_draft_number) == ("queued", None)


def test_sync_again_needs_csrf(app, signed_in, account):
    with app.app_context():
        run = add_run(account.merchant_id, 4, status="failed")
        db.session.commit()
        run_id = run.id
    assert signed_in.post(f"/history/runs/{run_id}/sync-again").status_code == 400
    with app.app_context():
        assert db.session.get(SyncRun, run_id).status == "failed"


def test_an_ignored_event_can_be_synced_now(app, signed_in, account):
    with app.app_context():
        event = WebhookEvent(merchant_id=account.merchant_id, stripe_account_id=first_stripe_account(account.merchant_id), stripe_event_id="evt_ign", type="invoice.sent", stripe_invoice_id="in_ignored", payload="{}", outcome="ignored", ignored_reason="The rule creates documents when the invoice is Paid")
        db.session.add(event)
        db.session.commit()
        event_id = event.id
    listing = signed_in.get("/history?status=ignored").get_data(as_text=True)
    assert "The rule creates documents when the invoice is Paid" in listing
    token = csrf_token(signed_in, "/history/invoices/in_ignored")
    signed_in.post(f"/history/events/{event_id}/sync-now", data={"csrf_token": token})
    with app.app_context():
        [run] = db.session.scalars(db.select(SyncRun)).all()
        assert (run.stripe_invoice_id, run.status) == ("in_ignored", "queued")


def test_csv_export_follows_the_filters_and_defuses_formulas(app, signed_in, account):
    with app.app_context():
        add_run(account.merchant_id, 1, status="failed", customer_name="=HYPERLINK(1)")
        add_run(account.merchant_id, 2)
        db.session.commit()
    response = signed_in.get("/history.csv?status=failed")
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["run_id", "stripe_invoice_id", "invoice_number", "customer"]
    assert len(rows) == 2 and rows[1][2] == "INV-00001" and rows[1][3] == "'=HYPERLINK(1)"
    assert rows[1][5] == "123.46"


def test_the_overview_counts_outcomes(app, signed_in, account):
    with app.app_context():
        now = datetime.now(timezone.utc)
        add_run(account.merchant_id, 1, updated_at=now)
        add_run(account.merchant_id, 2, status="failed", updated_at=now)
        db.session.commit()
    page = signed_in.get("/history").get_data(as_text=True)
    assert "1 succeeded" in page and "1 failed" in page
    assert "<svg" in page and "<title>" in page


def test_events_received_but_not_yet_read_show_and_keep_the_list_polling(app, client, account):
    with app.app_context():
        for n in range(2):
            db.session.add(WebhookEvent(merchant_id=account.merchant_id, stripe_account_id=first_stripe_account(account.merchant_id), stripe_event_id=f"evt_waiting_{n}", type="invoice.paid",
                                        payload="{}", outcome="received", received_at=datetime.now(timezone.utc)))
        db.session.commit()
    login(client, account.email)
    page = client.get("/history").get_data(as_text=True)
    assert "2 Stripe events received, being read; their invoices appear here in a moment." in page
    assert "No invoices have been synced yet" not in page
    rows = client.get("/history/rows", headers={"HX-Request": "true"})
    assert rows.status_code == 200 and 'hx-trigger="every 2s"' in rows.get_data(as_text=True)  # still polling
