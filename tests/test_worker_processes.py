"""The real thing: webhooks into the app, real `python worker.py` processes, a real Redis, and the
local doubles of Stripe and e-conomic. Nothing lost, nothing twice."""

from __future__ import annotations

import signal
import time

import pytest

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe, make_invoice, signed_event
from portal import create_app
from launch.embedded_redis import free_port, spawn as spawn_redis
from portal.extensions import db
from portal.models import Connection, SyncRule, SyncRun, SyncSettings, WebhookEvent

from .helpers import stripe_connect
from .live import alive, descendants, start_worker, stop_process, wait_for

SECRET = "whsec_worker_processes"


@pytest.fixture
def fakes():
    with FakeStripe() as stripe_fake, FakeEconomic() as economic_fake:
        yield stripe_fake, economic_fake


def configure(app, merchant_id, stripe_fake, document_type="draft_invoice"):
    with app.app_context():
        stripe_connect(merchant_id, stripe_fake.api_key, SECRET)
        db.session.add(Connection(merchant_id=merchant_id, economic_app_secret_token="app", economic_agreement_grant_token="grant"))
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
        "RUN_LEASE_SECONDS": "3", "RUN_HEARTBEAT_SECONDS": "1", "REQUEUE_EVERY_SECONDS": "1", "REQUEUE_AFTER_SECONDS": "1",
        "HTTP_TIMEOUT_SECONDS": "5",
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
    started = time.monotonic()
    try:
        run = wait_for(lambda: (r := run_status(app, invoice["id"])) and r.status == "succeeded" and r, timeout=60,
                       what="the run to be taken back and finished")
        # Taken back within the lease (3 s) and a requeue pass (1 s) of a live worker, plus its start.
        assert time.monotonic() - started < 3 + 1 + 10
        assert len(economic_fake.documents("invoices/drafts")) == 1
        assert run.economic_draft_number == economic_fake.documents("invoices/drafts")[0]["draftInvoiceNumber"]
        assert run.attempts == 2
    finally:
        stop_process(second)


def test_a_live_run_is_never_taken_back_however_long_it_lasts(app, base_config, account, fakes, tmp_path):
    """Its worker renews the lease (every second here, lease 3 s): a second worker's requeue pass leaves it."""
    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake)
    invoice = seeded_invoice(stripe_fake, "W-0004")
    economic_fake.delay_after_create = 4.5  # e-conomic takes 4.5 s to answer (under the 5 s timeout): past the 3 s lease
    env = worker_env(base_config, stripe_fake, economic_fake, tmp_path)
    first = start_worker(env, tmp_path / "worker1.log")
    second = start_worker(env, tmp_path / "worker2.log")
    try:
        assert deliver(app.test_client(), account, invoice).status_code == 200
        run = wait_for(lambda: (r := run_status(app, invoice["id"])) and r.status == "succeeded" and r, timeout=60,
                       what="the slow run to finish")
        assert run.attempts == 1 and len(economic_fake.posts("/invoices/drafts")) == 1
    finally:
        stop_process(first)
        stop_process(second)


def test_redis_down_during_delivery_then_synced_after_it_returns(app, base_config, migrated_database, account, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake)
    invoice = seeded_invoice(stripe_fake, "W-0003")
    port = free_port()
    redis_url = f"redis://127.0.0.1:{port}/0"
    offline_app = create_app({**base_config, "REDIS_URL": redis_url})
    # Nothing listens on the port yet: Redis is down while Stripe delivers.
    assert deliver(offline_app.test_client(), account, invoice).status_code == 200
    assert run_status(app, invoice["id"]) is None  # stored, not decided: no job could be queued
    with app.app_context():
        assert db.session.scalar(db.select(WebhookEvent.outcome)) == "received"
        db.session.remove()
    redis_process, _ = spawn_redis(tmp_path / "valkey", port=port, persist=False)
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path, redis_url), tmp_path / "worker.log")
    try:
        run = wait_for(lambda: (r := run_status(app, invoice["id"])) and r.status == "succeeded" and r, timeout=60,
                       what="the requeue pass to queue the event and the worker to sync its invoice")
        assert len(economic_fake.documents("invoices/drafts")) == 1
    finally:
        stop_process(worker)
        stop_process(redis_process)
        with offline_app.app_context():
            db.session.remove()
            db.engine.dispose()


def test_an_invoice_that_differs_from_stripe_is_held_then_synced_again_or_booked_anyway(app, base_config, account, fakes, tmp_path):
    """A Danish customer exempt from VAT: held until mapped; a wrong mapping leaves a held draft, never a
    booked invoice; fixed and synced again, the held draft is replaced; or a reviewer books it anyway."""
    from portal.models import VatMapping
    from portal.runs.services import sync_run_again, sync_run_book_anyway

    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake, "booked_invoice")
    exempt = []
    for number in ("W-0101", "W-0102"):
        invoice, customer, products = make_invoice(number=number, vat_percent=0)
        invoice["customer_tax_exempt"] = "exempt"
        stripe_fake.add_invoice(invoice, customer, products)
        exempt.append(invoice)

    def finished(invoice_id):
        return wait_for(lambda: (r := run_status(app, invoice_id)) and r.status in ("succeeded", "held", "failed") and r,
                        timeout=60, what="the run to finish")

    def map_exempt_to(zone):
        with app.app_context():
            row = db.session.scalar(db.select(VatMapping).where(VatMapping.merchant_id == account.merchant_id)) \
                or VatMapping(merchant_id=account.merchant_id, treatment="exempt")
            row.vat_zone_number = zone
            db.session.add(row)
            db.session.commit()

    def act(invoice_id, action):
        with app.app_context():
            action(db.session.scalar(db.select(SyncRun).where(SyncRun.stripe_invoice_id == invoice_id)))
            db.session.remove()

    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        for invoice in exempt:
            assert deliver(app.test_client(), account, invoice).status_code == 200
        runs = [finished(invoice["id"]) for invoice in exempt]
        assert [r.status for r in runs] == ["held", "held"]
        assert "“Customer exempt from VAT”, which has no VAT mapping yet" in runs[0].held_reason
        assert runs[0].held_setting == "vat-mapping"
        assert economic_fake.documents("invoices/drafts") == [] and economic_fake.documents("invoices/booked") == []

        map_exempt_to(1)  # by mistake: the domestic zone, where e-conomic adds 25 %
        for invoice in exempt:
            act(invoice["id"], sync_run_again)
        runs = [finished(invoice["id"]) for invoice in exempt]
        assert [r.status for r in runs] == ["held", "held"]
        assert "VAT: Stripe 0.00 DKK, e-conomic 2,155.00 DKK" in runs[0].held_reason
        assert len(economic_fake.documents("invoices/drafts")) == 2 and economic_fake.documents("invoices/booked") == []

        act(exempt[0]["id"], sync_run_book_anyway)  # the reviewer accepts e-conomic's draft as it is
        map_exempt_to(4)  # the fix: domestic exempt
        act(exempt[1]["id"], sync_run_again)
        reviewed, fixed = [wait_for(lambda i=invoice: (r := run_status(app, i["id"])) and r.status == "succeeded" and r,
                                    timeout=60, what="the run to succeed") for invoice in exempt]
        booked = {b["references"]["other"]: b for b in economic_fake.documents("invoices/booked")}
        assert set(booked) == {"W-0101", "W-0102"}
        assert (booked["W-0101"]["vatAmount"], reviewed.reconciled) == (2155.0, False)
        assert (booked["W-0102"]["netAmount"], booked["W-0102"]["vatAmount"], booked["W-0102"]["grossAmount"]) == (8620.0, 0.0, 8620.0)
        assert fixed.reconciled and fixed.generation == 3
        assert economic_fake.documents("invoices/drafts") == []  # the held draft was deleted, the new one booked
    finally:
        stop_process(worker)
