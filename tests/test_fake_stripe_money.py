"""The Stripe double's money: payments, refunds, credit notes, fees and payouts, read only through the official
`stripe` SDK, with exact amounts (DKK øre; fee rule 1.5 % rounded half up + 1.80 kr.)."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

import pytest
import requests
import stripe

from doubles.server import LocalServer
from doubles.stripe import FakeStripe, example, make_invoice, signed_event
from portal.sync.stripe_source import stripe_client

DAY = 86400
T0 = 1794000000  # 2026-11-06, in the past of the double's clock below
SECRET = "whsec_money_test"
LINES = [("Consulting hour", "7.5", 95000), ("Onboarding", "1", 149500), ("Support plan (month)", "1", 49900)]
# 7.5 × 950.00 + 1,495.00 + 499.00 = 9,119.00; 25 % VAT 2,279.75; total 11,398.75


def fee_of(amount: int) -> int:
    return int((Decimal(amount) * Decimal("1.5") / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + 180


@pytest.fixture
def fake():
    with FakeStripe() as double:
        double.clock = T0 + 60 * DAY
        yield double


@pytest.fixture
def client(fake):
    return stripe_client("sk_test_fake", fake.url, max_network_retries=0)


def open_invoice(fake: FakeStripe, number: str = "NL-0042", lines=LINES, created: int = T0, currency: str = "dkk") -> dict:
    invoice, customer, products = make_invoice(number=number, lines=lines, status="open", created=created)
    invoice["currency"] = currency
    return fake.add_invoice(invoice, customer, products)


def keys_in_stripe_order(obj: dict) -> bool:
    keys = list(obj)
    head = [k for k in ("id", "object") if k in keys]
    return keys == head + sorted(k for k in keys if k not in head)


def raw(fake: FakeStripe, path: str) -> dict:
    """An object as the double serves it (key order included), without the SDK in between."""
    answer = requests.get(fake.url + path, headers={"Authorization": "Bearer sk_test_fake"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_invoice_paid_in_full_books_a_charge_with_the_fee(fake, client):
    invoice = open_invoice(fake)
    assert invoice["total"] == 1139875
    default = client.v1.invoice_payments.list(params={"invoice": invoice["id"]}).data
    assert [(p.status, p.is_default, p.amount_requested, p.amount_paid) for p in default] == [("open", True, 1139875, None)]

    fake.pay_invoice(invoice["id"], at=T0 + 3600)

    again = client.v1.invoices.retrieve(invoice["id"])
    assert (again.status, again.amount_paid, again.amount_remaining, again.status_transitions.paid_at) == ("paid", 1139875, 0, T0 + 3600)
    [payment] = client.v1.invoice_payments.list(params={"invoice": invoice["id"]}).data
    assert (payment.status, payment.is_default, payment.amount_paid, payment.status_transitions.paid_at) == ("paid", True, 1139875, T0 + 3600)
    assert payment.payment.type == "payment_intent" and payment.payment.payment_intent.startswith("pi_")
    assert client.v1.invoice_payments.retrieve(payment.id).amount_paid == 1139875

    intent = client.v1.payment_intents.retrieve(payment.payment.payment_intent)
    assert (intent.status, intent.amount_received, intent.latest_charge[:3]) == ("succeeded", 1139875, "ch_")
    charge = client.v1.charges.retrieve(intent.latest_charge, params={"expand": ["balance_transaction"]})
    assert (charge.amount, charge.amount_captured, charge.amount_refunded, charge.refunded, charge.paid) == (1139875, 1139875, 0, False, True)
    assert (charge.currency, charge.customer, charge.payment_intent) == ("dkk", invoice["customer"], intent.id)
    txn = charge.balance_transaction
    assert fee_of(1139875) == 17098 + 180 == 17278  # 1.5 % of 11,398.75 = 170.98125
    assert (txn.type, txn.reporting_category, txn.source, txn.currency, txn.exchange_rate) == ("charge", "charge", charge.id, "dkk", None)
    assert (txn.amount, txn.fee, txn.net, txn.created) == (1139875, 17278, 1139875 - 17278, T0 + 3600)
    assert [d.to_dict() for d in txn.fee_details] == [
        {"amount": 17278, "application": None, "currency": "dkk", "description": "Stripe processing fees", "type": "stripe_fee"}]
    assert txn.available_on == (T0 + 3600) // DAY * DAY + 7 * DAY and txn.status == "available"

    # field for field as Stripe's published examples; a retrieved charge has no `refunds` since 2022-11-15
    assert set(raw(fake, f"/v1/charges/{charge.id}")) == set(example("charge")) - {"refunds"}
    assert set(raw(fake, f"/v1/balance_transactions/{txn.id}")) == set(example("balance_transaction_charge"))
    assert set(raw(fake, f"/v1/invoice_payments/{payment.id}")) == set(example("invoice_payment"))
    assert set(raw(fake, f"/v1/payment_intents/{intent.id}")) == set(example("payment_intent"))
    for path in (f"/v1/charges/{charge.id}", f"/v1/balance_transactions/{txn.id}", f"/v1/invoice_payments/{payment.id}"):
        assert keys_in_stripe_order(raw(fake, path))


def test_a_partial_payment_leaves_the_invoice_open_and_the_default_payment_follows(fake, client):
    invoice = open_invoice(fake)
    partial = fake.pay_invoice(invoice["id"], 400000, at=T0 + 3600)

    again = client.v1.invoices.retrieve(invoice["id"])
    assert (again.status, again.amount_paid, again.amount_remaining, again.status_transitions.paid_at) == ("open", 400000, 739875, None)
    payments = client.v1.invoice_payments.list(params={"invoice": invoice["id"]}).data
    assert [(p.id == partial["id"], p.is_default, p.status, p.amount_requested, p.amount_paid) for p in payments] == [
        (True, False, "paid", 400000, 400000), (False, True, "open", 739875, None)]
    charge = client.v1.charges.retrieve(client.v1.payment_intents.retrieve(partial["payment"]["payment_intent"]).latest_charge,
                                        params={"expand": ["balance_transaction"]})
    assert (charge.amount, charge.balance_transaction.fee, charge.balance_transaction.net) == (400000, 6180, 393820)
    assert [e["type"] for e in fake.events][-1] == "invoice.updated"

    fake.pay_invoice(invoice["id"], at=T0 + 7200)  # the rest, through the default payment
    again = client.v1.invoices.retrieve(invoice["id"], params={"expand": ["payments"]})
    assert (again.status, again.amount_paid, again.amount_remaining, again.status_transitions.paid_at) == ("paid", 1139875, 0, T0 + 7200)
    assert sorted((p.is_default, p.status, p.amount_paid) for p in again.payments.data) == [(False, "paid", 400000), (True, "paid", 739875)]
    fees = [t.fee for t in client.v1.balance_transactions.list(params={"type": "charge"}).auto_paging_iter()]
    assert sorted(fees) == sorted([fee_of(400000), fee_of(739875)]) == [6180, 11278]


def test_an_out_of_band_payment_has_no_charge_and_no_balance_transaction(fake, client):
    invoice = open_invoice(fake)
    fake.pay_invoice(invoice["id"], 139875, at=T0 + 3600)          # part by card
    oob = fake.pay_invoice(invoice["id"], out_of_band=True, at=T0 + 2 * DAY)  # the rest by bank transfer

    assert oob["payment"]["type"] == "payment_record" and oob["payment"]["payment_record"].startswith("pr_")
    assert set(oob["payment"]) == {"payment_record", "type"}
    again = client.v1.invoices.retrieve(invoice["id"])
    assert (again.status, again.amount_paid, again.amount_remaining, again.amount_paid_off_stripe) == ("paid", 1139875, 0, 1000000)
    assert again.status_transitions.paid_at == T0 + 2 * DAY
    payments = client.v1.invoice_payments.list(params={"invoice": invoice["id"]}).data
    assert [(p.payment.type, p.is_default, p.status, p.amount_paid) for p in payments] == [
        ("payment_record", False, "paid", 1000000), ("payment_intent", False, "paid", 139875), ("payment_intent", True, "canceled", None)]
    assert payments[2].status_transitions.canceled_at == T0 + 2 * DAY
    assert len(client.v1.charges.list().data) == 1  # the card part only
    assert [t.amount for t in client.v1.balance_transactions.list().data] == [139875]


def test_a_refund_has_its_own_balance_transaction_without_a_fee(fake, client):
    invoice = open_invoice(fake)
    payment = fake.pay_invoice(invoice["id"], at=T0)
    charge_id = fake.payment_intents[payment["payment"]["payment_intent"]]["latest_charge"]

    first = fake.refund(charge_id, 200000, reason="requested_by_customer", at=T0 + DAY)
    refund = client.v1.refunds.retrieve(first["id"], params={"expand": ["balance_transaction"]})
    assert (refund.amount, refund.charge, refund.status, refund.currency, refund.reason) == (
        200000, charge_id, "succeeded", "dkk", "requested_by_customer")
    txn = refund.balance_transaction
    assert (txn.type, txn.reporting_category, txn.amount, txn.fee, txn.net, txn.source) == ("refund", "refund", -200000, 0, -200000, first["id"])
    assert txn.fee_details == []
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (200000, False)

    fake.refund(charge_id, at=T0 + 2 * DAY)  # the rest
    refunds = client.v1.refunds.list(params={"charge": charge_id}).data
    assert [r.amount for r in refunds] == [939875, 200000]
    charge = client.v1.charges.retrieve(charge_id, params={"expand": ["balance_transaction"]})
    assert (charge.amount_refunded, charge.refunded) == (1139875, True)
    assert charge.balance_transaction.fee == fee_of(1139875)  # Stripe keeps the fee
    assert set(raw(fake, f"/v1/refunds/{first['id']}")) == set(example("refund"))
    with pytest.raises(ValueError):
        fake.refund(charge_id, 1)


def test_a_credit_note_adds_up_line_by_line_like_stripes(fake, client):
    invoice = open_invoice(fake)
    fake.pay_invoice(invoice["id"], at=T0)
    consulting, _, support = fake.lines[invoice["id"]]

    note = fake.add_credit_note(invoice["id"], [
        {"invoice_line_item": consulting["id"], "quantity": 2},            # 2 × 950.00, VAT 475.00
        {"invoice_line_item": support["id"]},                               # the whole line: 499.00, its VAT 124.75
        {"type": "custom_line_item", "description": "Goodwill", "unit_amount": 1999, "quantity": 1,
         "tax_rates": [consulting["taxes"][0]["tax_rate_details"]["tax_rate"]]},  # 19.99, VAT 4.9975 -> 5.00
    ], reason="order_change", refund_amount=302374, at=T0 + DAY)

    cn = client.v1.credit_notes.retrieve(note["id"])
    assert (cn.number, cn.status, cn.type, cn.invoice, cn.customer, cn.currency) == (
        "NL-0042-CN-01", "issued", "post_payment", invoice["id"], invoice["customer"], "dkk")
    assert (cn.subtotal, cn.subtotal_excluding_tax, cn.total_excluding_tax) == (241899, 241899, 241899)
    assert (cn.total, cn.amount, cn.pre_payment_amount, cn.post_payment_amount) == (302374, 302374, 0, 302374)
    assert (cn.effective_at, cn.created, cn.reason, cn.out_of_band_amount, cn.discount_amount) == (T0 + DAY, T0 + DAY, "order_change", None, 0)
    assert [t.to_dict() for t in cn.total_taxes] == [{
        "amount": 60475, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": consulting["taxes"][0]["tax_rate_details"]["tax_rate"]},
        "taxability_reason": "standard_rated", "taxable_amount": 241899, "type": "tax_rate_details"}]

    lines = list(client.v1.credit_notes.line_items.list(cn.id).auto_paging_iter())
    assert [(l.type, l.amount, l.quantity, l.unit_amount, l.unit_amount_decimal, [t.amount for t in l.taxes]) for l in lines] == [
        ("invoice_line_item", 190000, 2, 95000, Decimal("95000"), [47500]),
        ("invoice_line_item", 49900, 1, 49900, Decimal("49900"), [12475]),
        ("custom_line_item", 1999, 1, 1999, Decimal("1999"), [500])]
    assert [l.to_dict().get("invoice_line_item") for l in lines] == [consulting["id"], support["id"], None]
    assert "invoice_line_item" not in lines[2]
    assert [l.tax_rates[0].percentage for l in lines] == [25, 25, 25]
    assert sum(l.amount for l in lines) == cn.subtotal
    assert sum(t.amount for l in lines for t in l.taxes) == sum(t.amount for t in cn.total_taxes) == cn.total - cn.subtotal

    [refund_entry] = cn.refunds
    assert (refund_entry.amount_refunded, refund_entry.type, refund_entry.payment_record_refund) == (302374, "refund", None)
    refund = client.v1.refunds.retrieve(refund_entry.refund, params={"expand": ["balance_transaction", "charge"]})
    assert (refund.amount, refund.balance_transaction.amount, refund.charge.amount_refunded) == (302374, -302374, 302374)
    assert [c.id for c in client.v1.credit_notes.list(params={"invoice": invoice["id"]}).data] == [cn.id]
    again = client.v1.invoices.retrieve(invoice["id"])
    assert (again.status, again.amount_paid, again.post_payment_credit_notes_amount) == ("paid", 1139875, 302374)

    served = raw(fake, f"/v1/credit_notes/{cn.id}")
    assert set(served) == set(example("credit_note")) and keys_in_stripe_order(served)
    assert set(served["lines"]["data"][0]) == set(example("credit_note_line_item"))
    assert set(example("credit_note_line_item")) - set(served["lines"]["data"][2]) == {"invoice_line_item"}

    onboarding = fake.lines[invoice["id"]][1]
    second = fake.add_credit_note(invoice["id"], [{"invoice_line_item": onboarding["id"], "amount": 10001}], credit_amount=12501, at=T0 + 2 * DAY)
    assert (second["number"], second["total"], second["customer_balance_transaction"][:6]) == ("NL-0042-CN-02", 12501, "cbtxn_")
    line = second["lines"]["data"][0]
    assert (line["amount"], line["quantity"], line["unit_amount"], line["taxes"][0]["amount"]) == (10001, 1, None, 2500)  # 25.0025
    with pytest.raises(ValueError):  # post-payment parts that do not add up
        fake.add_credit_note(invoice["id"], [{"invoice_line_item": onboarding["id"], "amount": 100}], refund_amount=1)
    with pytest.raises(ValueError):  # a line credited by quantity can only be credited by quantity again
        fake.add_credit_note(invoice["id"], [{"invoice_line_item": consulting["id"], "amount": 100}])
    with pytest.raises(ValueError):  # the support line is fully credited already
        fake.add_credit_note(invoice["id"], [{"invoice_line_item": support["id"]}])


def test_a_credit_note_on_an_open_invoice_reduces_what_is_due(fake, client):
    invoice = open_invoice(fake)
    onboarding = fake.lines[invoice["id"]][1]
    note = fake.add_credit_note(invoice["id"], [{"invoice_line_item": onboarding["id"]}], at=T0 + DAY)
    assert (note["type"], note["pre_payment_amount"], note["post_payment_amount"], note["total"]) == ("pre_payment", 186875, 0, 186875)
    again = client.v1.invoices.retrieve(invoice["id"])
    assert (again.status, again.amount_due, again.amount_remaining, again.pre_payment_credit_notes_amount) == ("open", 953000, 953000, 186875)
    [default] = client.v1.invoice_payments.list(params={"invoice": invoice["id"]}).data
    assert (default.amount_requested, default.status) == (953000, "open")


def test_a_payout_of_twelve_charges_pages_and_adds_up(fake, client):
    amounts = [10000 * (n + 1) + 37 * n for n in range(12)]
    for n, amount in enumerate(amounts):
        invoice = open_invoice(fake, f"NL-1{n:03d}", [("Support plan (month)", "1", amount)], created=T0 + n * 3600)
        fake.pay_invoice(invoice["id"], at=T0 + n * 3600 + 60)
    payout = fake.make_payout(at=T0 + 8 * DAY)

    po = client.v1.payouts.retrieve(payout["id"])
    assert (po.status, po.automatic, po.method, po.type, po.currency, po.reconciliation_status) == (
        "paid", True, "standard", "bank_account", "dkk", "completed")
    assert po.destination.startswith("ba_") and po.arrival_date == (T0 + 8 * DAY) // DAY * DAY + 2 * DAY
    fake.requests.clear()
    listed = client.v1.balance_transactions.list(params={"payout": po.id, "expand": ["data.source"]})
    assert len(listed.data) == 10 and listed.has_more  # Stripe's default page
    every = list(listed.auto_paging_iter())
    pages = [r for r in fake.requests if r["path"] == "/v1/balance_transactions"]
    assert len(pages) == 2 and pages[1]["query"]["starting_after"] == every[9].id
    assert len(every) == 13 and len({t.id for t in every}) == 13
    [own] = [t for t in every if t.type == "payout"]
    charges = [t for t in every if t.type != "payout"]
    assert (own.id, own.amount, own.net, own.fee, own.source.id, own.reporting_category) == (
        po.balance_transaction, -po.amount, -po.amount, 0, po.id, "payout")
    assert len(charges) == 12 and {t.reporting_category for t in charges} == {"charge"}
    totals = [a + a * 25 // 100 for a in amounts]  # make_invoice's 25 % VAT
    assert sum(t.net for t in charges) == po.amount == sum(total - fee_of(total) for total in totals)
    assert sum(t.net for t in every) == 0
    assert all(t.source.object == "charge" and t.source.balance_transaction == t.id for t in charges)
    assert [t.created for t in every] == sorted((t.created for t in every), reverse=True)
    served = raw(fake, f"/v1/payouts/{po.id}")
    assert set(served) == set(example("payout")) and keys_in_stripe_order(served)
    assert [e["type"] for e in fake.events[-3:]] == ["payout.created", "payout.paid", "payout.reconciliation_completed"]


def test_a_payout_sweeps_refunds_and_adjustments_but_not_what_is_still_pending(fake, client):
    fake.clock = T0 + 9 * DAY
    first, second = open_invoice(fake, "NL-2001"), open_invoice(fake, "NL-2002")
    paid = fake.pay_invoice(first["id"], at=T0)
    fake.pay_invoice(second["id"], at=T0 + 10 * DAY)  # not available until day 17
    charge_id = fake.payment_intents[paid["payment"]["payment_intent"]]["latest_charge"]
    refund = fake.refund(charge_id, 100000, at=T0 + DAY)
    dispute = fake.add_adjustment(-50000, reporting_category="dispute", fee=11250, at=T0 + 2 * DAY, available_on=T0 + 2 * DAY)
    assert (dispute["type"], dispute["source"][:3], dispute["net"], dispute["fee_details"][0]["type"]) == ("adjustment", "dp_", -61250, "stripe_fee")

    payout = fake.make_payout(at=T0 + 9 * DAY)
    swept = [t for t in client.v1.balance_transactions.list(params={"payout": payout["id"], "limit": 100}).data if t.type != "payout"]
    assert sorted(t.reporting_category for t in swept) == ["charge", "dispute", "refund"]
    assert payout["amount"] == 1139875 - fee_of(1139875) - 100000 - 61250 == sum(t.net for t in swept)
    assert refund["balance_transaction"] in {t.id for t in swept}
    pending = client.v1.balance_transactions.list(params={"type": "charge"}).data[0]
    assert (pending.status, pending.created) == ("pending", T0 + 10 * DAY)

    held = fake.make_payout(at=T0 + 20 * DAY, discrepancy=-100)  # a payout that does not add up
    listed = list(client.v1.balance_transactions.list(params={"payout": held["id"]}).auto_paging_iter())
    assert sum(t.net for t in listed if t.type != "payout") == held["amount"] + 100
    with pytest.raises(ValueError):
        fake.make_payout(at=T0 + 21 * DAY)  # nothing left


def test_a_foreign_currency_charge_settles_in_dkk_at_the_exchange_rate(fake, client):
    invoice = open_invoice(fake, currency="eur")
    payment = fake.pay_invoice(invoice["id"], at=T0)
    charge = client.v1.charges.retrieve(fake.payment_intents[payment["payment"]["payment_intent"]]["latest_charge"],
                                        params={"expand": ["balance_transaction"]})
    txn = charge.balance_transaction
    assert (charge.currency, charge.amount, txn.currency, txn.exchange_rate) == ("eur", 1139875, "dkk", 7.4604)
    assert txn.amount == 8503923 and txn.fee == fee_of(8503923) == 127739 and txn.net == 8503923 - 127739
    refund = fake.refund(charge.id, 100000, at=T0 + DAY)
    assert fake.balance_transactions[refund["balance_transaction"]]["amount"] == -746040


def test_the_recorded_events_sign_and_verify(fake):
    invoice = open_invoice(fake)
    payment = fake.pay_invoice(invoice["id"], at=T0)
    charge_id = fake.payment_intents[payment["payment"]["payment_intent"]]["latest_charge"]
    fake.add_credit_note(invoice["id"], [{"invoice_line_item": fake.lines[invoice["id"]][1]["id"]}], refund_amount=186875, at=T0 + DAY)
    fake.make_payout(at=T0 + 9 * DAY)

    recorded = {e["type"]: e for e in fake.events}
    expected = {"invoice_payment.paid": "invoice_payment", "credit_note.created": "credit_note", "charge.refunded": "charge",
                "refund.created": "refund", "payout.paid": "payout", "invoice.paid": "invoice"}
    for event_type, object_name in expected.items():
        event = recorded[event_type]
        payload, header = signed_event(event["type"], event["data"]["object"], SECRET, event["id"],
                                       previous_attributes=event["data"].get("previous_attributes"))
        verified = stripe.Webhook.construct_event(payload.decode(), header, SECRET)
        assert (verified.id, verified.type, verified.data.object.object, verified.api_version) == (
            event["id"], event_type, object_name, "2026-10-28.endive")
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload.decode(), header, "whsec_other")
    assert recorded["charge.refunded"]["data"]["object"]["id"] == charge_id
    assert recorded["charge.refunded"]["data"]["object"]["amount_refunded"] == 186875
    assert recorded["charge.refunded"]["data"]["previous_attributes"] == {"amount_refunded": 0}
    assert recorded["invoice_payment.paid"]["data"]["object"]["status"] == "paid"
    assert recorded["credit_note.created"]["data"]["object"]["lines"]["object"] == "list"

    # the invoice form of before still works
    payload, header = signed_event("invoice.paid", invoice, SECRET)
    assert stripe.Webhook.construct_event(payload.decode(), header, SECRET).data.object.id == invoice["id"]


def test_deliver_posts_a_signed_credit_note_event(fake):
    from doubles.stripe import deliver

    invoice = open_invoice(fake)
    note = fake.add_credit_note(invoice["id"], at=T0)
    received = []

    def app(environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        received.append(stripe.Webhook.construct_event(body.decode(), environ["HTTP_STRIPE_SIGNATURE"], SECRET))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with LocalServer(app) as server:
        assert deliver(server.url + "/hook", "credit_note.created", note, SECRET, "evt_cn_1").status_code == 200
    assert (received[0].id, received[0].data.object.number, received[0].data.object.total) == ("evt_cn_1", "NL-0042-CN-01", 1139875)
    assert json.loads(str(received[0]))["data"]["object"]["type"] == "pre_payment"
