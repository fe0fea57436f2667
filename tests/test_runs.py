"""Webhook events → sync runs → RQ jobs, and one attempt of a run through the database."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import responses
from rq import Queue

from portal.extensions import db
from portal.models import AuditRow, Connection, CustomerLink, ProductLink, SyncRule, SyncRun, SyncSettings, WebhookEvent
from portal.runs.jobs import sync_run_execute
from portal.runs.recovery import sync_run_requeue_pending
from portal.runs.services import sync_run_create

from .helpers import event_payload, stripe_signature

DATA = Path(__file__).parent / "data"
SECRET = "whsec_runs_secret"


@pytest.fixture
def merchant(app, account):
    with app.app_context():
        db.session.add(Connection(merchant_id=account.merchant_id, stripe_webhook_secret=SECRET,
                                  stripe_secret_key="sk_test_runs", economic_app_secret_token="app",
                                  economic_agreement_grant_token="grant"))
        db.session.commit()
    return account


def event(kind="invoice.paid", **invoice_changes):
    name = "event_invoice_paid.json" if kind == "invoice.paid" else "event_invoice_sent.json"
    data = json.loads((DATA / name).read_text())
    data["type"] = kind
    data["data"]["object"].update(invoice_changes)
    return data


def deliver(client, account, payload_event):
    payload = event_payload(payload_event)
    return client.post(f"/webhooks/stripe/{account.webhook_key}", data=payload,
                       headers={"Stripe-Signature": stripe_signature(payload, SECRET), "Content-Type": "application/json"})


def queue(app):
    from portal.queue import redis_connection

    return Queue(app.config["RQ_QUEUE"], connection=redis_connection(app))


def runs(app):
    with app.app_context():
        return list(db.session.scalars(db.select(SyncRun)))


def events(app):
    with app.app_context():
        return list(db.session.scalars(db.select(WebhookEvent).order_by(WebhookEvent.id)))


def test_a_matching_event_creates_one_run_and_one_job_with_ids_only(app, client, merchant):
    response = deliver(client, merchant, event())
    assert response.status_code == 200
    [run] = runs(app)
    assert (run.status, run.document_type, run.trigger) == ("queued", "draft_invoice", "paid")
    with app.app_context():
        jobs = queue(app).get_jobs()
        assert [job.id for job in jobs] == [run.job_id]
        assert jobs[0].func_name == "portal.runs.jobs.sync_run_job" and jobs[0].args == (run.id,)
    [stored] = events(app)
    assert (stored.outcome, stored.sync_run_id) == ("queued", run.id)


def test_the_same_event_20_times_concurrently_makes_one_run_and_one_job(app, merchant):
    payload_event = event()

    def send(_):
        return deliver(app.test_client(), merchant, payload_event).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(20)))
    assert statuses == [200] * 20
    assert len(runs(app)) == 1
    assert len(events(app)) == 1
    with app.app_context():
        assert len(queue(app).get_jobs()) == 1


def test_paid_then_sent_for_the_same_invoice_is_still_one_run(app, client, merchant):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, trigger="paid"))
        db.session.commit()
    deliver(client, merchant, event("invoice.paid"))
    second = event("invoice.paid")
    second["id"] = "evt_another_delivery"
    deliver(client, merchant, second)
    [run] = runs(app)
    first, duplicate = events(app)
    assert (first.outcome, first.sync_run_id, first.ignored_reason) == ("queued", run.id, None)
    assert (duplicate.outcome, duplicate.sync_run_id) == ("duplicate", run.id)
    assert duplicate.ignored_reason == "A sync of this invoice into a Draft Invoice exists already."


def test_different_events_for_one_invoice_at_once_make_one_run_and_all_point_at_it(app, merchant):
    def send(n):
        payload_event = event()
        payload_event["id"] = f"evt_concurrent_{n}"
        return deliver(app.test_client(), merchant, payload_event).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(16)))
    assert statuses == [200] * 16
    [run] = runs(app)
    stored = events(app)
    assert len(stored) == 16 and {e.sync_run_id for e in stored} == {run.id}
    assert sorted(e.outcome for e in stored) == ["duplicate"] * 15 + ["queued"]
    with app.app_context():
        assert [job.id for job in queue(app).get_jobs()] == [run.job_id]


def test_an_event_arriving_while_another_request_inserts_the_invoices_run_points_at_that_run(app, merchant):
    payload_event = event()
    with app.app_context():
        other_request = db.engine.connect()
        other_request.execute(db.insert(SyncRun).values(
            merchant_id=merchant.merchant_id, stripe_invoice_id=payload_event["data"]["object"]["id"],
            document_type="draft_invoice", trigger="paid"))  # inserted, not yet committed
    with ThreadPoolExecutor(max_workers=1) as pool:
        delivery = pool.submit(deliver, app.test_client(), merchant, payload_event)
        time.sleep(0.5)
        assert not delivery.done()  # waiting on the run's unique key
        other_request.commit()
        other_request.close()
        assert delivery.result(timeout=10).status_code == 200
    [run] = runs(app)
    [stored] = events(app)
    assert (stored.outcome, stored.sync_run_id) == ("duplicate", run.id)
    with app.app_context():
        assert queue(app).get_jobs() == []


def test_a_repeated_delivery_after_the_document_type_changed_makes_no_second_run(app, client, merchant):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, trigger="paid", document_type="draft_invoice"))
        db.session.commit()
    payload_event = event("invoice.paid")
    deliver(client, merchant, payload_event)
    with app.app_context():
        db.session.execute(db.update(SyncRule).values(document_type="booked_invoice"))
        db.session.commit()
    response = deliver(client, merchant, payload_event)
    assert response.json == {"received": True, "duplicate": True}
    assert [run.document_type for run in runs(app)] == ["draft_invoice"]
    with app.app_context():
        assert len(queue(app).get_jobs()) == 1


def test_invoice_sent_under_a_paid_rule_is_ignored_with_the_reason(app, client, merchant):
    deliver(client, merchant, event("invoice.sent"))
    assert runs(app) == []
    [stored] = events(app)
    assert stored.outcome == "ignored"
    assert stored.ignored_reason == "The rule creates documents when the invoice is Paid; this event says it was Sent."


@pytest.mark.parametrize(
    "rule, kind, changes, reason",
    [
        ({"trigger": "paid"}, "invoice.paid", {"total": 0}, "total is 0"),
        ({"trigger": "sent"}, "invoice.voided", {"status": "void"}, "voided invoices are not synced"),
        ({"trigger": "sent", "sent_on_finalized_for_automatic": False}, "invoice.finalized", {"collection_method": "charge_automatically"}, "turned off"),
        ({"trigger": "paid"}, "invoice.updated", {}, "not an event the Invoice Sync Rules use"),
    ],
)
def test_events_that_do_not_match_are_kept_as_ignored(app, client, merchant, rule, kind, changes, reason):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, **rule))
        db.session.commit()
    deliver(client, merchant, event(kind, **changes))
    assert runs(app) == []
    [stored] = events(app)
    assert stored.outcome == "ignored" and reason in stored.ignored_reason


def test_sent_fires_on_finalized_for_automatically_charged_invoices(app, client, merchant):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, trigger="sent"))
        db.session.commit()
    deliver(client, merchant, event("invoice.finalized", collection_method="charge_automatically"))
    [run] = runs(app)
    assert run.trigger == "sent"


def test_a_run_keeps_the_rule_it_was_queued_under(app, client, merchant):
    deliver(client, merchant, event())
    with app.app_context():
        rule = db.session.scalar(db.select(SyncRule))
        rule.document_type = "draft_order"
        rule.write_back_to_stripe = False
        db.session.commit()
    [run] = runs(app)
    assert (run.document_type, run.write_back_to_stripe) == ("draft_invoice", True)


def test_redis_down_the_event_and_run_are_kept_and_the_requeue_pass_queues_them(app, base_config, merchant, migrated_database):
    from portal import create_app

    offline = create_app({**base_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    response = deliver(offline.test_client(), merchant, event())
    assert response.status_code == 200
    [run] = runs(app)
    assert run.status == "queued" and run.job_id is None
    with app.app_context():
        assert sync_run_requeue_pending() == 1
        assert [job.args for job in queue(app).get_jobs()] == [(run.id,)]
        db.session.remove()
    with offline.app_context():
        db.session.remove()
        db.engine.dispose()


def seed_settings(app, merchant_id):
    with app.app_context():
        db.session.add(SyncSettings(merchant_id=merchant_id, payment_terms_number=1, customer_group_number=1,
                                    vat_zone_domestic=1, layout_number=19, default_product_number="MISC"))
        db.session.add(CustomerLink(merchant_id=merchant_id, stripe_customer_id="cus_zWcPDxNG0RaLgg", economic_customer_number=5001))
        for product, number in (("prod_38AibNyyurlGFb", "P1"), ("prod_U2EqkNk6sEr6f4", "P2")):
            db.session.add(ProductLink(merchant_id=merchant_id, stripe_product_id=product, economic_product_number=number))
        db.session.commit()


@responses.activate
def test_executing_a_run_records_numbers_audit_rows_and_totals(app, merchant):
    seed_settings(app, merchant.merchant_id)
    invoice = json.loads((DATA / "invoice_send_invoice_open.json").read_text())
    invoice["customer"] = json.loads((DATA / "customer.json").read_text())
    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    responses.post(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    responses.post("https://restapi.e-conomic.com/invoices/drafts", json={"draftInvoiceNumber": 314, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0})
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, invoice["id"], SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=True))
        db.session.commit()
        assert sync_run_execute(run.id) == "succeeded"
        run = db.session.get(SyncRun, run.id)
        assert (run.economic_draft_number, run.document_number, run.attempts) == (314, 314, 1)
        assert run.stripe_invoice_number == "KYSTLYS1-0007" and run.total_minor == 1077500
        assert run.reconciled and run.reconciliation.startswith("Totals agree: net Stripe 8,620.00 DKK, e-conomic 8,620.00 DKK")
        steps = [(row.step, row.outcome) for row in db.session.scalars(db.select(AuditRow).order_by(AuditRow.id))]
        assert steps == [("fetch", "found"), ("vat", "found"), ("customer", "found"), ("products", "found"), ("document", "created"), ("write_back", "done")]
        # A second execution of a finished run does nothing: no second document.
        assert sync_run_execute(run.id) == "succeeded"
    assert len([c for c in responses.calls if c.request.url.endswith("/invoices/drafts")]) == 1


@responses.activate
def test_a_permanent_failure_ends_failed_with_the_reason_and_no_retry(app, merchant):
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, "in_missing", SyncRule(merchant_id=merchant.merchant_id, trigger="paid", document_type="draft_invoice", write_back_to_stripe=True))
        db.session.commit()
        responses.get("https://api.stripe.com/v1/invoices/in_missing", status=404, json={"error": {"message": "No such invoice: 'in_missing'", "type": "invalid_request_error"}})
        assert sync_run_execute(run.id) == "failed"
        run = db.session.get(SyncRun, run.id)
        assert run.last_error == "Stripe: No such invoice: 'in_missing'" and not run.will_retry


@responses.activate
def test_a_transient_failure_schedules_a_retry_with_backoff(app, merchant):
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, "in_flaky", SyncRule(merchant_id=merchant.merchant_id, trigger="paid", document_type="draft_invoice", write_back_to_stripe=True))
        db.session.commit()
        responses.get("https://api.stripe.com/v1/invoices/in_flaky", status=503, json={"error": {"message": "Stripe is down", "type": "api_error"}})
        assert sync_run_execute(run.id) == "retrying"
        run = db.session.get(SyncRun, run.id)
        assert run.will_retry and run.next_retry_at is not None and run.attempts == 1
        assert run.job_id.endswith("-attempt-2")
        from rq.registry import ScheduledJobRegistry

        assert run.job_id in ScheduledJobRegistry(queue=queue(app)).get_job_ids()
