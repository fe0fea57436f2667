"""After the invoice, through real `python worker.py` processes: Stripe's payments, a refund and a payout become
journal entries in e-conomic once each, in any order of events, and the books they make add up."""

from __future__ import annotations

import json
import signal
from datetime import date
from decimal import Decimal

import pytest

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe, make_invoice, signed_event
from portal.extensions import db
from portal.models import JournalSettings, RunKind, SyncRule, SyncRun
from portal.runs.backfill import backfill_create

from .helpers import csrf_token, login
from .live import start_worker, stop_process, wait_for
from .test_worker_processes import SECRET, configure, worker_env

STRIPE_BALANCE, BANK, FEES = 5830, 5820, 7220


@pytest.fixture
def fakes():
    # Balance transactions are available at once, so a payout can follow the payments in a test.
    with FakeStripe(available_after_days=0) as stripe_fake, FakeEconomic() as economic_fake:
        yield stripe_fake, economic_fake


@pytest.fixture
def books(app, account, fakes):
    stripe_fake, _ = fakes
    configure(app, account.merchant_id, stripe_fake, "booked_invoice")
    with app.app_context():
        db.session.add(JournalSettings(merchant_id=account.merchant_id, payments_enabled=True, refunds_enabled=True,
                                       payouts_enabled=True, journal_number=1, stripe_balance_account=STRIPE_BALANCE,
                                       bank_account=BANK, fees_account=FEES))
        db.session.commit()
    return account


def send(app, account, event_type, obj, event_id=None):
    payload, signature = signed_event(event_type, obj, SECRET, event_id)
    response = app.test_client().post(f"/webhooks/stripe/{account.webhook_key}", data=payload,
                                      headers={"Stripe-Signature": signature, "Content-Type": "application/json"})
    assert response.status_code == 200, response.data


def runs(app, kind=None):
    with app.app_context():
        query = db.select(SyncRun).order_by(SyncRun.id)
        if kind is not None:
            query = query.where(SyncRun.kind == kind)
        found = list(db.session.scalars(query))
        db.session.remove()
    return found


def all_finished(app, count, kind=None):
    found = runs(app, kind)
    return len(found) == count and all(run.status in ("succeeded", "failed", "held", "skipped") for run in found) and found


def paid_invoice(stripe_fake, number, lines=None):
    invoice, customer, products = make_invoice(number=number, lines=lines, status="open")
    stripe_fake.add_invoice(invoice, customer, products)
    payment = stripe_fake.pay_invoice(invoice["id"])
    return stripe_fake.invoices[invoice["id"]], payment


def charge_of(stripe_fake, payment):
    return stripe_fake.payment_intents[payment["payment"]["payment_intent"]]["latest_charge"]


def last_event(stripe_fake, event_type):
    return [event for event in stripe_fake.events if event["type"] == event_type][-1]["data"]["object"]


def test_payments_a_refund_and_a_payout_are_entered_once_and_the_stripe_balance_clears(app, base_config, books, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    log = tmp_path / "worker.log"
    try:
        paid = [paid_invoice(stripe_fake, f"JE-000{n}") for n in (1, 2, 3)]
        for invoice, _ in paid:
            send(app, books, "invoice.paid", invoice)
        send(app, books, "invoice.paid", paid[0][0])  # Stripe delivers one twice
        assert wait_for(lambda: all_finished(app, 6), timeout=60, what="3 invoices and their 3 payments"), log.read_text()[-3000:]
        assert {(run.kind, run.status) for run in runs(app)} == {("invoice", "succeeded"), ("payment", "succeeded")}

        # A refund of 100.00 DKK of the first invoice's charge, and then Stripe's payout of all of it.
        refund = stripe_fake.refund(charge_of(stripe_fake, paid[0][1]), 10000)
        send(app, books, "refund.created", refund)
        send(app, books, "charge.refunded", last_event(stripe_fake, "charge.refunded"))  # the same refund, told twice
        assert wait_for(lambda: all_finished(app, 1, RunKind.REFUND), timeout=30, what="the refund"), log.read_text()[-3000:]
        payout = stripe_fake.make_payout()
        send(app, books, "payout.paid", payout)
        send(app, books, "payout.paid", payout)
        [payout_run] = wait_for(lambda: all_finished(app, 1, RunKind.PAYOUT), timeout=30, what="the payout")
    finally:
        stop_process(worker)
    assert [run.status for run in runs(app)] == ["succeeded"] * 8, [(r.kind, r.status, r.last_error, r.held_reason) for r in runs(app)]

    vouchers = economic_fake.vouchers(1)
    assert len(vouchers) == 5  # 3 payments, 1 refund, 1 payout: each once, whatever was delivered twice
    economic_fake.book_journal(1)
    remainders = sorted(Decimal(str(document["remainder"])) for document in economic_fake.documents("invoices/booked"))
    gross = Decimal(paid[0][0]["total"]) / 100
    assert remainders == [Decimal("0.00"), Decimal("0.00"), Decimal("100.00")]  # the refund reopened 100.00
    fees = sum(Decimal(txn["fee"]) for txn in stripe_fake.balance_transactions.values() if txn["type"] == "charge") / 100
    assert economic_fake.account_balance(STRIPE_BALANCE) == Decimal("0.00")
    assert economic_fake.account_balance(BANK) == Decimal(payout["amount"]) / 100
    assert economic_fake.account_balance(FEES) == fees
    assert Decimal(payout["amount"]) / 100 == 3 * gross - Decimal("100.00") - fees  # what the payout view adds up
    assert payout_run.economic_voucher_number is not None and payout_run.total_minor == payout["amount"]
    transactions = json.loads(payout_run.totals)["transactions"]
    linked = sorted(t["invoice_number"] for t in transactions if t["type"] == "charge")
    assert linked == ["JE-0001", "JE-0002", "JE-0003"]  # each charge linked to its invoice, for the Payouts view


def test_a_payment_before_its_invoice_is_booked_waits_and_follows_the_booking(app, base_config, books, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    invoice, payment = paid_invoice(stripe_fake, "JE-0100")
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        send(app, books, "invoice_payment.paid", payment)  # Stripe's payment event first
        [waiting] = wait_for(lambda: (found := runs(app, RunKind.PAYMENT)) and found[0].status == "waiting" and found,
                             timeout=30, what="the payment to wait")
        assert waiting.waiting_for.startswith("Waits for invoice JE-0100 to be booked in e-conomic")
        assert economic_fake.vouchers(1) == []
        send(app, books, "invoice.paid", invoice)  # then the invoice: booked, and the payment follows
        wait_for(lambda: all_finished(app, 2), timeout=60, what="the invoice and its payment")
    finally:
        stop_process(worker)
    [invoice_run], [payment_run] = runs(app, RunKind.INVOICE), runs(app, RunKind.PAYMENT)
    assert (invoice_run.kind, invoice_run.status, payment_run.kind, payment_run.status) == ("invoice", "succeeded", "payment", "succeeded")
    [voucher] = economic_fake.vouchers(1)
    [entry] = voucher["entries"]["customerPayments"]
    assert entry["customerInvoice"] == invoice_run.economic_booked_number
    assert Decimal(str(entry["amount"])) == -Decimal(invoice["total"]) / 100


@pytest.mark.parametrize("kind", [RunKind.PAYMENT, RunKind.REFUND, RunKind.PAYOUT])
def test_a_worker_killed_while_entering_leaves_one_voucher(app, base_config, books, fakes, tmp_path, kind):
    """e-conomic makes the voucher but its answer is lost and the worker is SIGKILLed meanwhile: the run is taken
    back by another worker, which finds the voucher instead of posting a second."""
    stripe_fake, economic_fake = fakes
    env = {**worker_env(base_config, stripe_fake, economic_fake, tmp_path), "RETRY_BASE_SECONDS": "1"}
    worker = start_worker(env, tmp_path / "worker.log")
    try:
        invoice, payment = paid_invoice(stripe_fake, "JE-0200")
        vouchers_before = 0
        if kind != RunKind.PAYMENT:
            send(app, books, "invoice.paid", invoice)
            wait_for(lambda: all_finished(app, 2), timeout=60, what="the invoice and its payment")
            vouchers_before = 1
        economic_fake.drop_after_creating.add("journals/1/vouchers")  # e-conomic makes the voucher; the answer is lost
        economic_fake.latency = 1.5
        if kind == RunKind.PAYMENT:
            send(app, books, "invoice.paid", invoice)
        elif kind == RunKind.REFUND:
            send(app, books, "refund.created", stripe_fake.refund(charge_of(stripe_fake, payment), 5000))
        else:
            send(app, books, "payout.paid", stripe_fake.make_payout())
        wait_for(lambda: len(economic_fake.vouchers(1)) == vouchers_before + 1, timeout=30, what="the voucher to be made")
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        economic_fake.latency = 0
        worker = start_worker(env, tmp_path / "worker-2.log")
        [entry_run] = wait_for(lambda: all_finished(app, 1, kind), timeout=90, what="the entry, taken back")
    finally:
        stop_process(worker)
    assert entry_run.status == "succeeded", entry_run.last_error
    assert entry_run.attempts >= 2
    assert len(economic_fake.vouchers(1)) == vouchers_before + 1  # not a second voucher for it


def test_a_stripe_credit_note_becomes_one_booked_negative_invoice_after_its_invoice(app, base_config, books, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    with app.app_context():
        db.session.scalar(db.select(JournalSettings)).credit_notes_enabled = True
        db.session.commit()
    invoice, _ = paid_invoice(stripe_fake, "JE-0300", lines=[("Consulting hour", "4", 95000), ("Workshop", "1", 149500)])
    first_line = invoice["lines"]["data"][0]["id"]
    credit_note = stripe_fake.add_credit_note(invoice["id"], lines=[{"type": "invoice_line_item", "invoice_line_item": first_line,
                                                                     "quantity": 1}], reason="order_change",
                                              credit_amount=None)
    assert credit_note["total"] == 118750  # Stripe's credit note total is positive: 1,187.50
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        send(app, books, "invoice.paid", invoice)
        wait_for(lambda: all_finished(app, 1, RunKind.INVOICE), timeout=60, what="the invoice")
        send(app, books, "credit_note.created", credit_note)  # told twice
        [credit_run] = wait_for(lambda: all_finished(app, 1, RunKind.CREDIT_NOTE), timeout=60, what="the credit note")
    finally:
        stop_process(worker)
    assert credit_run.status == "succeeded", (credit_run.last_error, credit_run.held_reason)
    [invoice_run] = runs(app, RunKind.INVOICE)
    booked = {document["bookedInvoiceNumber"]: document for document in economic_fake.documents("invoices/booked")}
    original, credit = booked[invoice_run.economic_booked_number], booked[credit_run.economic_booked_number]
    # One consulting hour of 950.00 with 25 % VAT, credited: −950.00 net, −237.50 VAT, −1,187.50 gross.
    assert (Decimal(str(credit["netAmount"])), Decimal(str(credit["vatAmount"])), Decimal(str(credit["grossAmount"]))) == \
        (Decimal("-950.00"), Decimal("-237.50"), Decimal("-1187.50"))
    assert credit["references"]["other"] == credit_note["number"]
    assert invoice["number"] in credit["notes"]["heading"]
    assert Decimal(str(original["grossAmount"])) == Decimal(invoice["total"]) / 100


def test_a_credit_note_for_an_invoice_never_synced_is_held_with_what_to_do(app, base_config, books, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    with app.app_context():
        db.session.scalar(db.select(JournalSettings)).credit_notes_enabled = True
        db.session.commit()
    invoice, _ = paid_invoice(stripe_fake, "JE-0400")
    credit_note = stripe_fake.add_credit_note(invoice["id"])
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        send(app, books, "credit_note.created", credit_note)
        [credit_run] = wait_for(lambda: all_finished(app, 1, RunKind.CREDIT_NOTE), timeout=30, what="the credit note")
    finally:
        stop_process(worker)
    assert credit_run.status == "held"
    assert credit_run.held_reason.startswith(f"This credit note is for invoice {invoice['id']}, which was never synced")
    assert economic_fake.documents("invoices/booked") == [] and economic_fake.documents("invoices/drafts") == []


def test_a_backfill_enters_the_ranges_payments_and_payouts_too(app, base_config, books, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    for n in (1, 2):
        paid_invoice(stripe_fake, f"JE-050{n}")
    payout = stripe_fake.make_payout()  # all of it happened before the webhook was set up: no events
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        with app.app_context():
            today = date.today()
            backfill_create(books.merchant_id, books.stripe_account_id, today.replace(day=1) if today.day > 1 else today, today)
            db.session.remove()
        wait_for(lambda: all_finished(app, 5), timeout=60, what="2 invoices, 2 payments and the payout")
    finally:
        stop_process(worker)
    assert sorted((run.kind, run.status) for run in runs(app)) == [
        ("invoice", "succeeded"), ("invoice", "succeeded"), ("payment", "succeeded"), ("payment", "succeeded"),
        ("payout", "succeeded")]
    [payout_run] = runs(app, RunKind.PAYOUT)
    assert payout_run.stripe_object_id == payout["id"] and payout_run.backfill_id is not None
    assert len(economic_fake.vouchers(1)) == 3


def test_an_invoice_voided_after_booking_is_offered_its_credit_note_and_gets_exactly_one(app, base_config, books, fakes, tmp_path):
    stripe_fake, economic_fake = fakes
    with app.app_context():
        db.session.scalar(db.select(SyncRule)).trigger = "sent"
        db.session.commit()
    invoice, customer, products = make_invoice(number="JE-0600", status="open")
    stripe_fake.add_invoice(invoice, customer, products)
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        send(app, books, "invoice.sent", invoice)
        [booked_run] = wait_for(lambda: all_finished(app, 1, RunKind.INVOICE), timeout=60, what="the booked invoice")
        voided = stripe_fake.invoices[invoice["id"]]
        voided["status"] = "void"
        voided["status_transitions"]["voided_at"] = voided["created"] + 3600
        send(app, books, "invoice.voided", voided)
        wait_for(lambda: runs(app, RunKind.INVOICE)[0].needs_credit_note, timeout=30, what="credit note due")

        client = app.test_client()
        login(client, books.email)
        page = client.get(f"/history/invoices/{invoice['id']}").get_data(as_text=True)
        assert "Make the credit note in e-conomic" in page
        token = csrf_token(client, f"/history/invoices/{invoice['id']}")
        for _ in range(2):  # pressed twice: one credit note
            client.post(f"/history/runs/{booked_run.id}/credit-note", data={"csrf_token": token})
        [reversal] = wait_for(lambda: all_finished(app, 1, RunKind.CREDIT_NOTE), timeout=60, what="the credit note")
    finally:
        stop_process(worker)
    assert reversal.status == "succeeded", (reversal.last_error, reversal.held_reason)
    booked = {document["bookedInvoiceNumber"]: document for document in economic_fake.documents("invoices/booked")}
    original, credit = booked[booked_run.economic_booked_number], booked[reversal.economic_booked_number]
    for field in ("netAmount", "vatAmount", "grossAmount"):
        assert Decimal(str(credit[field])) == -Decimal(str(original[field])), field
    assert runs(app, RunKind.INVOICE)[0].needs_credit_note is False
    assert "JE-0600" in credit["notes"]["heading"]


@pytest.mark.parametrize("credited", ["one line", "all of it"])
def test_a_refund_with_its_credit_note_leaves_the_customer_owing_nothing(app, base_config, books, fakes, tmp_path, credited):
    """A paid invoice partly (or wholly) refunded through a Stripe credit note: the credit note is a negative
    invoice, the refund a payment back out of the Stripe balance; after booking, the customer owes nothing
    and the Stripe balance holds exactly what was kept."""
    stripe_fake, economic_fake = fakes
    with app.app_context():
        db.session.scalar(db.select(JournalSettings)).credit_notes_enabled = True
        db.session.commit()
    invoice, _ = paid_invoice(stripe_fake, "JE-0700", lines=[("Consulting hour", "4", 95000), ("Workshop", "1", 149500)])
    if credited == "one line":
        lines = [{"type": "invoice_line_item", "invoice_line_item": invoice["lines"]["data"][1]["id"], "quantity": 1}]
        refund = 149500 * 125 // 100  # the workshop and its 25 % VAT: 1,868.75
    else:
        lines, refund = None, invoice["total"]
    credit_note = stripe_fake.add_credit_note(invoice["id"], lines=lines, refund_amount=refund)
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path), tmp_path / "worker.log")
    try:
        send(app, books, "invoice.paid", invoice)
        wait_for(lambda: all_finished(app, 2), timeout=60, what="the invoice and its payment")
        send(app, books, "credit_note.created", credit_note)
        send(app, books, "refund.created", last_event(stripe_fake, "refund.created"))
        wait_for(lambda: all_finished(app, 4), timeout=60, what="the credit note and the refund")
    finally:
        stop_process(worker)
    assert sorted((run.kind, run.status) for run in runs(app)) == [
        ("credit_note", "succeeded"), ("invoice", "succeeded"), ("payment", "succeeded"), ("refund", "succeeded")]
    economic_fake.book_journal(1)
    remainders = sum(Decimal(str(document["remainder"])) for document in economic_fake.documents("invoices/booked"))
    assert remainders == Decimal("0.00")  # the invoice reopened by the refund, closed by the credit note
    kept = Decimal(invoice["total"] - refund) / 100
    assert economic_fake.account_balance(STRIPE_BALANCE) == kept
