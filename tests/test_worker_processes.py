"""The real thing: webhooks into the app, real `python worker.py` processes, a real Redis, and the
local doubles of Stripe and e-conomic. Nothing lost, nothing twice."""

from __future__ import annotations

import signal

import pytest

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe, make_invoice, signed_event
from portal import create_app
from portal.embedded_redis import free_port, spawn as spawn_redis
from portal.extensions import db
from portal.models import Connection, SyncRule, SyncRun, SyncSettings

from .live import alive, descendants, start_worker, stop_process, wait_for

SECRET = "whsec_worker_processes"


@pytest.fixture
def fakes():
    with FakeStripe() as stripe_fake, FakeEconomic() as economic_fake:
        yield stripe_fake, economic_fake


def configure(app, merchant_id, stripe_fake, document_type="draft_invoice"):
    with app.app_context():
        db.session.add(Connection(merchant_id=merchant_id, stripe_secret_key=stripe_fake.api_key, stripe_webhook_secret=SECRET,
                                  economic_app_secret_token="app", economic_agreement_grant_token="grant"))
        db.session.add(SyncRule(merchant_id=merchant_id, trigger="paid", document_type=document_type))
        db.session.add(SyncSettings(merchant_id=merchant_id, payment_terms_number=1, customer_group_number=1, vat_zone_domestic=1,
                                    vat_zone_eu_with_vat_id=2, vat_zone_eu_without_vat_id=2, vat_zone_outside_eu=3,
                                    layout_number=19, new_product_group_number=1, default_product_number="MISC",
                                    product_matching="direct", product_not_found="create"))
        db.session.commit()


def worker_env(config, stripe_fake, economic_fake, instance_path, redis_url=None):
    return {
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "REDIS_URL": redis_url or config["REDIS_URL"],
        "RQ_QUEUE": config["RQ_QUEUE"], "REDIS_KEY_PREFIX": config["REDIS_KEY_PREFIX"],
        "ENCRYPTION_KEYS": ",".join(config["ENCRYPTION_KEYS"]), "SECRET_KEY": "worker-test",
        "STRIPE_API_BASE": stripe_fake.url, "ECONOMIC_API_URL": economic_fake.url, "INSTANCE_PATH": str(instance_path),
        "RUN_LEASE_SECONDS": "3", "REQUEUE_EVERY_SECONDS": "1", "HTTP_TIMEOUT_SECONDS": "5",
    }


def deliver(client, account, invoice, event_type="invoice.paid", event_id=None):
    payload, signature = signed_event(event_type, invoice, SECRET, event_id)
    return client.post(f"/webhooks/stripe/{account.webhook_key}", data=payload,
                       headers={"Stripe-Signature": signature, "Content-Type": "application/json"})


def run_status(app, invoice_id):
    with app.app_context():
        run = db.session.scalar(db.select(SyncRun).where(SyncRun.stripe_invoice_id == invoice_id))
        db.session.remove()
        return run


def seeded_invoice(stripe_fake, number):
    invoice, customer, products = make_invoice(number=number)
    stripe_fake.add_invoice(invoice, customer, products)
    return invoice


def test_a_paid_invoice_becomes_one_booked_invoice_through_a_real_worker(app, base_config, account, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake, "booked_invoice")
    invoice = seeded_invoice(stripe_fake, "W-0001")
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        assert deliver(app.test_client(), account, invoice).status_code == 200
        run = wait_for(lambda: (r := run_status(app, invoice["id"])) and r.status in ("succeeded", "failed") and r,
                       what="the run to finish")
        assert run.status == "succeeded", (run.last_error, (tmp_path / "worker.log").read_text()[-3000:])
        [booked] = economic_fake.documents("invoices/booked")
        assert booked["references"]["other"] == "W-0001" and run.economic_booked_number == booked["bookedInvoiceNumber"]
        assert economic_fake.documents("invoices/drafts") == []  # booking consumed the draft
        assert run.reconciled, run.reconciliation
        assert stripe_fake.invoices[invoice["id"]]["metadata"]["economic_document_number"] == str(booked["bookedInvoiceNumber"])
    finally:
        stop_process(worker)


def test_a_worker_killed_mid_run_leaves_a_run_that_completes_with_one_document(app, base_config, account, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake)
    invoice = seeded_invoice(stripe_fake, "W-0002")
    economic_fake.delay_after_create = 30  # the draft exists in e-conomic, the worker has not heard back yet
    env = worker_env(base_config, stripe_fake, economic_fake, tmp_path)
    first = start_worker(env, tmp_path / "worker1.log")
    try:
        assert deliver(app.test_client(), account, invoice).status_code == 200
        wait_for(lambda: economic_fake.documents("invoices/drafts"), what="the draft to be created")
        scheduler = wait_for(lambda: descendants(first.pid), what="the worker's RQ scheduler process")
        stop_process(first, signal.SIGKILL)
    finally:
        stop_process(first, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in scheduler), timeout=10, what="the killed worker's scheduler to exit")
    assert run_status(app, invoice["id"]).status == "running"
    economic_fake.delay_after_create = 0
    second = start_worker(env, tmp_path / "worker2.log")
    try:
        run = wait_for(lambda: (r := run_status(app, invoice["id"])) and r.status == "succeeded" and r, timeout=60,
                       what="the run to be taken back and finished")
        assert len(economic_fake.documents("invoices/drafts")) == 1
        assert run.economic_draft_number == economic_fake.documents("invoices/drafts")[0]["draftInvoiceNumber"]
        assert run.attempts == 2
    finally:
        stop_process(second)


def test_redis_down_during_delivery_then_synced_after_it_returns(app, base_config, migrated_database, account, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake)
    invoice = seeded_invoice(stripe_fake, "W-0003")
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    offline_app = create_app({**base_config, "REDIS_URL": redis_url, "RATELIMIT_STORAGE_URI": "memory://"})
    # Nothing listens on the port yet: Redis is down while Stripe delivers.
    assert deliver(offline_app.test_client(), account, invoice).status_code == 200
    run = run_status(app, invoice["id"])
    assert run.status == "queued" and run.job_id is None
    redis_process, _ = spawn_redis(tmp_path / "valkey", port=port, persist=False)
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path, redis_url), tmp_path / "worker.log")
    try:
        run = wait_for(lambda: (r := run_status(app, invoice["id"])) and r.status == "succeeded" and r, timeout=60,
                       what="the requeue pass to queue the run and the worker to sync it")
        assert len(economic_fake.documents("invoices/drafts")) == 1
    finally:
        stop_process(worker)
        stop_process(redis_process)
        with offline_app.app_context():
            db.session.remove()
            db.engine.dispose()
