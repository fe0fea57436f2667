"""A fake of the Stripe API for the official `stripe` SDK, and signed webhook deliveries.

    with FakeStripe() as fake:
        invoice = fake.add_invoice(*make_invoice(number="DEMO-0001", status="open"))
        payment = fake.pay_invoice(invoice["id"])                 # InvoicePayment, PaymentIntent, Charge, fee
        client = stripe.StripeClient("sk_test_fake", base_addresses={"api": fake.url})
        deliver(portal_webhook_url, "invoice.paid", invoice, "whsec_…")

Objects are shaped like Stripe API 2026-10-28.endive (examples in doubles/data/, sources in its README). A
retrieved invoice embeds its first 10 lines, like Stripe; the rest are paged at /v1/invoices/{id}/lines.

Money (payments, refunds, credit notes, payouts), as Stripe models it since API 2025-03-31.basil:

- An invoice has no `charge`/`payment_intent`; its payments are InvoicePayments (`inpay_…`,
  `GET /v1/invoice_payments?invoice=in_…`). Adding an *open* invoice creates its default payment
  (`is_default: true`, `status: open`, a PaymentIntent in `requires_payment_method`) as finalizing does.
  `pay_invoice()` pays the rest through it; a partial payment is a separate PaymentIntent attached to the
  invoice; an out-of-band payment is an InvoicePayment of `payment.type: "payment_record"` (`pr_…`) with no
  charge and no balance transaction. When other payments settle the invoice the default one is canceled.
  An invoice stored already `paid` has no payment objects.
- A payment on Stripe is a PaymentIntent (`pi_…`) whose `latest_charge` is a Charge (`ch_…`); the charge's
  `balance_transaction` (`txn_…`, `type`/`reporting_category` "charge") holds the fee and the net in the
  account's settlement currency (`settlement_currency`, DKK by default), with `exchange_rate` set when the
  invoice's currency differs (rates in `exchange_rates`, 1 unit of the charge currency in settlement currency).
- Fees (`fee_rules`): percent of the settled amount, rounded half up, plus a fixed amount, per settlement
  currency; by default DKK 1.5 % + 1.80 kr. and EUR 1.5 % + €0.25. One `fee_details` entry,
  `type: "stripe_fee"`, `description: "Stripe processing fees"`. Pass `fee=` to `pay_invoice` for an exact fee.
- Refunds (`re_…`) have their own balance transaction (`type`/`reporting_category` "refund", negative,
  fee 0: Stripe keeps the original fee and charges none here). Charge `amount_refunded`/`refunded` follow.
- Credit notes (`cn_…`, number = invoice number + "-CN-01", -02, …) credit invoice lines by quantity or
  amount, or custom lines; tax per line, from the invoice line's tax rates, rounded half up (a fully
  credited line credits exactly the line's tax). On an open invoice the credit first reduces
  `amount_remaining`/`amount_due` (pre-payment); the rest is post-payment and must equal
  refund_amount + credit_amount + out_of_band_amount (all of it goes to the customer balance if none given).
- Balance transactions become available `available_after_days` after creation (at 00:00 UTC).
  `make_payout()` sweeps every available, not yet paid-out transaction of a currency into an automatic
  payout (`po_…`, status paid) whose own `txn_…` (`type` "payout") is negative; `GET
  /v1/balance_transactions?payout=po_…` lists them all, the payout's own transaction included, newest first,
  10 a page by default. `add_adjustment()` adds an `adjustment` (dispute, fee refund, …).
- Helpers record the webhook events Stripe would send in `fake.events` (envelopes with `data.object` as it
  was then); sign and deliver them with `signed_event`/`deliver`.

Webhook endpoints (`we_…`, in `fake.webhook_endpoints`): `POST /v1/webhook_endpoints`, `GET/POST/DELETE
/v1/webhook_endpoints/{id}`. The signing `secret` (`whsec_…`) is in the create answer only. Refused like
Stripe: a missing `url` or `enabled_events` (`parameter_missing`), an event name Stripe does not know, a URL
that is not http(s), and a URL Stripe cannot reach (localhost, a loopback or private address); plain http is
accepted for a test-mode key only.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from werkzeug.wrappers import Request, Response

from .server import ServedDouble

DATA = Path(__file__).parent / "data"
API_VERSION = "2026-10-28.endive"
ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}


def example(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def _form_to_nested(form) -> dict:
    """Stripe's form encoding (metadata[key]=value) to a dict."""
    result: dict[str, Any] = {}
    for key, value in form.items(multi=False):
        if "[" in key:
            head, rest = key.split("[", 1)
            result.setdefault(head, {})[rest.rstrip("]")] = value
        else:
            result[key] = value
    return result


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _exponent(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL else 2


def _stripe_order(value: Any, key: str | None = None) -> Any:
    """Keys as Stripe answers: `id`, `object`, then alphabetical, at every level (metadata left alone)."""
    if isinstance(value, list):
        return [_stripe_order(item) for item in value]
    if not isinstance(value, dict) or key == "metadata":
        return value
    head = [k for k in ("id", "object") if k in value]
    return {k: _stripe_order(value[k], k) for k in head + sorted(k for k in value if k not in head)}


@dataclass(frozen=True)
class FeeRule:
    """Stripe's processing fee on a charge: `percent` of the settled amount, rounded half up, + `fixed` (minor units)."""

    percent: Decimal
    fixed: int

    def fee(self, settled_amount: int) -> int:
        return _half_up(Decimal(settled_amount) * Decimal(self.percent) / 100) + self.fixed


DEFAULT_FEE_RULES = {"dkk": FeeRule(Decimal("1.5"), 180), "eur": FeeRule(Decimal("1.5"), 25)}
# Test values (1 unit of the key currency in DKK), not market rates.
DEFAULT_EXCHANGE_RATES = {"eur": Decimal("7.4604"), "usd": Decimal("6.9012"), "sek": Decimal("0.6821"),
                          "nok": Decimal("0.6402"), "gbp": Decimal("8.6240"), "jpy": Decimal("0.0461")}
_ALPHABET = string.ascii_letters + string.digits


class FakeStripe(ServedDouble):
    # What the account holds between runs (make demo, ServedDouble.keep_data_in): everything the API made or
    # changed, and the account's identity. Not the requests seen.
    KEPT = ("account", "restricted_keys", "invoices", "lines", "customers", "products", "tax_rates", "bank_account",
            "invoice_payments", "payment_intents", "charges", "refunds", "credit_notes", "credit_note_lines",
            "line_credit_modes", "balance_transactions", "payouts", "paid_out_in", "events", "webhook_endpoints")

    def __init__(self, api_key: str = "sk_test_fake", *, settlement_currency: str = "dkk",
                 fee_rules: dict[str, FeeRule] | None = None, exchange_rates: dict[str, Any] | None = None,
                 available_after_days: int = 7, payout_arrival_days: int = 2, account_name: str = "Demo Shop ApS",
                 country: str = "DK", restricted_keys: dict[str, set[str]] | None = None) -> None:
        self.api_key = api_key
        # The account behind the key, as GET /v1/account shows it.
        self.account = {"id": self._id("acct"), "object": "account", "business_type": "company",
                        "business_profile": {"name": account_name, "url": None}, "charges_enabled": True,
                        "country": country, "default_currency": settlement_currency, "details_submitted": True,
                        "email": None, "payouts_enabled": True, "settings": {"dashboard": {"display_name": account_name,
                                                                                          "timezone": "Europe/Copenhagen"}},
                        "type": "standard"}
        # Restricted keys (rk_…) of this account and the permissions each was given ("invoice_read", …): a
        # request needing another answers 403 as Stripe does.
        self.restricted_keys = dict(restricted_keys or {})
        self.lock = threading.RLock()
        self.invoices: dict[str, dict] = {}
        self.lines: dict[str, list[dict]] = {}
        self.customers: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        tax_rate = example("tax_rate")
        self.tax_rates: dict[str, dict] = {tax_rate["id"]: tax_rate}
        self.requests: list[dict] = []
        # money
        self.settlement_currency = settlement_currency
        self.fee_rules = dict(DEFAULT_FEE_RULES if fee_rules is None else fee_rules)
        self.exchange_rates = {k: Decimal(str(v)) for k, v in (exchange_rates or DEFAULT_EXCHANGE_RATES).items()}
        self.available_after_days = available_after_days
        self.payout_arrival_days = payout_arrival_days
        self.bank_account = self._id("ba")
        self.clock: int | None = None  # "now" for a balance transaction's pending/available status; None: real time
        self.invoice_payments: dict[str, dict] = {}
        self.payment_intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.credit_notes: dict[str, dict] = {}
        self.credit_note_lines: dict[str, list[dict]] = {}
        self.line_credit_modes: dict[str, str] = {}  # il id -> "quantity" | "amount"
        self.balance_transactions: dict[str, dict] = {}
        self.payouts: dict[str, dict] = {}
        self.paid_out_in: dict[str, str] = {}  # txn id -> po id
        self.events: list[dict] = []
        self.webhook_endpoints: dict[str, dict] = {}  # we id -> the endpoint, its `secret` included
        self.serve(self.wsgi)

    # -- seeding ----------------------------------------------------------------------------------------

    def add_customer(self, customer: dict) -> dict:
        with self.lock:
            self.customers[customer["id"]] = copy.deepcopy(customer)
        return customer

    def add_product(self, product: dict) -> dict:
        with self.lock:
            self.products[product["id"]] = copy.deepcopy(product)
        return product

    def add_tax_rate(self, tax_rate: dict) -> dict:
        with self.lock:
            self.tax_rates[tax_rate["id"]] = copy.deepcopy(tax_rate)
        return tax_rate

    def add_invoice(self, invoice: dict, customer: dict | None = None, products: list[dict] = ()) -> dict:
        """Store an invoice (and its customer and products); its lines may be any number. An open invoice
        gets its default InvoicePayment, as finalizing gives it at Stripe."""
        with self.lock:
            invoice = copy.deepcopy(invoice)
            self.lines[invoice["id"]] = invoice["lines"]["data"]
            if customer:
                self.add_customer(customer)
            for product in products:
                self.add_product(product)
            self.invoices[invoice["id"]] = invoice
            if invoice.get("status") == "open" and self._default_payment(invoice["id"]) is None:
                remaining = invoice.get("amount_remaining", invoice.get("amount_due", 0)) or 0
                if remaining > 0:
                    created = (invoice.get("status_transitions") or {}).get("finalized_at") or invoice.get("created") or self.now()
                    intent = self._new_payment_intent(invoice, remaining, created)
                    self._new_invoice_payment(invoice, remaining, created, {"payment_intent": intent["id"], "type": "payment_intent"},
                                              is_default=True)
        return invoice

    # -- money: helpers for tests -------------------------------------------------------------------------

    def pay_invoice(self, invoice_id: str, amount: int | None = None, out_of_band: bool = False, at: int | None = None, *,
                    fee: int | None = None) -> dict:
        """Pay `amount` (default: all that remains) of an open invoice at `at` (Unix seconds; default now).

        On Stripe (default): a PaymentIntent, its Charge and the charge's BalanceTransaction with the fee
        (`fee` overrides the rule). The whole remainder goes through the default payment, a part through a
        new PaymentIntent attached to the invoice. `out_of_band=True`: an InvoicePayment of type
        `payment_record`, nothing else. Returns the InvoicePayment; the invoice's `amount_paid`,
        `amount_remaining`, `status` (paid when nothing remains) and `status_transitions.paid_at` follow.
        """
        with self.lock:
            invoice = self.invoices[invoice_id]
            if invoice.get("status") != "open":
                raise ValueError(f"invoice {invoice_id} is {invoice.get('status')}, only an open invoice can be paid")
            remaining = invoice["amount_remaining"]
            amount = remaining if amount is None else int(amount)
            if not 0 < amount <= remaining:
                raise ValueError(f"amount {amount} must be above 0 and at most the {remaining} that remains")
            at = self._at(at)
            default = self._default_payment(invoice_id)
            charge = intent = None
            if out_of_band:
                payment = self._new_invoice_payment(invoice, amount, at, {"payment_record": self._id("pr"), "type": "payment_record"})
            else:
                if default is not None and default["status"] == "open" and amount == remaining:
                    payment = default
                    intent = self.payment_intents[default["payment"]["payment_intent"]]
                    intent["amount"] = amount
                else:
                    intent = self._new_payment_intent(invoice, amount, at)
                    payment = self._new_invoice_payment(invoice, amount, at, {"payment_intent": intent["id"], "type": "payment_intent"})
                charge = self._succeed(intent, invoice, at, fee)
            payment.update(amount_paid=amount, status="paid", status_transitions={"canceled_at": None, "paid_at": at})
            previous = {key: invoice.get(key) for key in ("amount_paid", "amount_remaining", "status")}
            invoice["amount_paid"] = invoice.get("amount_paid", 0) + amount
            invoice["amount_remaining"] = remaining - amount
            if out_of_band and "amount_paid_off_stripe" in invoice:
                invoice["amount_paid_off_stripe"] = (invoice["amount_paid_off_stripe"] or 0) + amount
            if invoice["amount_remaining"] == 0:
                self._mark_paid(invoice, at)
            if default is not None and default is not payment:
                self._sync_default(default, invoice, at)
            if charge is not None:
                self._emit("charge.succeeded", charge, at)
                self._emit("payment_intent.succeeded", intent, at)
            self._emit("invoice_payment.paid", payment, at)
            if invoice["status"] == "paid":
                if charge is not None:
                    self._emit("invoice.payment_succeeded", self._invoice_view(invoice, []), at)
                self._emit("invoice.paid", self._invoice_view(invoice, []), at)
            else:
                self._emit("invoice.updated", self._invoice_view(invoice, []), at,
                           previous_attributes={k: v for k, v in previous.items() if k != "status"})
            return self._render(payment)

    def refund(self, charge_id: str, amount: int | None = None, *, reason: str | None = None, at: int | None = None) -> dict:
        """Refund `amount` (default: what is not yet refunded) of a charge: a Refund with its own negative
        BalanceTransaction (fee 0); the charge's `amount_refunded` and `refunded` follow."""
        with self.lock:
            charge = self.charges[charge_id]
            left = charge["amount"] - charge["amount_refunded"]
            amount = left if amount is None else int(amount)
            if not 0 < amount <= left:
                raise ValueError(f"refund {amount} must be above 0 and at most the {left} not yet refunded")
            at = self._at(at)
            refund_id = self._id("re")
            original = self.balance_transactions[charge["balance_transaction"]]
            settled = amount  # in the charge's settlement currency, at the charge's rate
            if original["exchange_rate"] is not None:
                settled = _half_up(Decimal(amount) * Decimal(str(original["exchange_rate"])) *
                                   Decimal(10) ** (_exponent(original["currency"]) - _exponent(charge["currency"])))
            txn = self._new_balance_transaction(-settled, original["currency"], "refund", "refund", refund_id, at,
                                                description=f"REFUND FOR CHARGE ({charge['description']})",
                                                exchange_rate=original["exchange_rate"], available_on=at)
            refund = _stripe_order({
                "id": refund_id, "object": "refund", "amount": amount, "balance_transaction": txn["id"], "charge": charge_id,
                "created": at, "currency": charge["currency"], "customer": charge["customer"], "customer_account": None,
                "destination_details": {"card": {"reference": None, "reference_status": "pending", "reference_type": None,
                                                 "type": "refund"}, "type": "card"},
                "metadata": {}, "payment_intent": charge["payment_intent"], "payment_method": charge["payment_method"],
                "reason": reason, "receipt_number": None, "source_transfer_reversal": None, "status": "succeeded",
                "transfer_reversal": None,
            })
            self.refunds[refund_id] = refund
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            self._emit("refund.created", refund, at)
            self._emit("charge.refunded", charge, at, previous_attributes={"amount_refunded": charge["amount_refunded"] - amount})
            return copy.deepcopy(refund)

    def add_credit_note(self, invoice_id: str, lines: list[dict] | None = None, *, reason: str | None = None,
                        refund_amount: int | None = None, credit_amount: int | None = None,
                        out_of_band_amount: int | None = None, memo: str | None = None, at: int | None = None) -> dict:
        """Issue a credit note against an invoice, as `POST /v1/credit_notes` would.

        `lines` as Stripe's create parameters: `{"invoice_line_item": "il_…", "quantity": 2}`,
        `{"invoice_line_item": "il_…", "amount": 50000}`, `{"invoice_line_item": "il_…"}` (the whole line) or
        `{"type": "custom_line_item", "description": …, "unit_amount": …, "quantity": 1, "tax_rates": ["txr_…"]}`;
        None credits every line in full. Tax per line from the invoice line's tax rates, rounded half up.
        `reason`: duplicate, fraudulent, order_change, product_unsatisfactory. The post-payment part must
        equal refund_amount (refunded from the invoice's charges, newest first) + credit_amount (customer
        balance) + out_of_band_amount; with none of them given it all goes to the customer balance.
        """
        with self.lock:
            invoice = self.invoices[invoice_id]
            if not invoice.get("number"):
                raise ValueError("a draft invoice has no number and cannot be credited")
            at = self._at(at)
            cn_id = self._id("cn")
            invoice_lines = {line["id"]: line for line in self.lines[invoice_id]}
            specs = lines if lines is not None else [{"invoice_line_item": line["id"]} for line in self.lines[invoice_id]]
            built = [self._credit_note_line(spec, invoice_lines, invoice, whole_if_unsaid=lines is None) for spec in specs]
            cn_lines = [line for line, _ in built if line is not None]
            if not cn_lines:
                raise ValueError("a credit note needs at least one line")
            taxes = [tax for line in cn_lines for tax in line["taxes"]]
            exclusive = sum(t["amount"] for t in taxes if t["tax_behavior"] == "exclusive")
            inclusive = sum(t["amount"] for t in taxes if t["tax_behavior"] == "inclusive")
            subtotal = sum(line["amount"] for line in cn_lines)
            discount = sum(line["discount_amount"] for line in cn_lines)
            total = subtotal - discount + exclusive
            credited = sum(cn["total"] for cn in self.credit_notes.values() if cn["invoice"] == invoice_id and cn["status"] == "issued")
            if total <= 0 or credited + total > invoice["total"]:
                raise ValueError(f"credit note total {total} must be above 0 and with the {credited} already credited "
                                 f"at most the invoice total {invoice['total']}")
            pre = min(total, invoice["amount_remaining"]) if invoice.get("status") == "open" else 0
            post = total - pre
            if refund_amount is None and credit_amount is None and out_of_band_amount is None:
                credit_amount = post or None
            if (refund_amount or 0) + (credit_amount or 0) + (out_of_band_amount or 0) != post:
                raise ValueError(f"refund_amount + credit_amount + out_of_band_amount must equal the post-payment amount {post}")
            refunds = []
            if refund_amount:
                for charge_id, part in self._refund_plan(invoice_id, refund_amount):
                    refund = self.refund(charge_id, part, at=at)
                    refunds.append({"amount_refunded": part, "payment_record_refund": None, "refund": refund["id"], "type": "refund"})
            balance_txn = None
            if credit_amount:
                balance_txn = self._id("cbtxn")
                customer = self.customers.get(self._customer_id(invoice))
                if customer is not None and "balance" in customer:
                    customer["balance"] = (customer["balance"] or 0) - credit_amount
            number = f"{invoice['number']}-CN-{sum(1 for cn in self.credit_notes.values() if cn['invoice'] == invoice_id) + 1:02d}"
            discount_amounts: dict[str, int] = {}
            for line in cn_lines:
                for d in line["discount_amounts"]:
                    discount_amounts[d["discount"]] = discount_amounts.get(d["discount"], 0) + d["amount"]
            credit_note = _stripe_order({
                "id": cn_id, "object": "credit_note", "amount": total, "amount_shipping": 0, "created": at,
                "currency": invoice["currency"], "customer": self._customer_id(invoice), "customer_account": None,
                "customer_balance_transaction": balance_txn, "discount_amount": discount,
                "discount_amounts": [{"amount": a, "discount": d} for d, a in discount_amounts.items()],
                "effective_at": at, "invoice": invoice_id, "livemode": False, "memo": memo, "metadata": {}, "number": number,
                "out_of_band_amount": out_of_band_amount,
                "pdf": f"https://pay.stripe.com/credit_notes/acct_1Kx8Wq2LmT5Qh7Zp/test_{secrets.token_hex(16)}/pdf?s=ap",
                "post_payment_amount": post, "pre_payment_amount": pre,
                "pretax_credit_amounts": [{"amount": a, "discount": d, "type": "discount"} for d, a in discount_amounts.items()],
                "reason": reason, "refunds": refunds, "shipping_cost": None, "status": "issued", "subtotal": subtotal,
                "subtotal_excluding_tax": subtotal - inclusive, "total": total, "total_excluding_tax": total - exclusive - inclusive,
                "total_taxes": _aggregate_taxes(taxes),
                "type": "pre_payment" if post == 0 else "post_payment" if pre == 0 else "mixed", "voided_at": None,
            })
            self.credit_notes[cn_id] = credit_note
            self.credit_note_lines[cn_id] = cn_lines
            self.line_credit_modes.update(mode for _, mode in built if mode is not None)
            invoice["pre_payment_credit_notes_amount"] = (invoice.get("pre_payment_credit_notes_amount") or 0) + pre
            invoice["post_payment_credit_notes_amount"] = (invoice.get("post_payment_credit_notes_amount") or 0) + post
            if pre:
                invoice["amount_remaining"] -= pre
                invoice["amount_due"] -= pre
                if invoice["amount_remaining"] == 0:
                    self._mark_paid(invoice, at)
                default = self._default_payment(invoice_id)
                if default is not None:
                    self._sync_default(default, invoice, at)
            view = self._credit_note_view(credit_note)
            self._emit("credit_note.created", view, at)
            if pre and invoice["status"] == "paid":
                self._emit("invoice.paid", self._invoice_view(invoice, []), at)
            return view

    def add_adjustment(self, amount: int, *, currency: str | None = None, reporting_category: str = "other_adjustment",
                       description: str | None = None, source: str | None = None, fee: int = 0, at: int | None = None,
                       available_on: int | None = None) -> dict:
        """A BalanceTransaction of `type: "adjustment"` (negative takes money from the balance): a dispute
        (`reporting_category="dispute"`, e.g. −amount with a dispute fee in `fee`; `source` defaults to a new
        `dp_…`), a dispute won back ("dispute_reversal"), a refunded Stripe fee ("fee"), anything else
        ("other_adjustment")."""
        with self.lock:
            at = self._at(at)
            if source is None and reporting_category in ("dispute", "dispute_reversal"):
                source = self._id("dp")
            txn = self._new_balance_transaction(amount, currency or self.settlement_currency, "adjustment", reporting_category,
                                                source, at, fee=fee,
                                                fee_description=("Dispute fee" if reporting_category == "dispute" else "Stripe fee") if fee else None,
                                                description=description, available_on=available_on)
            return self._render(txn)

    def make_payout(self, currency: str | None = None, at: int | None = None, *, discrepancy: int = 0,
                    statement_descriptor: str | None = None) -> dict:
        """An automatic payout at `at` of every balance transaction in `currency` (default the settlement
        currency) that is available by then and not yet paid out: amount = Σ net. `discrepancy` is added
        to the payout's amount (and its own transaction) only, so its transactions do not add up to it."""
        with self.lock:
            at = self._at(at)
            currency = (currency or self.settlement_currency).lower()
            swept = [txn for txn in self.balance_transactions.values()
                     if txn["currency"] == currency and txn["id"] not in self.paid_out_in and txn["type"] != "payout"
                     and txn["created"] <= at and txn["available_on"] <= at]
            amount = sum(txn["net"] for txn in swept) + discrepancy
            if not swept or amount <= 0:
                raise ValueError(f"nothing to pay out in {currency} at {at} (Σ net {amount})")
            payout_id = self._id("po")
            own = self._new_balance_transaction(-amount, currency, "payout", "payout", payout_id, at,
                                                description="STRIPE PAYOUT", available_on=at)
            payout = _stripe_order({
                "id": payout_id, "object": "payout", "amount": amount, "application_fee": None, "application_fee_amount": None,
                "arrival_date": (at // 86400 + self.payout_arrival_days) * 86400, "automatic": True,
                "balance_transaction": own["id"], "created": at, "currency": currency, "description": "STRIPE PAYOUT",
                "destination": self.bank_account, "failure_balance_transaction": None, "failure_code": None,
                "failure_message": None, "livemode": False, "metadata": {}, "method": "standard", "original_payout": None,
                "payout_method": None, "reconciliation_status": "completed", "reversed_by": None, "source_type": "card",
                "statement_descriptor": statement_descriptor, "status": "paid",
                "trace_id": {"status": "supported", "value": "".join(secrets.choice(string.digits) for _ in range(16))},
                "type": "bank_account",
            })
            self.payouts[payout_id] = payout
            for txn in swept + [own]:
                self.paid_out_in[txn["id"]] = payout_id
            for event_type in ("payout.created", "payout.paid", "payout.reconciliation_completed"):
                self._emit(event_type, payout, at)
            return copy.deepcopy(payout)

    def now(self) -> int:
        return self.clock if self.clock is not None else int(time.time())

    # -- money: building objects ----------------------------------------------------------------------------

    @staticmethod
    def _id(prefix: str) -> str:
        return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(24))

    def _at(self, at: int | None) -> int:
        return int(at) if at is not None else self.now()

    @staticmethod
    def _customer_id(invoice: dict) -> str | None:
        customer = invoice.get("customer")
        return customer.get("id") if isinstance(customer, dict) else customer

    def _default_payment(self, invoice_id: str) -> dict | None:
        return next((p for p in self.invoice_payments.values() if p["invoice"] == invoice_id and p["is_default"]), None)

    def _new_payment_intent(self, invoice: dict, amount: int, at: int) -> dict:
        intent_id = self._id("pi")
        intent = _stripe_order({
            "id": intent_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0, "amount_details": {"tip": {}},
            "amount_received": 0, "application": None, "application_fee_amount": None, "automatic_payment_methods": None,
            "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}", "confirmation_method": "automatic", "created": at,
            "currency": invoice.get("currency"), "customer": self._customer_id(invoice), "customer_account": None,
            "description": "Payment for Invoice", "excluded_payment_method_types": None, "last_payment_error": None,
            "latest_charge": None, "livemode": False, "managed_payments": None, "metadata": {}, "next_action": None,
            "on_behalf_of": None, "payment_method": None, "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"installments": None, "mandate_options": None, "network": None,
                                                "request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"], "processing": None, "receipt_email": None, "review": None,
            "setup_future_usage": None, "shipping": None, "source": None, "statement_descriptor": None,
            "statement_descriptor_suffix": None, "status": "requires_payment_method", "transfer_data": None,
            "transfer_group": None,
        })
        self.payment_intents[intent_id] = intent
        return intent

    def _new_invoice_payment(self, invoice: dict, amount: int, at: int, payment: dict, is_default: bool = False) -> dict:
        payment_id = self._id("inpay")
        record = _stripe_order({
            "id": payment_id, "object": "invoice_payment", "amount_paid": None, "amount_requested": amount, "created": at,
            "currency": invoice.get("currency"), "invoice": invoice["id"], "is_default": is_default, "livemode": False,
            "payment": payment, "status": "open", "status_transitions": {"canceled_at": None, "paid_at": None},
        })
        self.invoice_payments[payment_id] = record
        return record

    def _succeed(self, intent: dict, invoice: dict, at: int, fee: int | None) -> dict:
        """Confirm a PaymentIntent: its Charge and the charge's BalanceTransaction."""
        amount, currency = intent["amount"], intent["currency"]
        charge_id, method = self._id("ch"), self._id("pm")
        settled, rate = self._settled(amount, currency)
        if fee is None:
            rule = self.fee_rules.get(self.settlement_currency)
            if rule is None:
                raise ValueError(f"no fee rule for settlement currency {self.settlement_currency}: pass fee_rules or fee=")
            fee = rule.fee(settled)
        txn = self._new_balance_transaction(settled, self.settlement_currency, "charge", "charge", charge_id, at, fee=fee,
                                            fee_description="Stripe processing fees", description=intent["description"],
                                            exchange_rate=rate)
        customer = self.customers.get(self._customer_id(invoice)) or {}
        address = customer.get("address") or invoice.get("customer_address") or {}
        charge = _stripe_order({
            "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
            "application": None, "application_fee": None, "application_fee_amount": None, "balance_transaction": txn["id"],
            "billing_details": {"address": {k: address.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")},
                                "email": customer.get("email", invoice.get("customer_email")),
                                "name": customer.get("name", invoice.get("customer_name")), "phone": None, "tax_id": None},
            "calculated_statement_descriptor": (invoice.get("account_name") or "STRIPE").upper()[:22], "captured": True,
            "created": at, "currency": currency, "customer": self._customer_id(invoice), "description": intent["description"],
            "disputed": False, "failure_balance_transaction": None, "failure_code": None, "failure_message": None,
            "fraud_details": {}, "livemode": False, "metadata": {}, "on_behalf_of": None,
            "outcome": {"advice_code": None, "network_advice_code": None, "network_decline_code": None,
                        "network_status": "approved_by_network", "reason": None, "risk_level": "normal", "risk_score": 32,
                        "seller_message": "Payment complete.", "type": "authorized"},
            "paid": True, "payment_intent": intent["id"], "payment_method": method,
            "payment_method_details": {"card": {
                "amount_authorized": amount, "authorization_code": "123456", "brand": "visa",
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": "DK", "exp_month": 12, "exp_year": 2030, "extended_authorization": {"status": "disabled"},
                "fingerprint": "Xt5EWLLDS7FJjR1c", "funding": "credit", "incremental_authorization": {"status": "unavailable"},
                "installments": None, "last4": "4242", "mandate": None, "multicapture": {"status": "unavailable"},
                "network": "visa", "network_token": {"used": False}, "network_transaction_id": "104102978678771",
                "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"}, "regulated_status": "unregulated",
                "three_d_secure": None, "transaction_link_id": None, "wallet": None}, "type": "card"},
            "receipt_email": None, "receipt_number": None,
            "receipt_url": f"https://pay.stripe.com/receipts/invoices/{secrets.token_urlsafe(48)}?s=ap",
            "refunded": False, "review": None, "shipping": None, "source": None, "source_transfer": None,
            "statement_descriptor": None, "statement_descriptor_suffix": None, "status": "succeeded", "transfer_data": None,
            "transfer_group": None,
        })
        self.charges[charge_id] = charge
        intent.update(amount_received=amount, latest_charge=charge_id, payment_method=method, status="succeeded")
        return charge

    def _settled(self, amount: int, currency: str) -> tuple[int, float | None]:
        """`amount` (minor units of `currency`) in the settlement currency, and the exchange rate if converted."""
        currency = currency.lower()
        if currency == self.settlement_currency:
            return amount, None
        rate = self.exchange_rates.get(currency)
        if rate is None:
            raise ValueError(f"no exchange rate {currency}->{self.settlement_currency}: pass exchange_rates")
        scale = Decimal(10) ** (_exponent(self.settlement_currency) - _exponent(currency))
        return _half_up(Decimal(amount) * rate * scale), float(rate)

    def _new_balance_transaction(self, amount: int, currency: str, type_: str, reporting_category: str, source: str | None,
                                 at: int, *, fee: int = 0, fee_description: str | None = None, description: str | None = None,
                                 exchange_rate: float | None = None, available_on: int | None = None) -> dict:
        txn_id = self._id("txn")
        if available_on is None:
            available_on = (at // 86400 + self.available_after_days) * 86400
        txn = _stripe_order({
            "id": txn_id, "object": "balance_transaction", "amount": amount, "available_on": available_on,
            "balance_type": "payments", "created": at, "currency": currency, "description": description,
            "exchange_rate": exchange_rate, "fee": fee,
            "fee_details": [{"amount": fee, "application": None, "currency": currency, "description": fee_description,
                             "type": "stripe_fee"}] if fee else [],
            "net": amount - fee, "reporting_category": reporting_category, "source": source, "status": "pending",
            "type": type_,
        })
        self.balance_transactions[txn_id] = txn
        return txn

    def _mark_paid(self, invoice: dict, at: int) -> None:
        invoice["status"] = "paid"
        transitions = invoice.setdefault("status_transitions", {})
        transitions["paid_at"] = at

    def _sync_default(self, default: dict, invoice: dict, at: int) -> None:
        """The default payment follows the invoice's amount_remaining; canceled once nothing remains."""
        if default["status"] != "open":
            return
        intent = self.payment_intents.get((default.get("payment") or {}).get("payment_intent"))
        if invoice["amount_remaining"] > 0:
            default["amount_requested"] = invoice["amount_remaining"]
            if intent is not None:
                intent["amount"] = invoice["amount_remaining"]
            return
        default["status"] = "canceled"
        default["status_transitions"] = {"canceled_at": at, "paid_at": None}
        if intent is not None:
            intent.update(status="canceled", canceled_at=at, cancellation_reason="automatic")

    def _refund_plan(self, invoice_id: str, amount: int) -> list[tuple[str, int]]:
        """Which of the invoice's charges a credit note's refund_amount comes from, newest first."""
        charges = []
        for payment in self._payments_for(invoice_id):
            intent = self.payment_intents.get(payment["payment"].get("payment_intent"))
            if payment["status"] == "paid" and intent and intent.get("latest_charge") in self.charges:
                charges.append(self.charges[intent["latest_charge"]])
        plan, left = [], amount
        for charge in charges:
            part = min(left, charge["amount"] - charge["amount_refunded"])
            if part > 0:
                plan.append((charge["id"], part))
                left -= part
        if left:
            raise ValueError(f"the invoice's charges cannot refund {amount}: {amount - left} is refundable")
        return plan

    def _credited_before(self, line_id: str) -> int:
        return sum(line["amount"] for cn_id, lines in self.credit_note_lines.items() if self.credit_notes[cn_id]["status"] == "issued"
                   for line in lines if line.get("invoice_line_item") == line_id)

    def _credit_note_line(self, spec: dict, invoice_lines: dict[str, dict], invoice: dict,
                          whole_if_unsaid: bool = False) -> tuple[dict | None, tuple[str, str] | None]:
        """A credit note line from Stripe's create parameters, and how it credits its invoice line (by
        quantity or by amount: Stripe allows later credit notes on that line only the same way)."""
        kind = spec.get("type") or ("invoice_line_item" if "invoice_line_item" in spec else "custom_line_item")
        mode = None
        if kind == "invoice_line_item":
            line = invoice_lines[spec["invoice_line_item"]]
            unit = (line.get("pricing") or {}).get("unit_amount_decimal")
            before = self._credited_before(line["id"])
            mode = "amount" if "amount" in spec else "quantity" if "quantity" in spec else None
            if mode and self.line_credit_modes.get(line["id"], mode) != mode:
                raise ValueError(f"line {line['id']} was credited by {self.line_credit_modes[line['id']]}; Stripe allows only that again")
            if "amount" in spec:
                amount, quantity, unit = int(spec["amount"]), 1, None
            elif "quantity" in spec:
                if unit is None:
                    raise ValueError(f"line {line['id']} has no unit price: credit it by amount")
                credited = Decimal(str(spec["quantity"]))
                quantity = int(credited)  # an integer at Stripe, truncated like an invoice line's `quantity`
                whole_quantity = credited == Decimal(str(line.get("quantity_decimal") or line.get("quantity")))
                amount = line["amount"] if whole_quantity else _half_up(Decimal(unit) * credited)
            else:
                amount, quantity = line["amount"] - before, line.get("quantity")
                if whole_if_unsaid and amount == 0:
                    return None, None
            if not 0 < amount <= line["amount"] - before:
                raise ValueError(f"credit {amount} must be above 0 and at most the {line['amount'] - before} of line {line['id']} "
                                 "not yet credited")
            whole = amount == line["amount"]
            discounts = [{"amount": d["amount"] if whole else _half_up(Decimal(d["amount"]) * amount / line["amount"]),
                          "discount": d["discount"]} for d in line.get("discount_amounts") or []]
            base = amount - sum(d["amount"] for d in discounts)
            taxes = [copy.deepcopy(tax) if whole else self._credit_tax(tax, base) for tax in line.get("taxes") or []]
            rate_ids = [tax["tax_rate_details"]["tax_rate"] for tax in line.get("taxes") or [] if tax.get("tax_rate_details")]
            description = spec.get("description", line.get("description"))
            extra = {"invoice_line_item": line["id"]}
            mode = (line["id"], mode) if mode else None
        else:
            quantity = int(spec.get("quantity", 1))
            unit = str(spec.get("unit_amount_decimal", spec.get("unit_amount")))
            amount = _half_up(Decimal(unit) * quantity)
            discounts, rate_ids, description, extra = [], list(spec.get("tax_rates") or []), spec.get("description"), {}
            reason = next((t.get("taxability_reason") for t in invoice.get("total_taxes") or []), "not_available")
            taxes = [self._credit_tax({"amount": None, "tax_behavior": None, "tax_rate_details": {"tax_rate": rate_id},
                                       "taxability_reason": reason, "taxable_amount": None, "type": "tax_rate_details"}, amount)
                     for rate_id in rate_ids]
        unit_amount = int(Decimal(unit)) if unit is not None and Decimal(unit) == Decimal(unit).to_integral_value() else None
        return _stripe_order({
            "id": self._id("cnli"), "object": "credit_note_line_item", "amount": amount, "description": description,
            "discount_amount": sum(d["amount"] for d in discounts), "discount_amounts": discounts, **extra,
            "livemode": False, "metadata": {}, "pretax_credit_amounts": [{"amount": d["amount"], "discount": d["discount"],
                                                                          "type": "discount"} for d in discounts],
            "quantity": quantity, "tax_rates": [copy.deepcopy(self.tax_rates[r]) for r in rate_ids if r in self.tax_rates],
            "taxes": taxes, "type": kind, "unit_amount": unit_amount, "unit_amount_decimal": unit,
        }), mode

    def _credit_tax(self, tax: dict, base: int) -> dict:
        """One tax of a credited amount `base` (after discounts), with the rate of the invoice line's tax."""
        rate_id = (tax.get("tax_rate_details") or {}).get("tax_rate")
        rate = self.tax_rates.get(rate_id)
        if rate is not None:
            percent, inclusive = Decimal(str(rate["percentage"])), bool(rate.get("inclusive"))
        else:
            inclusive = tax.get("tax_behavior") == "inclusive"
            taxable = tax.get("taxable_amount") or 0
            percent = Decimal(tax["amount"]) * 100 / taxable if taxable and tax.get("amount") is not None else Decimal(0)
        if tax.get("amount") == 0 or percent == 0:
            amount = 0
        elif inclusive:
            amount = base - _half_up(Decimal(base) * 100 / (100 + percent))
        else:
            amount = _half_up(Decimal(base) * percent / 100)
        return {"amount": amount, "tax_behavior": "inclusive" if inclusive else "exclusive",
                "tax_rate_details": {"tax_rate": rate_id}, "taxability_reason": tax.get("taxability_reason") or "not_available",
                "taxable_amount": base - amount if inclusive else base, "type": "tax_rate_details"}

    def _emit(self, event_type: str, obj: dict, at: int, previous_attributes: dict | None = None) -> None:
        data: dict[str, Any] = {"object": _stripe_order(self._render(obj) if obj.get("object") == "balance_transaction" else copy.deepcopy(obj))}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        self.events.append({"id": self._id("evt"), "object": "event", "api_version": API_VERSION, "created": at, "data": data,
                            "livemode": False, "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None},
                            "type": event_type})

    # -- money: rendering and expansion -----------------------------------------------------------------------

    def _render(self, obj: dict) -> dict:
        view = copy.deepcopy(obj)
        if view.get("object") == "balance_transaction":
            available = view["id"] in self.paid_out_in or view["available_on"] <= self.now()
            view["status"] = "available" if available else "pending"
        return view

    def _credit_note_view(self, credit_note: dict) -> dict:
        view = copy.deepcopy(credit_note)
        lines = self.credit_note_lines[credit_note["id"]]
        view["lines"] = {"object": "list", "data": copy.deepcopy(lines[:10]), "has_more": len(lines) > 10,
                         "url": f"/v1/credit_notes/{credit_note['id']}/lines"}
        return _stripe_order(view)

    def _payments_for(self, invoice_id: str) -> list[dict]:
        return _newest_first(p for p in self.invoice_payments.values() if p["invoice"] == invoice_id)

    def _lookup(self, object_id: str) -> dict | None:
        """The current state of any object the double holds, by its id."""
        stores = [("inpay_", self.invoice_payments), ("txn_", self.balance_transactions), ("ch_", self.charges),
                  ("pi_", self.payment_intents), ("re_", self.refunds), ("po_", self.payouts), ("cus_", self.customers),
                  ("txr_", self.tax_rates), ("prod_", self.products)]
        if object_id.startswith("cn_") and object_id in self.credit_notes:
            return self._credit_note_view(self.credit_notes[object_id])
        if object_id.startswith("in_") and object_id in self.invoices:
            return self._invoice_view(self.invoices[object_id], [])
        for prefix, store in stores:
            if object_id.startswith(prefix) and object_id in store:
                return self._render(store[object_id])
        return None

    def _expand(self, value: Any, path: list[str]) -> Any:
        """Replace the id at `path` (dotted `expand[]`, lists walked through) by its object."""
        if not path:
            return value
        if isinstance(value, list):
            return [self._expand(item, path) for item in value]
        if not isinstance(value, dict) or path[0] not in value:
            return value
        inner = value[path[0]]
        if isinstance(inner, str):
            inner = self._lookup(inner) or inner
        value[path[0]] = self._expand(inner, path[1:])
        return value

    def _expanded(self, value: dict, expand: list[str], skip: tuple[str, ...] = ()) -> dict:
        for path in expand:
            if path not in skip:
                value = self._expand(value, path.split("."))
        return value

    @staticmethod
    def _window(items: list[dict], request: Request) -> tuple[list[dict], bool]:
        limit = max(1, min(int(request.args.get("limit", 10)), 100))
        ids = [item["id"] for item in items]
        after, before = request.args.get("starting_after"), request.args.get("ending_before")
        if after:
            start = ids.index(after) + 1 if after in ids else len(items)
            return items[start:start + limit], start + limit < len(items)
        if before:
            end = ids.index(before) if before in ids else 0
            return items[max(0, end - limit):end], end - limit > 0
        return items[:limit], limit < len(items)

    def _list(self, items: list[dict], request: Request, url: str, expand: list[str]) -> Response:
        page, has_more = self._window(items, request)
        body = {"object": "list", "data": [self._render(item) for item in page], "has_more": has_more, "url": url}
        return self._json(self._expanded(body, expand))

    def _money_routes(self, parts: list[str], request: Request, expand: list[str]) -> Response | None:
        """GET endpoints for payments, refunds, credit notes, payouts and balance transactions."""
        if request.method != "GET" or len(parts) < 2 or parts[0] != "v1":
            return None
        args = request.args
        newest = lambda store: _newest_first(store.values())  # noqa: E731
        stores = {"invoice_payments": (self.invoice_payments, "invoice payment"), "payment_intents": (self.payment_intents, "payment_intent"),
                  "charges": (self.charges, "charge"), "refunds": (self.refunds, "refund"), "payouts": (self.payouts, "payout"),
                  "balance_transactions": (self.balance_transactions, "balance transaction"), "credit_notes": (self.credit_notes, "credit note")}
        if parts[1] not in stores:
            return None
        store, kind = stores[parts[1]]
        if len(parts) == 2:
            items = newest(store)
            filters = {"invoice_payments": {"invoice": "invoice", "status": "status"},
                       "charges": {"payment_intent": "payment_intent", "customer": "customer"},
                       "refunds": {"charge": "charge", "payment_intent": "payment_intent"},
                       "payouts": {"status": "status"}, "payment_intents": {"customer": "customer"},
                       "credit_notes": {"invoice": "invoice", "customer": "customer"},
                       "balance_transactions": {"type": "type", "source": "source", "currency": "currency"}}[parts[1]]
            for param, field in filters.items():
                if param in args:
                    items = [item for item in items if item.get(field) == args[param]]
            for bound, keep in (("gte", lambda c, v: c >= v), ("gt", lambda c, v: c > v), ("lte", lambda c, v: c <= v),
                                ("lt", lambda c, v: c < v)):
                if f"created[{bound}]" in args:
                    items = [item for item in items if keep(item["created"], int(args[f"created[{bound}]"]))]
            if parts[1] == "invoice_payments":
                for field in ("type", "payment_intent", "payment_record"):
                    if f"payment[{field}]" in args:
                        items = [item for item in items if item["payment"].get(field) == args[f"payment[{field}]"]]
            if parts[1] == "balance_transactions" and "payout" in args:
                items = [item for item in items if self.paid_out_in.get(item["id"]) == args["payout"]]
            if parts[1] == "credit_notes":
                items = [self._credit_note_view(item) for item in items]
            return self._list(items, request, f"/v1/{parts[1]}", expand)
        obj = store.get(parts[2])
        if obj is None:
            return self._missing(kind, parts[2])
        if parts[1] == "credit_notes":
            if len(parts) == 4 and parts[3] == "lines":
                return self._list(self.credit_note_lines[obj["id"]], request, f"/v1/credit_notes/{obj['id']}/lines", expand)
            return self._json(self._expanded(self._credit_note_view(obj), expand)) if len(parts) == 3 else None
        return self._json(self._expanded(self._render(obj), expand)) if len(parts) == 3 else None

    # -- HTTP -------------------------------------------------------------------------------------------

    def wsgi(self, environ, start_response):
        request = Request(environ)
        response = self.handle(request)
        self.saved_after(request.method)
        return response(environ, start_response)

    @staticmethod
    def _json(value, status: int = 200) -> Response:
        return Response(json.dumps(value), status=status, mimetype="application/json")

    def _missing(self, kind: str, object_id: str) -> Response:
        return self._json({"error": {"code": "resource_missing", "message": f"No such {kind}: '{object_id}'",
                                     "param": "id", "type": "invalid_request_error"}}, 404)

    def _invoice_view(self, invoice: dict, expand: list[str]) -> dict:
        view = copy.deepcopy(invoice)
        lines = self.lines[invoice["id"]]
        view["lines"] = {"object": "list", "data": copy.deepcopy(lines[:10]), "has_more": len(lines) > 10,
                         "total_count": len(lines), "url": f"/v1/invoices/{invoice['id']}/lines"}
        if "customer" in expand and view.get("customer") in self.customers:
            view["customer"] = copy.deepcopy(self.customers[view["customer"]])
        if "total_taxes.tax_rate_details.tax_rate" in expand:
            for tax in view.get("total_taxes") or []:
                details = tax.get("tax_rate_details") or {}
                if isinstance(details.get("tax_rate"), str) and details["tax_rate"] in self.tax_rates:
                    details["tax_rate"] = copy.deepcopy(self.tax_rates[details["tax_rate"]])
        if any(path == "payments" or path.startswith("payments.") for path in expand):
            payments = self._payments_for(invoice["id"])
            view["payments"] = {"object": "list", "data": [self._render(p) for p in payments[:10]], "has_more": len(payments) > 10,
                                "total_count": len(payments), "url": "/v1/invoice_payments"}
            view = _stripe_order(view)
            view = self._expanded(view, [path for path in expand if path.startswith("payments.")])
        return view

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append({"method": request.method, "path": request.path, "query": dict(request.args)})
        key = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if key != self.api_key and key not in self.restricted_keys and not request.path.startswith("/_demo/"):
            return self._json({"error": {"message": "Invalid API Key provided: sk_test_****", "type": "invalid_request_error"}}, 401)
        parts = request.path.strip("/").split("/")
        if key in self.restricted_keys:
            needed = _permission_needed(parts, request.method)
            if needed not in self.restricted_keys[key]:
                return self._json({"error": {"type": "invalid_request_error", "message": (
                    f"The provided key '{key[:8]}{'*' * (len(key) - 12)}{key[-4:]}' does not have the required permissions "
                    f"for this endpoint on account '{self.account['id']}'. Having the 'rak_{needed}' permission would allow "
                    "this request to continue.")}}, 403)
        if parts == ["_demo", "send-invoice"] and request.method == "POST":
            return self._demo_send(request.get_json(force=True))
        if parts == ["_demo", "payout"] and request.method == "POST":
            return self._demo_payout(request.get_json(force=True))
        expand = [value for key, value in request.args.items(multi=True) if key.startswith("expand")]
        with self.lock:
            if parts[:2] == ["v1", "invoices"] and len(parts) == 2 and request.method == "GET":
                return self._list_invoices(request)
            if parts == ["v1", "invoices", "search"] and request.method == "GET":
                return self._search_invoices(request)
            if parts[:2] == ["v1", "invoices"] and len(parts) >= 3:
                invoice = self.invoices.get(parts[2])
                if invoice is None:
                    return self._missing("invoice", parts[2])
                if len(parts) == 4 and parts[3] == "lines":
                    return self._page(self.lines[parts[2]], request, f"/v1/invoices/{parts[2]}/lines")
                if request.method == "POST":
                    changes = _form_to_nested(request.form)
                    if "metadata" in changes:
                        invoice["metadata"] = {**(invoice.get("metadata") or {}), **changes["metadata"]}
                return self._json(self._invoice_view(invoice, expand))
            if parts == ["v1", "account"] and request.method == "GET":
                return self._json(copy.deepcopy(self.account))
            if parts[:2] == ["v1", "customers"] and len(parts) == 2 and request.method == "GET":
                return self._page(_newest_first(self.customers.values()), request, "/v1/customers")
            if parts[:2] == ["v1", "products"] and len(parts) == 2 and request.method == "GET":
                return self._page(_newest_first(self.products.values()), request, "/v1/products")
            if parts[:2] == ["v1", "customers"] and len(parts) == 3:
                customer = self.customers.get(parts[2])
                return self._json(customer) if customer else self._missing("customer", parts[2])
            if parts[:2] == ["v1", "tax_rates"] and len(parts) == 2:
                return self._page(sorted(self.tax_rates.values(), key=lambda r: r["id"]), request, "/v1/tax_rates")
            if parts[:2] == ["v1", "tax_rates"] and len(parts) == 3:
                rate = self.tax_rates.get(parts[2])
                return self._json(rate) if rate else self._missing("tax_rate", parts[2])
            if parts[:2] == ["v1", "products"] and len(parts) == 3:
                product = self.products.get(parts[2])
                return self._json(product) if product else self._missing("product", parts[2])
            if parts[:2] == ["v1", "webhook_endpoints"] and len(parts) in (2, 3):
                return self._webhook_endpoint_route(parts[2] if len(parts) == 3 else None, request)
            answer = self._money_routes(parts, request, expand)
            if answer is not None:
                return answer
        return self._json({"error": {"message": f"Unrecognized request URL ({request.method}: {request.path}).", "type": "invalid_request_error"}}, 404)

    # -- webhook endpoints ----------------------------------------------------------------------------------

    @staticmethod
    def _invalid(message: str, param: str, code: str | None = None) -> Response:
        error = {"message": message, "param": param, "type": "invalid_request_error"}
        if code:
            error["code"] = code
        return FakeStripe._json({"error": error}, 400)

    def _webhook_endpoint_refusal(self, values: dict, creating: bool) -> Response | None:
        """Stripe's 400 for a create or update it refuses, or None."""
        for name in ("url", "enabled_events"):
            if creating and not values.get(name):
                return self._invalid(f"Missing required param: {name}.", name, "parameter_missing")
        if "enabled_events" in values:
            events = values["enabled_events"]
            events = [events[key] for key in sorted(events, key=int)] if isinstance(events, dict) else [events]
            for index, event in enumerate(events):
                if event not in WEBHOOK_EVENT_TYPES:
                    return self._invalid(f"Invalid enabled_events[{index}]: must be one of {', '.join(sorted(WEBHOOK_EVENT_TYPES))}",
                                         "enabled_events")
            values["enabled_events"] = events
        if "url" in values:
            url = values["url"]
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return self._invalid("Invalid URL: URL must be a valid http or https URL.", "url", "url_invalid")
            if _unreachable_host(parts.hostname):
                return self._invalid("Invalid URL: URL must be publicly accessible. Consider using a tool like the Stripe CLI "
                                     "to test webhooks locally: https://github.com/stripe/stripe-cli", "url", "url_invalid")
            if parts.scheme == "http" and "_live_" in self.api_key:
                return self._invalid("Invalid URL: webhook endpoints in live mode must use HTTPS.", "url", "url_invalid")
        return None

    def _webhook_endpoint_view(self, endpoint: dict, with_secret: bool = False) -> dict:
        view = {key: value for key, value in endpoint.items() if key != "secret" or with_secret}
        return _stripe_order(copy.deepcopy(view))

    def _webhook_endpoint_route(self, endpoint_id: str | None, request: Request) -> Response:
        if endpoint_id is None:
            if request.method != "POST":
                return self._page(sorted(self.webhook_endpoints.values(), key=lambda e: -e["created"]), request, "/v1/webhook_endpoints")
            values = _form_to_nested(request.form)
            refusal = self._webhook_endpoint_refusal(values, creating=True)
            if refusal is not None:
                return refusal
            endpoint = {
                "id": self._id("we"), "object": "webhook_endpoint", "api_version": values.get("api_version"),
                "application": None, "created": self.now(), "description": values.get("description") or None,
                "enabled_events": values["enabled_events"], "livemode": "_live_" in self.api_key,
                "metadata": values.get("metadata") or {}, "secret": "whsec_" + "".join(secrets.choice(_ALPHABET) for _ in range(32)),
                "status": "enabled", "url": values["url"],
            }
            self.webhook_endpoints[endpoint["id"]] = endpoint
            return self._json(self._webhook_endpoint_view(endpoint, with_secret=True))
        endpoint = self.webhook_endpoints.get(endpoint_id)
        if endpoint is None:
            return self._missing("webhook_endpoint", endpoint_id)
        if request.method == "DELETE":
            del self.webhook_endpoints[endpoint_id]
            return self._json({"id": endpoint_id, "object": "webhook_endpoint", "deleted": True})
        if request.method == "POST":
            values = _form_to_nested(request.form)
            refusal = self._webhook_endpoint_refusal(values, creating=False)
            if refusal is not None:
                return refusal
            for name in ("url", "enabled_events", "description"):
                if name in values:
                    endpoint[name] = values[name]
            if "disabled" in values:
                endpoint["status"] = "disabled" if values["disabled"] == "true" else "enabled"
            if "metadata" in values:
                endpoint["metadata"] = {**endpoint["metadata"], **values["metadata"]}
        return self._json(self._webhook_endpoint_view(endpoint))

    def _demo_send(self, order: dict) -> Response:
        """The demo's "Send a test invoice": make a realistic invoice and deliver its signed event."""
        import random

        catalogue = [("Consulting hour", "7.5", 95000), ("Onboarding workshop", "1", 149500),
                     ("Support plan (month)", "1", 49900), ("Design review", "2.25", 110000)]
        lines = random.sample(catalogue, k=random.randint(1, 3))
        number = f"DEMO-{len(self.invoices) + 1:04d}"
        exempt = order.get("variant") == "exempt"  # a customer exempt from VAT: held until its VAT is mapped
        invoice, customer, products = make_invoice(number=number, lines=lines, status="open", vat_percent=0 if exempt else 25)
        if exempt:
            invoice["customer_tax_exempt"] = "exempt"
        self.add_invoice(invoice, customer, products)
        if order["event"] == "invoice.paid":
            self.pay_invoice(invoice["id"])  # a card payment, its charge, Stripe's fee and the balance transaction
        try:
            answer = deliver(order["webhook_url"], order["event"], self.invoices[invoice["id"]], order["secret"])
            delivered = {"status": answer.status_code, "body": answer.text[:500]}
        except requests.RequestException as error:
            delivered = {"status": None, "body": str(error)}
        return self._json({"invoice": invoice["id"], "number": number, "delivery": delivered})

    def _demo_payout(self, order: dict) -> Response:
        """The demo's "Pay out": pay out what the balance holds now and deliver payout.paid."""
        try:
            payout = self.make_payout()
        except ValueError as error:
            return self._json({"payout": None, "reason": str(error)})
        try:
            answer = deliver(order["webhook_url"], "payout.paid", payout, order["secret"])
            delivered = {"status": answer.status_code, "body": answer.text[:500]}
        except requests.RequestException as error:
            delivered = {"status": None, "body": str(error)}
        return self._json({"payout": payout["id"], "amount": payout["amount"], "currency": payout["currency"], "delivery": delivered})

    def _page(self, items: list[dict], request: Request, url: str) -> Response:
        limit = min(int(request.args.get("limit", 10)), 100)
        after = request.args.get("starting_after")
        start = 0
        if after:
            ids = [item["id"] for item in items]
            start = ids.index(after) + 1 if after in ids else len(items)
        page = items[start:start + limit]
        return self._json({"object": "list", "data": copy.deepcopy(page), "has_more": start + limit < len(items), "url": url})

    def _search_invoices(self, request: Request) -> Response:
        """`GET /v1/invoices/search`, for the clauses `field:"value"` joined by AND that the portal sends (on number,
        customer, status, currency); Stripe's other search syntax is refused as Stripe refuses a bad query."""
        query = request.args.get("query", "")
        clauses = re.findall(r'(\w+):"([^"]*)"', query)
        rest = re.sub(r'(\w+):"([^"]*)"', "", query).replace("AND", "").strip()
        if not clauses or rest or any(field not in ("number", "customer", "status", "currency") for field, _ in clauses):
            return self._invalid(f"The query {query!r} is not valid search syntax for this double.", "query")
        items = sorted(self.invoices.values(), key=lambda i: (-i["created"], i["id"]))
        items = [i for i in items if all(str(i.get(field) or "") == value for field, value in clauses)]
        limit = max(1, min(int(request.args.get("limit", 10)), 100))
        return self._json({"object": "search_result", "data": [self._invoice_view(i, []) for i in items[:limit]],
                           "has_more": len(items) > limit, "next_page": None, "url": "/v1/invoices/search"})

    def _list_invoices(self, request: Request) -> Response:
        gte = request.args.get("created[gte]", type=int)
        lt = request.args.get("created[lt]", type=int)
        items = sorted(self.invoices.values(), key=lambda i: (-i["created"], i["id"]))
        items = [i for i in items if (gte is None or i["created"] >= gte) and (lt is None or i["created"] < lt)]
        return self._page([self._invoice_view(i, []) for i in items], request, "/v1/invoices")


# The event types the double accepts in a webhook endpoint's `enabled_events` (a part of Stripe's list: the
# invoice, payment, refund, credit note and payout events, and a few more); `*` is every event.
WEBHOOK_EVENT_TYPES = frozenset({
    "*",
    "balance.available",
    "charge.captured", "charge.dispute.closed", "charge.dispute.created", "charge.expired", "charge.failed",
    "charge.pending", "charge.refund.updated", "charge.refunded", "charge.succeeded", "charge.updated",
    "credit_note.created", "credit_note.updated", "credit_note.voided",
    "customer.created", "customer.deleted", "customer.updated",
    "invoice.created", "invoice.deleted", "invoice.finalization_failed", "invoice.finalized",
    "invoice.marked_uncollectible", "invoice.overdue", "invoice.overpaid", "invoice.paid",
    "invoice.payment_action_required", "invoice.payment_failed", "invoice.payment_succeeded", "invoice.sent",
    "invoice.upcoming", "invoice.updated", "invoice.voided", "invoice.will_be_due",
    "invoice_payment.paid",
    "payment_intent.canceled", "payment_intent.created", "payment_intent.payment_failed", "payment_intent.succeeded",
    "payout.canceled", "payout.created", "payout.failed", "payout.paid", "payout.reconciliation_completed", "payout.updated",
    "product.created", "product.deleted", "product.updated",
    "refund.created", "refund.failed", "refund.updated",
    "tax_rate.created", "tax_rate.updated",
})


# The restricted-key permission each resource needs ("…_read" for GET, "…_write" otherwise), as Stripe names them.
_PERMISSION_OF_RESOURCE = {
    "invoices": "invoice", "invoice_payments": "invoice", "customers": "customer", "products": "product",
    "tax_rates": "tax_rate", "charges": "charge", "payment_intents": "payment_intent", "refunds": "refund",
    "credit_notes": "credit_note", "payouts": "payout", "balance_transactions": "balance", "webhook_endpoints": "webhook",
    "account": "account",
}


def _permission_needed(parts: list[str], method: str) -> str:
    resource = _PERMISSION_OF_RESOURCE.get(parts[1] if len(parts) > 1 else "", "all")
    return f"{resource}_{'read' if method == 'GET' else 'write'}"


class StripeRouter(ServedDouble):
    """Several Stripe accounts behind one address, as Stripe is: each request goes to the account whose key
    (secret or restricted) it carries; an unknown key gets Stripe's 401."""

    def __init__(self, *accounts: FakeStripe) -> None:
        self.accounts = accounts
        self.serve(self.wsgi)

    def wsgi(self, environ, start_response):
        request = Request(environ)
        key = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        for account in self.accounts:
            if key == account.api_key or key in account.restricted_keys:
                return account.handle(request)(environ, start_response)
        return self.accounts[0].handle(request)(environ, start_response)  # its 401


def _unreachable_host(host: str) -> bool:
    """Whether Stripe refuses `host` as not publicly accessible: localhost, or a loopback, private or link-local
    address (Stripe was seen to accept 0.0.0.0, dj-stripe/dj-stripe#1891, so the double does too)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_unspecified and (address.is_loopback or address.is_private or address.is_link_local)


# -- building realistic invoices --------------------------------------------------------------------------


def make_invoice(number: str = "DEMO-0001", lines: list[tuple[str, str, int]] | None = None, *, status: str = "paid",
                 customer: dict | None = None, collection_method: str = "send_invoice", vat_percent: int = 25,
                 created: int | None = None, invoice_id: str | None = None) -> tuple[dict, dict, list[dict]]:
    """A consistent DKK invoice with exclusive VAT: (invoice, customer, products).

    `lines` are (product name, quantity as a decimal string, unit amount in øre).
    """
    lines = lines or [("Consulting hour", "7.5", 95000), ("Onboarding", "1", 149500)]
    base = example("invoice_send_invoice_open")
    customer = customer or example("customer")
    created = created or int(time.time())
    invoice_id = invoice_id or "in_" + secrets.token_hex(12)
    products, line_items, subtotal, tax_total = [], [], 0, 0
    tax_rate = base["total_taxes"][0]["tax_rate_details"]["tax_rate"] if base.get("total_taxes") else "txr_fake"
    for index, (name, quantity, unit) in enumerate(lines):
        product_id = "prod_" + hashlib.sha1(name.encode()).hexdigest()[:14]
        products.append({**example("product"), "id": product_id, "name": name, "metadata": {}})
        amount = int((__import__("decimal").Decimal(quantity) * unit).to_integral_value())
        tax = amount * vat_percent // 100
        subtotal, tax_total = subtotal + amount, tax_total + tax
        line_items.append({
            "id": f"il_{invoice_id[3:]}{index:03d}", "object": "line_item", "amount": amount, "currency": "dkk",
            "description": f"{quantity} × {name}", "discount_amounts": [], "discountable": True, "discounts": [],
            "invoice": invoice_id, "livemode": False, "metadata": {}, "parent": None,
            "period": {"end": created, "start": created}, "pretax_credit_amounts": [],
            "pricing": {"type": "price_details", "price_details": {"price": f"price_{product_id[5:]}", "product": product_id},
                        "unit_amount_decimal": str(unit)},
            "quantity": int(__import__("decimal").Decimal(quantity)), "quantity_decimal": quantity, "subtotal": amount,
            "taxes": [{"amount": tax, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": tax_rate},
                       "taxability_reason": "standard_rated", "taxable_amount": amount, "type": "tax_rate_details"}],
        })
    invoice = {
        **base, "id": invoice_id, "number": number, "customer": customer["id"], "customer_name": customer.get("name"),
        "customer_email": customer.get("email"), "created": created, "effective_at": created,
        "status": status, "collection_method": collection_method,
        "due_date": created + 14 * 86400 if collection_method == "send_invoice" else None,
        "status_transitions": {"finalized_at": created, "marked_uncollectible_at": None,
                               "paid_at": created if status == "paid" else None, "voided_at": None},
        "lines": {"object": "list", "data": line_items, "has_more": False, "url": f"/v1/invoices/{invoice_id}/lines"},
        "subtotal": subtotal, "subtotal_excluding_tax": subtotal, "total_excluding_tax": subtotal,
        "total_taxes": [{"amount": tax_total, "tax_behavior": "exclusive", "tax_rate_details": {"tax_rate": tax_rate},
                         "taxability_reason": "standard_rated", "taxable_amount": subtotal, "type": "tax_rate_details"}],
        "total": subtotal + tax_total, "amount_due": subtotal + tax_total,
        "amount_paid": subtotal + tax_total if status == "paid" else 0,
        "amount_remaining": 0 if status == "paid" else subtotal + tax_total,
        "total_discount_amounts": [], "discounts": [], "metadata": {},
    }
    return invoice, customer, products


def _newest_first(items) -> list[dict]:
    """As Stripe lists: newest `created` first; for equal times the later created object first."""
    return [item for _, item in sorted(enumerate(items), key=lambda pair: (pair[1]["created"], pair[0]), reverse=True)]


def _aggregate_taxes(taxes: list[dict]) -> list[dict]:
    """Line taxes summed per tax rate, behaviour and taxability reason, in the shape of `total_taxes`."""
    totals: dict[tuple, dict] = {}
    for tax in taxes:
        key = ((tax.get("tax_rate_details") or {}).get("tax_rate"), tax["tax_behavior"], tax["taxability_reason"])
        if key not in totals:
            totals[key] = {**copy.deepcopy(tax), "amount": 0, "taxable_amount": 0}
        totals[key]["amount"] += tax["amount"]
        totals[key]["taxable_amount"] += tax["taxable_amount"] or 0
    return list(totals.values())


# -- webhook events ---------------------------------------------------------------------------------------


def signed_event(event_type: str, invoice: dict, secret: str, event_id: str | None = None,
                 timestamp: int | None = None, *, previous_attributes: dict | None = None,
                 created: int | None = None) -> tuple[bytes, str]:
    """A Stripe event envelope carrying `invoice` — any object: an invoice, credit note, charge, refund,
    payout or invoice payment, as `data.object` — and its `Stripe-Signature` header.

    `previous_attributes` goes to `data.previous_attributes` (`*.updated` events, `charge.refunded`).
    An event recorded in `FakeStripe.events` is sent as is with
    `signed_event(e["type"], e["data"]["object"], secret, e["id"], previous_attributes=e["data"].get("previous_attributes"))`.
    """
    data: dict[str, Any] = {"object": invoice}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event = {
        "id": event_id or "evt_" + secrets.token_hex(12), "object": "event", "api_version": API_VERSION,
        "created": int(time.time()) if created is None else created, "data": data, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": event_type,
    }
    payload = json.dumps(event).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={digest}"


def deliver(url: str, event_type: str, invoice: dict, secret: str, event_id: str | None = None, timeout: float = 10, *,
            previous_attributes: dict | None = None) -> requests.Response:
    """POST a correctly signed event carrying `invoice` (any Stripe object) to a portal's webhook URL, as Stripe does."""
    payload, signature = signed_event(event_type, invoice, secret, event_id, previous_attributes=previous_attributes)
    return requests.post(url, data=payload, timeout=timeout,
                         headers={"Stripe-Signature": signature, "Content-Type": "application/json; charset=utf-8"})
