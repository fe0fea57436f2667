"""Webhook events → sync runs → RQ jobs, and one attempt of a run through the database."""

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import responses
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue

from portal.extensions import db
from portal.models import AuditRow, Connection, CustomerLink, ProductLink, SyncRule, SyncRun, SyncSettings, WebhookEvent
from portal.runs.dispatch import events_dispatch
from portal.runs.jobs import sync_run_execute
from portal.runs.recovery import sync_run_requeue_pending
from portal.runs.services import sync_run_create

from .helpers import event_payload, stripe_signature, stripe_connect, first_stripe_account

DATA = Path(__file__).parent / "data"
SECRET = "whsec_runs_secret"


@pytest.fixture
def merchant(app, account):
    with app.app_context():
        stripe_connect(account.merchant_id, "sk_test_runs", SECRET)
        db.session.add(Connection(merchant_id=account.merchant_id, economic_app_secret_token="app",
                                  economic_agreement_grant_token="grant"))
        db.session.commit()
    return account


@pytest.fixture
def other_merchant(app, other_account):
    with app.app_context():
        stripe_connect(other_account.merchant_id, "sk_test_runs_other", SECRET)
        db.session.commit()
    return other_account


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


def invoice_of(payload_event, **changes):
    return {**payload_event["data"]["object"], **changes}


def decide_stored(app, payload_event, invoice=None, job_id="job-under-test"):
    """What the event job decides for a stored event, given the invoice as Stripe has it now."""
    from portal.runs.services import sync_run_from_event

    with app.app_context():
        stored = db.session.scalar(db.select(WebhookEvent).where(WebhookEvent.stripe_event_id == payload_event["id"]))
        run = sync_run_from_event(stored, invoice or invoice_of(payload_event), job_id)
        run_id = run.id if run else None
        db.session.remove()
        return run_id


def test_a_delivery_only_stores_the_event_and_the_dispatch_pass_queues_its_job(app, client, merchant):
    response = deliver(client, merchant, event())
    assert response.status_code == 200 and response.json == {"received": True}
    assert runs(app) == []  # nothing is decided in the request
    [stored] = events(app)
    assert (stored.outcome, stored.sync_run_id, stored.dispatched_at) == ("received", None, None)
    with app.app_context():
        assert queue(app).get_jobs() == []  # the intake never talks to Redis
        assert events_dispatch() == 1
        [job] = queue(app).get_jobs()
        assert job.id == f"{app.config['REDIS_KEY_PREFIX']}-event-{stored.id}"
        assert job.func_name == "portal.runs.jobs.event_job" and job.args == (stored.id,)
        assert job.retries_left == 3 and job.timeout == 600
        assert events_dispatch() == 0  # claimed once: the next pass finds nothing
    [stored] = events(app)
    assert stored.dispatched_at is not None


def test_two_dispatch_passes_at_once_queue_each_of_200_events_once(app, client, merchant, other_merchant):
    for number in range(200):
        payload_event = event()
        payload_event["id"] = f"evt_burst_{number}"
        owner = merchant if number % 2 else other_merchant
        assert deliver(client, owner, payload_event).status_code == 200

    def dispatch_pass(_):
        with app.app_context():
            try:
                return events_dispatch()
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=2) as pool:
        queued = list(pool.map(dispatch_pass, range(2)))
    assert sum(queued) == 200
    with app.app_context():
        event_jobs = sorted(job.args[0] for job in queue(app).get_jobs())
    assert event_jobs == sorted(stored.id for stored in events(app))


def test_events_claimed_while_redis_refuses_are_given_back_for_the_next_pass(app, client, merchant, monkeypatch):
    from portal.runs import dispatch

    deliver(client, merchant, event())

    def redis_away(event_ids):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(dispatch, "events_queue", redis_away)
    with app.app_context():
        with pytest.raises(RedisConnectionError):  # for the worker's loop to report once
            events_dispatch()
        db.session.remove()
    [stored] = events(app)
    assert stored.dispatched_at is None  # waiting still, not left claimed until the requeue pass
    monkeypatch.undo()
    with app.app_context():
        assert events_dispatch() == 1
        assert [job.args for job in queue(app).get_jobs()] == [(stored.id,)]


def test_the_same_event_20_times_concurrently_is_stored_once_with_one_job(app, merchant):
    payload_event = event()

    def send(_):
        return deliver(app.test_client(), merchant, payload_event).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(send, range(20)))
    assert statuses == [200] * 20
    assert len(events(app)) == 1
    with app.app_context():
        assert events_dispatch() == 1
        assert len(queue(app).get_jobs()) == 1


def test_a_matching_event_makes_the_invoices_run_under_the_rule(app, merchant):
    payload_event = event()
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, trigger="paid", document_type="draft_invoice"))
        db.session.commit()
    deliver(app.test_client(), merchant, payload_event)
    run_id = decide_stored(app, payload_event)
    [run] = runs(app)
    assert (run.id, run.status, run.document_type, run.trigger, run.job_id) == (run_id, "queued", "draft_invoice", "paid", "job-under-test")
    [stored] = events(app)
    assert (stored.outcome, stored.sync_run_id) == ("queued", run.id)


def test_another_event_for_the_invoice_points_at_its_run(app, client, merchant):
    first = event("invoice.paid")
    second = event("invoice.paid")
    second["id"] = "evt_another_delivery"
    for payload_event in (first, second):
        deliver(client, merchant, payload_event)
        decide_stored(app, payload_event)
    [run] = runs(app)
    made, duplicate = events(app)
    assert (made.outcome, made.sync_run_id, made.ignored_reason) == ("queued", run.id, None)
    assert (duplicate.outcome, duplicate.sync_run_id) == ("duplicate", run.id)
    assert duplicate.ignored_reason == "A sync of this invoice into a draft invoice exists already."


def test_events_for_one_invoice_decided_at_once_make_one_run_and_all_point_at_it(app, merchant):
    sent = []
    for n in range(16):
        payload_event = event()
        payload_event["id"] = f"evt_concurrent_{n}"
        deliver(app.test_client(), merchant, payload_event)
        sent.append(payload_event)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda payload_event: decide_stored(app, payload_event), sent))
    [run] = runs(app)
    stored = events(app)
    assert len(stored) == 16 and {e.sync_run_id for e in stored} == {run.id}
    assert sorted(e.outcome for e in stored) == ["duplicate"] * 15 + ["queued"]


def test_a_rule_changed_between_sent_and_paid_books_the_draft_instead_of_making_another(app, client, merchant):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, trigger="sent", document_type="draft_invoice"))
        db.session.commit()
    sent_event = event("invoice.sent")
    deliver(client, merchant, sent_event)
    run_id = decide_stored(app, sent_event)
    with app.app_context():  # the draft was made
        db.session.execute(db.update(SyncRun).values(status="succeeded", economic_draft_number=12, job_id=None))
        db.session.execute(db.update(SyncRule).values(trigger="paid", document_type="booked_invoice"))
        db.session.commit()
    paid_event = event("invoice.paid")
    paid_event["data"]["object"]["id"] = sent_event["data"]["object"]["id"]
    deliver(client, merchant, paid_event)
    assert decide_stored(app, paid_event, job_id="job-of-paid") == run_id
    [run] = runs(app)
    assert (run.document_type, run.status, run.trigger, run.economic_draft_number, run.job_id) == (
        "booked_invoice", "queued", "paid", 12, "job-of-paid")
    assert [e.outcome for e in events(app)] == ["queued", "queued"]


@pytest.mark.parametrize("has, number_field, wanted, reason", [
    ("booked_invoice", "economic_booked_number", "draft_invoice", "This invoice is booked in e-conomic already (booked invoice 20001); nothing more is made."),
    ("draft_order", "economic_order_number", "booked_invoice", "This invoice is in e-conomic as draft order 20001; the rule now makes invoices."),
    ("draft_invoice", "economic_draft_number", "draft_order", "This invoice is in e-conomic as draft invoice 20001 already; no draft order is made beside it."),
])
def test_a_rule_change_never_doubles_a_document(app, client, merchant, has, number_field, wanted, reason):
    payload_event = event()
    with app.app_context():
        db.session.add(SyncRun(merchant_id=merchant.merchant_id, stripe_account_id=first_stripe_account(merchant.merchant_id), stripe_invoice_id=payload_event["data"]["object"]["id"],
                               document_type=has, trigger="paid", status="succeeded", **{number_field: 20001}))
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, trigger="paid", document_type=wanted))
        db.session.commit()
    deliver(client, merchant, payload_event)
    assert decide_stored(app, payload_event) is None
    [run] = runs(app)
    assert (run.document_type, run.status) == (has, "succeeded")
    [stored] = events(app)
    assert stored.outcome == "duplicate" and stored.ignored_reason.startswith(reason)


def test_invoice_sent_under_a_paid_rule_is_ignored_with_the_reason(app, client, merchant):
    sent_event = event("invoice.sent")
    deliver(client, merchant, sent_event)
    decide_stored(app, sent_event)
    assert runs(app) == []
    [stored] = events(app)
    assert stored.outcome == "ignored"
    assert stored.ignored_reason == "The rule creates documents when the invoice is Paid; this event says it was Sent."


def test_an_invoice_voided_before_its_event_is_decided_is_not_synced(app, client, merchant):
    """The rule is applied to the invoice as Stripe has it when the job runs, not to the webhook's copy."""
    paid_event = event("invoice.paid")
    deliver(client, merchant, paid_event)
    decide_stored(app, paid_event, invoice=invoice_of(paid_event, status="void"))
    assert runs(app) == []
    [stored] = events(app)
    assert stored.outcome == "ignored" and "voided invoices are not synced" in stored.ignored_reason


@pytest.mark.parametrize(
    "rule, kind, changes, reason",
    [
        ({"trigger": "paid"}, "invoice.paid", {"total": 0}, "total is 0"),
        ({"trigger": "sent"}, "invoice.voided", {"status": "void"}, "voided invoices are not synced"),
        ({"trigger": "sent", "sent_on_finalized_for_automatic": False}, "invoice.finalized", {"collection_method": "charge_automatically"}, "turned off"),
    ],
)
def test_events_that_do_not_match_are_kept_as_ignored(app, client, merchant, rule, kind, changes, reason):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, **rule))
        db.session.commit()
    payload_event = event(kind, **changes)
    deliver(client, merchant, payload_event)
    decide_stored(app, payload_event)
    assert runs(app) == []
    [stored] = events(app)
    assert stored.outcome == "ignored" and reason in stored.ignored_reason


def test_an_event_no_rule_uses_is_ignored_without_asking_stripe(app, client, merchant):
    from portal.runs.jobs import event_job

    payload_event = event("invoice.updated")
    deliver(client, merchant, payload_event)
    with app.app_context():
        [stored] = db.session.scalars(db.select(WebhookEvent)).all()
        assert event_job(stored.id) == "ignored"  # no Stripe call was mocked: none was made
    [stored] = events(app)
    assert "not an event the Invoice Sync Rules use" in stored.ignored_reason


def test_a_voided_event_for_a_booked_invoice_flags_a_credit_note(app, client, merchant):
    voided = event("invoice.voided", status="void")
    with app.app_context():
        db.session.add(SyncRun(merchant_id=merchant.merchant_id, stripe_account_id=first_stripe_account(merchant.merchant_id), stripe_invoice_id=voided["data"]["object"]["id"],
                               document_type="booked_invoice", trigger="paid", status="succeeded", economic_booked_number=20001))
        db.session.commit()
    deliver(client, merchant, voided)
    decide_stored(app, voided)
    [run] = runs(app)
    assert run.needs_credit_note
    [stored] = events(app)
    assert stored.ignored_reason == "The invoice was voided after its document was booked in e-conomic: a credit note is due."


def test_sent_fires_on_finalized_for_automatically_charged_invoices(app, client, merchant):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=merchant.merchant_id, trigger="sent"))
        db.session.commit()
    payload_event = event("invoice.finalized", collection_method="charge_automatically")
    deliver(client, merchant, payload_event)
    decide_stored(app, payload_event)
    [run] = runs(app)
    assert run.trigger == "sent"


def test_a_run_keeps_the_rule_it_was_queued_under(app, client, merchant):
    payload_event = event()
    deliver(client, merchant, payload_event)
    decide_stored(app, payload_event)
    with app.app_context():
        rule = db.session.scalar(db.select(SyncRule))
        rule.document_type = "draft_order"
        rule.write_back_to_stripe = False
        db.session.commit()
    [run] = runs(app)
    assert (run.document_type, run.write_back_to_stripe) == ("draft_invoice", True)


def test_redis_down_the_event_is_kept_and_the_requeue_pass_queues_it(app, base_config, merchant, migrated_database):
    from portal import create_app

    offline = create_app({**base_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    response = deliver(offline.test_client(), merchant, event())
    assert response.status_code == 200
    [stored] = events(app)
    assert stored.outcome == "received"
    app.config["REQUEUE_AFTER_SECONDS"] = 0
    with app.app_context():
        assert sync_run_requeue_pending() == 1
        assert [job.args for job in queue(app).get_jobs()] == [(stored.id,)]
        assert sync_run_requeue_pending() == 0  # its job is waiting now: not queued twice
        db.session.remove()
    with offline.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_run_whose_job_failed_in_redis_or_was_forgotten_is_queued_again(app, merchant):
    """The requeue pass trusts the database: a job in RQ's failed registry, or gone, is no reason to wait."""
    app.config["REQUEUE_AFTER_SECONDS"] = 0
    with app.app_context():
        failed, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, "in_failed_job", SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=False))
        forgotten, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, "in_forgotten_job", SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=False))
        q = queue(app)
        job = q.enqueue("bench.jobs.noop", job_id=f"{app.config['REDIS_KEY_PREFIX']}-sync-run-{failed.id}-attempt-1")
        job.set_status("failed")
        failed.job_id, forgotten.job_id = job.id, f"{app.config['REDIS_KEY_PREFIX']}-gone"
        db.session.commit()
        assert sync_run_requeue_pending() == 2
        assert sorted(j.args for j in q.get_jobs() if j.func_name == "portal.runs.jobs.sync_run_job") == [(failed.id,), (forgotten.id,)]
        db.session.remove()


def test_sync_again_on_a_retrying_run_queues_it_now_and_drops_the_scheduled_retry(app, merchant):
    from rq.registry import ScheduledJobRegistry

    from portal.runs.queueing import sync_run_enqueue
    from portal.runs.services import sync_run_again

    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, "in_retrying", SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=False))
        run.status, run.attempts = "retrying", 1
        db.session.commit()
        sync_run_enqueue(run, delay_seconds=6 * 3600)
        scheduled = ScheduledJobRegistry(queue=queue(app))
        assert scheduled.get_job_ids() == [run.job_id]
        sync_run_again(run)
        assert scheduled.get_job_ids() == []
        assert [j.args for j in queue(app).get_jobs()] == [(run.id,)]
        assert db.session.get(SyncRun, run.id).status == "queued"
        db.session.remove()


def seed_settings(app, merchant_id):
    with app.app_context():
        db.session.add(SyncSettings(merchant_id=merchant_id, payment_terms_number=1, customer_group_number=1,
                                    vat_zone_domestic=1, layout_number=19, default_product_number="MISC"))
        db.session.add(CustomerLink(merchant_id=merchant_id, stripe_customer_id="cus_zWcPDxNG0RaLgg", economic_customer_number=5001))
        for product, number in (("prod_38AibNyyurlGFb", "P1"), ("prod_U2EqkNk6sEr6f4", "P2")):
            db.session.add(ProductLink(merchant_id=merchant_id, stripe_product_id=product, economic_product_number=number))
        db.session.commit()


def invoice_with_customer() -> dict:
    """The example invoice as the sync fetches it: its customer expanded."""
    invoice = json.loads((DATA / "invoice_send_invoice_open.json").read_text())
    invoice["customer"] = json.loads((DATA / "customer.json").read_text())
    return invoice


@responses.activate
def test_executing_a_run_records_numbers_audit_rows_and_totals(app, merchant):
    seed_settings(app, merchant.merchant_id)
    invoice = invoice_with_customer()
    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    responses.post(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    responses.post("https://restapi.e-conomic.com/invoices/drafts", json={"draftInvoiceNumber": 314, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0})
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, invoice["id"], SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=True))
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


def committed_steps_and_run(app, run_id):
    """What another connection (a worker taking the run over, the history page) sees of the run now."""
    with db.engine.connect() as other:
        steps = [tuple(row) for row in other.execute(db.select(AuditRow.step, AuditRow.outcome).where(
            AuditRow.run_id == run_id).order_by(AuditRow.id))]
        run = other.execute(db.select(SyncRun.document_create_started, SyncRun.stripe_invoice_number,
                                      SyncRun.economic_customer_number, SyncRun.economic_draft_number).where(SyncRun.id == run_id)).one()
    return steps, tuple(run)


@responses.activate
def test_what_a_run_learnt_is_committed_before_it_calls_out_and_what_it_made_at_once(app, merchant):
    seed_settings(app, merchant.merchant_id)
    invoice = invoice_with_customer()
    seen = {}

    def create_draft(request):
        seen["at the document's create"] = committed_steps_and_run(app, seen["run_id"])
        return 201, {}, json.dumps({"draftInvoiceNumber": 314, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0})

    def write_back(request):
        seen["at the write-back"] = committed_steps_and_run(app, seen["run_id"])
        return 200, {}, json.dumps(invoice)

    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    responses.add_callback(responses.POST, f"https://api.stripe.com/v1/invoices/{invoice['id']}", callback=write_back)
    responses.add_callback(responses.POST, "https://restapi.e-conomic.com/invoices/drafts", callback=create_draft)
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, invoice["id"], SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=True))
        db.session.commit()
        seen["run_id"] = run.id
        assert sync_run_execute(run.id) == "succeeded"
    # Before the POST: every step so far and the mark that a document is being made (a retry looks for it).
    assert seen["at the document's create"] == (
        [("fetch", "found"), ("vat", "found"), ("customer", "found"), ("products", "found")], (True, "KYSTLYS1-0007", 5001, None))
    # The draft's number and its step were committed the moment e-conomic answered, before Stripe was written to.
    assert seen["at the write-back"] == (
        [("fetch", "found"), ("vat", "found"), ("customer", "found"), ("products", "found"), ("document", "created")],
        (True, "KYSTLYS1-0007", 5001, 314))


@responses.activate
def test_a_step_that_fails_is_recorded_with_the_steps_before_it(app, merchant):
    seed_settings(app, merchant.merchant_id)
    invoice = invoice_with_customer()
    responses.get(f"https://api.stripe.com/v1/invoices/{invoice['id']}", json=invoice)
    responses.post("https://restapi.e-conomic.com/invoices/drafts", status=400, json={
        "message": "Validation exception.", "errorCode": "E04300", "errors": {"layout": {"errors": [{"errorMessage": "Layout not found."}]}}})
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, invoice["id"], SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=False))
        db.session.commit()
        assert sync_run_execute(run.id) == "failed"
        steps, _ = committed_steps_and_run(app, run.id)
        assert steps == [("fetch", "found"), ("vat", "found"), ("customer", "found"), ("products", "found"), ("document", "failed")]
        failed = db.session.scalar(db.select(AuditRow).where(AuditRow.run_id == run.id, AuditRow.outcome == "failed"))
        assert "Layout not found." in failed.error


@responses.activate
def test_a_permanent_failure_ends_failed_with_the_reason_and_no_retry(app, merchant):
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, "in_missing", SyncRule(merchant_id=merchant.merchant_id, trigger="paid", document_type="draft_invoice", write_back_to_stripe=True))
        db.session.commit()
        responses.get("https://api.stripe.com/v1/invoices/in_missing", status=404, json={"error": {"message": "No such invoice: 'in_missing'", "type": "invalid_request_error"}})
        assert sync_run_execute(run.id) == "failed"
        run = db.session.get(SyncRun, run.id)
        assert run.last_error == "Stripe: No such invoice: 'in_missing'" and not run.will_retry


@responses.activate
def test_a_transient_failure_schedules_a_retry_with_backoff(app, merchant):
    with app.app_context():
        run, _ = sync_run_create(merchant.merchant_id, merchant.stripe_account_id, "in_flaky", SyncRule(merchant_id=merchant.merchant_id, trigger="paid", document_type="draft_invoice", write_back_to_stripe=True))
        db.session.commit()
        responses.get("https://api.stripe.com/v1/invoices/in_flaky", status=503, json={"error": {"message": "Stripe is down", "type": "api_error"}})
        assert sync_run_execute(run.id) == "retrying"
        run = db.session.get(SyncRun, run.id)
        assert run.will_retry and run.next_retry_at is not None and run.attempts == 1
        assert run.job_id.endswith("-attempt-2")
        from rq.registry import ScheduledJobRegistry

        assert run.job_id in ScheduledJobRegistry(queue=queue(app)).get_job_ids()


def test_event_payloads_are_emptied_after_their_retention_and_the_rows_kept(app, merchant):
    from datetime import datetime, timedelta, timezone

    from portal.runs.recovery import event_payloads_prune

    now = datetime.now(timezone.utc)
    with app.app_context():
        for n, (age_days, outcome) in enumerate(((31, "queued"), (31, "received"), (29, "ignored"), (45, "ignored"))):
            db.session.add(WebhookEvent(merchant_id=merchant.merchant_id, stripe_account_id=first_stripe_account(merchant.merchant_id), stripe_event_id=f"evt_old_{n}", type="invoice.paid",
                                        payload='{"id": "evt"}', outcome=outcome, received_at=now - timedelta(days=age_days)))
        db.session.commit()
        assert event_payloads_prune() == 2
        assert event_payloads_prune() == 0
    kept = {e.stripe_event_id: (e.payload, e.outcome) for e in events(app)}
    assert kept == {"evt_old_0": ("", "queued"), "evt_old_1": ('{"id": "evt"}', "received"),  # never before it is decided
                    "evt_old_2": ('{"id": "evt"}', "ignored"), "evt_old_3": ("", "ignored")}
