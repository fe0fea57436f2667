"""Backfill: past invoices listed through the Stripe SDK page by page, synced once, with progress."""

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import responses
from responses import matchers

from portal.runs.backfill import backfill_job, backfill_progress
from portal.extensions import db
from portal.models import Backfill, SyncRun

from .helpers import csrf_token, login, stripe_connect, first_stripe_account

DATA = Path(__file__).parent / "data"


def invoice(n, status="paid", total=1000):
    base = json.loads((DATA / "invoice_paid_automatic.json").read_text())
    return {**base, "id": f"in_backfill_{n}", "status": status, "total": total}


@pytest.fixture
def connected(app, account):
    with app.app_context():
        stripe_connect(account.merchant_id, "sk_test_backfill")
        db.session.commit()
    return account


@responses.activate
def test_backfill_pages_through_stripe_and_queues_each_matching_invoice_once(app, client, connected):
    page1 = [invoice(n) for n in range(1, 101)]
    page2 = [invoice(101), invoice(102, status="open"), invoice(103, total=0)]
    start = int(datetime(2026, 10, 1, tzinfo=timezone.utc).timestamp())
    end = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp())
    responses.get("https://api.stripe.com/v1/invoices", json={"object": "list", "data": page1, "has_more": True, "url": "/v1/invoices"},
                  match=[matchers.query_param_matcher({"created[gte]": str(start), "created[lt]": str(end), "limit": "100"})])
    responses.get("https://api.stripe.com/v1/invoices", json={"object": "list", "data": page2, "has_more": False, "url": "/v1/invoices"},
                  match=[matchers.query_param_matcher({"created[gte]": str(start), "created[lt]": str(end), "limit": "100", "starting_after": "in_backfill_100"})])
    with app.app_context():
        db.session.add(SyncRun(merchant_id=connected.merchant_id, stripe_account_id=first_stripe_account(connected.merchant_id), stripe_invoice_id="in_backfill_5", document_type="draft_invoice", trigger="paid", status="succeeded"))
        db.session.commit()
    login(client, connected.email)
    token = csrf_token(client, "/history/backfill")
    response = client.post("/history/backfill", data={"csrf_token": token, "from": "2026-10-01", "to": "2026-10-31"})
    assert response.status_code == 302
    with app.app_context():
        backfill = db.session.scalar(db.select(Backfill))
        assert backfill_job(backfill.id) == "syncing"
        backfill = db.session.get(Backfill, backfill.id)
        assert (backfill.invoices_listed, backfill.runs_created, backfill.already_synced) == (103, 100, 1)
        runs = db.session.scalars(db.select(SyncRun).where(SyncRun.backfill_id == backfill.id)).all()
        assert len(runs) == 100 and all(run.job_id for run in runs)
        progress = backfill_progress(backfill)
        assert (progress["finished"], progress["total"], progress["percent"]) == (0, 100, 0)
        # The invoices listed add up: to sync + synced before + not synced under the rules.
        assert (progress["invoices_to_sync"], progress["synced_before"], progress["not_synced"]) == (100, 1, 2)
        for run in runs[:40]:
            run.status = "succeeded"
        db.session.commit()
        assert backfill_progress(backfill)["percent"] == 40
        backfill_id = backfill.id
    fragment = client.get(f"/history/backfills/{backfill_id}/progress")
    assert fragment.status_code == 200
    assert '<progress value="40" max="100"' in fragment.get_data(as_text=True)
    with app.app_context():
        for run in db.session.scalars(db.select(SyncRun).where(SyncRun.backfill_id == backfill_id)):
            run.status = "succeeded"
        db.session.commit()
    done = client.get(f"/history/backfills/{backfill_id}/progress")
    assert done.status_code == 286  # stops polling
    assert "Done" in done.get_data(as_text=True)
    assert '<progress value="100" max="100"' in done.get_data(as_text=True)  # the bar is full when it says 100 %


@pytest.mark.parametrize(
    "data, message",
    [
        ({"from": "2026-10-31", "to": "2026-10-01"}, "The start date is after the end date."),
        ({"from": "2024-01-01", "to": "2025-12-31"}, "at most 366 days"),
        ({"from": "2026-10-01", "to": "2099-01-01"}, "in the future"),
        ({"from": "yesterday", "to": ""}, "Enter both dates."),
    ],
)
def test_bad_ranges_are_refused_clearly(app, client, connected, data, message):
    login(client, connected.email)
    token = csrf_token(client, "/history/backfill")
    response = client.post("/history/backfill", data={"csrf_token": token, **data}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert message in page
    assert response.status_code == 422
    # What was entered stays in the form, to be corrected rather than typed again.
    assert 'name="from" max="' in page and f'value="{data["from"]}"' in page
    assert f'value="{data["to"]}"' in page
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Backfill)) == 0


def test_held_and_skipped_runs_count_as_finished_so_a_backfill_completes(app, account):
    with app.app_context():
        backfill = Backfill(merchant_id=account.merchant_id, stripe_account_id=first_stripe_account(account.merchant_id), date_from=datetime(2026, 11, 1).date(),
                            date_to=datetime(2026, 11, 30).date(), status="syncing", runs_created=4)
        db.session.add(backfill)
        db.session.flush()
        for n, status in enumerate(("succeeded", "held", "skipped", "failed")):
            db.session.add(SyncRun(merchant_id=account.merchant_id, stripe_account_id=first_stripe_account(account.merchant_id), stripe_invoice_id=f"in_done_{n}", document_type="draft_invoice",
                                   trigger="paid", status=status, backfill_id=backfill.id))
        db.session.commit()
        progress = backfill_progress(backfill)
        assert (progress["finished"], progress["total"], progress["percent"]) == (4, 4, 100)
        assert backfill.status == "done"


@responses.activate
def test_a_backfill_whose_job_died_while_listing_is_listed_again_and_makes_nothing_twice(app, connected):
    from datetime import timedelta

    from portal.runs.recovery import sync_run_requeue_pending

    listed = [invoice(n) for n in range(1, 4)]
    responses.get("https://api.stripe.com/v1/invoices", json={"object": "list", "data": listed, "has_more": False, "url": "/v1/invoices"})
    with app.app_context():
        backfill = Backfill(merchant_id=connected.merchant_id, stripe_account_id=first_stripe_account(connected.merchant_id), date_from=datetime(2026, 10, 1).date(),
                            date_to=datetime(2026, 10, 31).date(), status="listing", invoices_listed=2, runs_created=2,
                            heartbeat_at=datetime.now(timezone.utc) - timedelta(minutes=5))  # its job died two invoices in
        db.session.add(backfill)
        db.session.flush()
        for n in (1, 2):
            db.session.add(SyncRun(merchant_id=connected.merchant_id, stripe_account_id=first_stripe_account(connected.merchant_id), stripe_invoice_id=f"in_backfill_{n}", document_type="draft_invoice",
                                   trigger="paid", status="queued", backfill_id=backfill.id))
        db.session.commit()
        assert sync_run_requeue_pending() == 3  # the backfill's listing job, and its two runs that had no job
        from portal.queue import sync_queue

        assert sorted(job.func_name for job in sync_queue(app).get_jobs()) == [
            "portal.runs.backfill.backfill_job", "portal.runs.jobs.sync_run_job", "portal.runs.jobs.sync_run_job"]
        assert backfill_job(backfill.id) == "syncing"
        backfill = db.session.get(Backfill, backfill.id)
        assert (backfill.invoices_listed, backfill.runs_created, backfill.already_synced) == (3, 3, 0)
        assert db.session.scalar(db.select(db.func.count()).select_from(SyncRun)) == 3
