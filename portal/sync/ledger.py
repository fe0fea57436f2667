"""Journal entries: what happens to the money after an invoice, entered in an e-conomic journal.

Plain Python, like the invoice engine (portal/sync/engine.py). The caller (portal/runs) hands in the two API
clients, the merchant's `JournalChoices`, a recorder that persists progress and audit rows, and `Books`, what
the database knows of the merchant's invoices and payments; it turns the exceptions into the run's status.

- A customer payment (Stripe's InvoicePayment, `inpay_…`) is one `customerPayments` entry against the booked
  invoice, from the Stripe balance account (a clearing account for the money Stripe holds).
- A refund (`re_…`) is the same entry reversed: the money goes back out of the Stripe balance account.
- A payout (`po_…`) takes Stripe's fees and the payout itself out of the Stripe balance account, to the fees
  account and the bank account, once its transactions add up to it.

Amounts follow e-conomic's sign: debit positive on the entry's own account (for a customer payment the
customer's debtor account), so a payment received is a negative `customerPayments` amount and its contra
account, the Stripe balance account, is debited.

Every voucher is posted once: the POST carries an `Idempotency-Key` from the run and the Stripe object, is
announced (`voucher_create_started`) before it is sent, and a retry, or any attempt after e-conomic's key
window, first looks for the voucher an earlier attempt made, by the Stripe id every entry's text ends in.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import stripe

from .economic import EconomicClient, EconomicError
from .economic_journals import accounting_year_for, filter_escape, journal_vouchers_find, voucher_post, year_in_url
from .engine import economic_failure, idempotency_key, stripe_failure
from .errors import SettingMissing, SyncFailure, SyncHeld, SyncSkipped, SyncWaiting
from .journal_choices import JournalChoices
from .money import exponent, from_minor, has_at_most_2_decimals

__all__ = ["Books", "EntryOutcome", "EntryRecorder", "EntryState", "JournalSettingMissing", "LedgerEngine",
           "KEY_WINDOW", "TEXT_LIMIT"]

# e-conomic's longest entry text (`text`, maxLength 250, in the schema of POST /journals/{n}/vouchers).
TEXT_LIMIT = 250
# e-conomic replays an Idempotency-Key for about an hour (it publishes no exact figure); past that a repeated
# POST is a new voucher. An attempt later than this after the first looks for an earlier voucher first.
KEY_WINDOW = timedelta(minutes=50)
SETTINGS_ANCHOR = "journal-and-accounts"
SETTING_LABELS = {"journal_number": "Journal", "stripe_balance_account": "Stripe balance account",
                  "bank_account": "Bank account", "fees_account": "Fees account"}

# Balance transaction types, by what they are to the books (Stripe's list: docs.stripe.com/api/balance_transactions).
CHARGE_TYPES = frozenset({"charge", "payment"})
REFUND_TYPES = frozenset({"refund", "payment_refund"})
FEE_TYPES = frozenset({"stripe_fee", "stripe_fx_fee", "tax_fee"})  # Stripe's own fees, as transactions of their own
PAGE = 100


@dataclass
class EntryState:
    """The run as the ledger engine sees it; the recorder persists every change before the next call."""

    run_id: int
    kind: str  # payment, refund, payout
    stripe_object_id: str  # inpay_…, re_…, po_…
    stripe_invoice_id: str | None = None
    attempt: int = 1
    voucher_create_started: bool = False
    journal_number: int | None = None
    accounting_year: str | None = None
    voucher_number: int | None = None
    first_attempt_at: datetime | None = None


@dataclass
class EntryOutcome:
    """What was entered: the voucher, its amount and each entry, for the history (and a payout's reconciliation)."""

    journal_number: int
    accounting_year: str
    voucher_number: int
    amount: Decimal  # major units of `currency`
    currency: str
    entries: list[dict]  # each entry: type, account or customer, contra_account, amount (a decimal string), date, text
    economic_calls: int = 0
    notes: list[str] = field(default_factory=list)
    totals: dict | None = None  # a payout's charges, refunds, fees, adjustments and payout (decimal strings)
    transactions: list[dict] = field(default_factory=list)  # a payout's balance transactions, for a Payouts view
    found: bool = False  # an earlier attempt's voucher, not posted by this one

    def summary(self) -> str:
        """One line for the history: "voucher 7 in journal 1 (2026): 10,775.00 DKK"."""
        return (f"voucher {self.voucher_number} in journal {self.journal_number} ({self.accounting_year}): "
                f"{format_money(self.amount, self.currency)}")


class EntryRecorder(Protocol):
    """Where the ledger engine reports what happened, as it happens. `entry_described` and `voucher_known` are
    persisted with the `step` row written right after them, before any further call to Stripe or e-conomic;
    `voucher_create_started` is persisted at once, before the POST it announces."""

    def step(self, step: str, outcome: str, *, numbers: str | None = None, summary: dict | None = None,
             error: str | None = None, duration_ms: int = 0) -> None: ...
    def entry_described(self, invoice_number: str | None, customer_name: str | None, currency: str,
                        amount_minor: int) -> None: ...
    def voucher_create_started(self) -> None: ...
    def voucher_known(self, journal_number: int, accounting_year: str, voucher_number: int) -> None: ...


class Books(Protocol):
    """What our database knows of the merchant's invoices and payments."""

    def booked_invoice(self, stripe_invoice_id: str) -> tuple[int, int] | None:
        """(e-conomic customer number, booked invoice number) of the invoice's run, once it is booked."""
        ...

    def payment_entered(self, stripe_payment_intent_or_charge_id: str) -> bool | None:
        """True when the payment run of that Stripe payment succeeded, False when one exists but is not done,
        None when the payment belongs to no invoice we sync."""
        ...

    def invoices_of_payments(self, stripe_payment_refs: list[str]) -> dict[str, tuple[str, str | None]]:
        """The Stripe invoice (id, number) of each of these payments that a payment run knows."""
        ...


class JournalSettingMissing(SettingMissing):
    """Journal entry settings the merchant has not chosen; `setting` names them, `anchor` where they are set."""

    def __init__(self, names: list[str], anchor: str = SETTINGS_ANCHOR) -> None:
        labels = [SETTING_LABELS.get(name, name) for name in names]
        words = labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"
        verb = "is" if len(labels) == 1 else "are"
        SyncFailure.__init__(self, f"{words} {verb} not chosen (Journal entries settings): nothing was entered.")
        self.setting = words
        self.anchor = anchor


def format_money(value: Decimal, currency: str) -> str:
    """Decimal(1234.5), "DKK" → "1,234.50 DKK"; JPY without decimals: "12,500 JPY"."""
    return f"{value:,.{exponent(currency)}f} {currency.upper()}"


def entry_text(template_text: str, stripe_id: str) -> str:
    """The merchant's text, then the Stripe id in parentheses (what a later attempt finds the entry by), within
    e-conomic's limit: the merchant's part is cut, never the id."""
    suffix = f"({stripe_id})"
    room = TEXT_LIMIT - len(suffix) - 1
    merchant = " ".join(template_text.split())[:max(room, 0)].rstrip()
    return f"{merchant} {suffix}" if merchant else suffix


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) else None


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@dataclass
class _Invoice:
    id: str | None
    number: str | None
    customer_name: str | None
    currency: str

    @property
    def label(self) -> str:
        return self.number or self.id or "(unknown)"


@dataclass
class _Payment:
    id: str
    invoice: _Invoice
    currency: str
    amount_minor: int
    paid_at: int | None


@dataclass
class _Refund:
    id: str
    currency: str
    amount_minor: int
    created: int
    payment_ref: str | None  # the refunded payment's pi_… (or ch_… without one)
    charge_refunded_minor: int | None  # all refunded of the charge so far, this refund included
    invoice_payments: list[dict]  # Stripe's InvoicePayments of that payment, their invoice expanded

    @property
    def invoice(self) -> _Invoice | None:
        if len(self.invoice_payments) != 1:
            return None
        return _invoice_of(self.invoice_payments[0], self.currency)


@dataclass
class _Payout:
    id: str
    currency: str
    amount_minor: int
    arrival_date: int
    transactions: list[dict] = field(default_factory=list)  # Stripe's, without the payout's own
    invoices: dict[str, _Invoice] = field(default_factory=dict)  # payment intent → its invoice, where Stripe links one
    sums: dict[str, int] = field(default_factory=dict)  # charges, refunds, fees, adjustments: minor units

    def totals(self) -> dict[str, Decimal]:
        """The sums and the payout, in major units."""
        return {**{name: from_minor(value, self.currency) for name, value in self.sums.items()},
                "payout": from_minor(self.amount_minor, self.currency)}


def _invoice_of(invoice_payment: dict, currency: str) -> _Invoice:
    invoice = invoice_payment.get("invoice")
    if not isinstance(invoice, dict):
        invoice = {"id": invoice}
    return _Invoice(invoice.get("id"), invoice.get("number"), invoice.get("customer_name"),
                    (invoice.get("currency") or currency or "").upper())


class LedgerEngine:
    def __init__(self, stripe_client: stripe.StripeClient, economic: EconomicClient, choices: JournalChoices,
                 recorder: EntryRecorder, books: Books, timezone: str = "Europe/Copenhagen") -> None:
        self.stripe = stripe_client
        self.economic = economic
        self.choices = choices
        self.recorder = recorder
        self.books = books
        self.zone = ZoneInfo(timezone)

    # -- the three kinds --------------------------------------------------------------------------------

    def payment(self, state: EntryState) -> EntryOutcome:
        """Enter a customer payment (`inpay_…`) against its booked invoice."""
        calls_before = self.economic.calls
        paid = self._timed("fetch", "reading the payment", self._fetch_payment, state)
        outcome = self._timed("voucher", "the payment's voucher", self._enter_payment, state, paid)
        outcome.economic_calls = self.economic.calls - calls_before
        return outcome

    def refund(self, state: EntryState) -> EntryOutcome:
        """Enter a refund (`re_…`) as its payment reversed."""
        calls_before = self.economic.calls
        refund = self._timed("fetch", "reading the refund", self._fetch_refund, state)
        outcome = self._timed("voucher", "the refund's voucher", self._enter_refund, state, refund)
        outcome.economic_calls = self.economic.calls - calls_before
        return outcome

    def payout(self, state: EntryState) -> EntryOutcome:
        """Enter a payout (`po_…`) and the fees Stripe kept, once its transactions add up to it."""
        calls_before = self.economic.calls
        payout = self._timed("fetch", "reading the payout", self._fetch_payout, state)
        self._timed("reconcile", "the payout", self._reconcile_payout, payout)
        outcome = self._timed("voucher", "the payout's voucher", self._enter_payout, state, payout)
        outcome.economic_calls = self.economic.calls - calls_before
        return outcome

    def _timed(self, step: str, doing: str, function, *args):
        started = time.monotonic()
        try:
            return function(*args)
        except EconomicError as error:
            failure = economic_failure(error, doing)
            if not failure.transient and error.status == 400 and "press Sync again" not in failure.message:
                failure = SyncFailure(f"{failure.message}. Check the journal and accounts under Journal entries "
                                      "settings, then press Sync again.")
        except stripe.StripeError as error:
            failure = stripe_failure(error)
        except SyncFailure as error:
            failure = error
        except (SyncHeld, SyncSkipped, SyncWaiting) as stopped:
            outcome = {SyncHeld: "held", SyncSkipped: "skipped", SyncWaiting: "waiting"}[type(stopped)]
            self.recorder.step(step, outcome, error=stopped.reason, duration_ms=_elapsed(started))
            raise
        self.recorder.step(step, "failed", error=failure.message, duration_ms=_elapsed(started))
        raise failure

    # -- a customer payment -------------------------------------------------------------------------------

    def _fetch_payment(self, state: EntryState) -> _Payment:
        started = time.monotonic()
        record = self._get(f"/v1/invoice_payments/{state.stripe_object_id}", expand=["invoice"])
        currency = (record.get("currency") or "").upper()
        invoice = _invoice_of(record, currency)
        paid = _Payment(record["id"], invoice, invoice.currency or currency, int(record.get("amount_paid") or 0),
                        (record.get("status_transitions") or {}).get("paid_at"))
        self.recorder.entry_described(invoice.number, invoice.customer_name, paid.currency, paid.amount_minor)
        payment = record.get("payment") or {}
        if record.get("status") != "paid":
            raise SyncSkipped(f"Stripe's payment {paid.id} on invoice {invoice.label} is {record.get('status')}, not "
                              "paid: nothing was entered.")
        if payment.get("type") == "payment_record":
            raise SyncSkipped(f"Paid outside Stripe ({_id_of(payment.get('payment_record')) or 'a payment record'}): "
                              "enter it in e-conomic where the money arrived; nothing was entered.")
        self._switched_on("payments_enabled", "Enter customer payments")
        self.recorder.step("fetch", "found", numbers=f"payment of invoice {invoice.label}",
                           summary={"amount": str(from_minor(paid.amount_minor, paid.currency)),
                                    "currency": paid.currency, "paid_by": payment.get("type")},
                           duration_ms=_elapsed(started))
        return paid

    def _enter_payment(self, state: EntryState, paid: _Payment) -> EntryOutcome:
        journal, balance = self._chosen("journal_number", "stripe_balance_account")
        invoice = paid.invoice
        booked = self.books.booked_invoice(invoice.id) if invoice.id else None
        if booked is None:
            raise SyncWaiting(f"Waits for invoice {invoice.label} to be booked in e-conomic: its payment is entered "
                              "against the booked invoice, and goes on once the invoice's run has booked it.")
        customer, booked_number = booked
        amount = self._amount(paid.amount_minor, paid.currency, f"payment on invoice {invoice.label}")
        if not amount:
            raise SyncSkipped(f"Stripe's payment {paid.id} on invoice {invoice.label} is 0: nothing was entered.")
        day = self._day(paid.paid_at)
        text = entry_text(self.choices.text("payment", invoice_number=invoice.number, customer_name=invoice.customer_name),
                          paid.id)
        entry = {"customer": {"customerNumber": customer}, "customerInvoice": booked_number, "amount": -amount,
                 "contraAccount": {"accountNumber": balance}, "currency": {"code": paid.currency},
                 "date": day.isoformat(), "text": text}
        return self._enter(state, "payment", journal, day, {"customerPayments": [entry]}, amount, paid.currency)

    # -- a refund -----------------------------------------------------------------------------------------

    def _fetch_refund(self, state: EntryState) -> _Refund:
        started = time.monotonic()
        refund = self._get(f"/v1/refunds/{state.stripe_object_id}", expand=["charge"])
        charge = refund.get("charge") if isinstance(refund.get("charge"), dict) else None
        intent = _id_of(refund.get("payment_intent")) or _id_of((charge or {}).get("payment_intent"))
        currency = (refund.get("currency") or "").upper()
        amount_minor = int(refund.get("amount") or 0)
        self.recorder.entry_described(None, None, currency, amount_minor)
        status = refund.get("status")
        if status in ("failed", "canceled"):
            raise SyncSkipped(f"Stripe's refund {refund['id']} {status}: no money went back to the customer, so "
                              "nothing was entered.")
        if status != "succeeded":
            raise SyncWaiting(f"Waits for Stripe to finish the refund {refund['id']} (it is {status}): it is entered "
                              "once it has succeeded.")
        self._switched_on("refunds_enabled", "Enter refunds")
        payments: list[dict] = []
        if intent:
            # Stripe filters a list of InvoicePayments by payment intent (or payment record), not by charge.
            payments = self._get("/v1/invoice_payments", payment={"type": "payment_intent", "payment_intent": intent},
                                 status="paid", limit=PAGE, expand=["data.invoice"])["data"]
        found = _Refund(refund["id"], currency, amount_minor, int(refund["created"]),
                        intent or _id_of(refund.get("charge")),
                        int(charge["amount_refunded"]) if charge and charge.get("amount_refunded") is not None else None,
                        payments)
        invoice = found.invoice
        self.recorder.entry_described(invoice.number if invoice else None, invoice.customer_name if invoice else None,
                                      currency, amount_minor)
        self.recorder.step("fetch", "found", numbers=f"refund of invoice {invoice.label}" if invoice else "refund",
                           summary={"amount": str(from_minor(amount_minor, currency)), "currency": currency,
                                    "payment": found.payment_ref, "invoice_payments": [p["id"] for p in payments]},
                           duration_ms=_elapsed(started))
        return found

    def _enter_refund(self, state: EntryState, refund: _Refund) -> EntryOutcome:
        journal, balance = self._chosen("journal_number", "stripe_balance_account")
        if not refund.invoice_payments:
            raise SyncHeld(f"This refund is not for a synced invoice: Stripe lists no invoice paid by the payment it "
                           f"refunds ({refund.payment_ref or 'none'}). Enter it by hand if it belongs in the books; "
                           "nothing was entered.")
        if len(refund.invoice_payments) > 1:
            invoices = ", ".join(_invoice_of(p, refund.currency).label for p in refund.invoice_payments)
            raise SyncHeld(f"The payment this refund returns ({refund.payment_ref}) paid several invoices ({invoices}), "
                           "so which one it reverses is not Stripe's to say. Enter it by hand; nothing was entered.")
        invoice = refund.invoice
        invoice_payment = refund.invoice_payments[0]
        booked = self.books.booked_invoice(invoice.id) if invoice.id else None
        if booked is None:
            raise SyncHeld(f"This refund is not for a synced invoice: invoice {invoice.label} has no booked invoice in "
                           "e-conomic made by Invoice Sync, so there is no customer payment to reverse. Enter it by "
                           "hand; nothing was entered.")
        if refund.payment_ref and self.books.payment_entered(refund.payment_ref) is False:
            raise SyncWaiting(f"Waits for the payment of invoice {invoice.label} ({refund.payment_ref}) to be entered "
                              "in e-conomic: the refund reverses it.")
        paid_minor = int(invoice_payment.get("amount_paid") or 0)
        refunded_minor = max(refund.amount_minor, refund.charge_refunded_minor or 0)  # with the payment's other refunds
        if refunded_minor > paid_minor:
            def shown(minor: int) -> str:
                return format_money(from_minor(minor, refund.currency), refund.currency)
            so_far = ("" if refunded_minor == refund.amount_minor
                      else f" (with the payment's other refunds, {shown(refunded_minor)})")
            raise SyncHeld(f"Stripe's refund of {shown(refund.amount_minor)}{so_far} is more than the {shown(paid_minor)} "
                           f"paid on invoice {invoice.label}. Enter it by hand; nothing was entered.")
        if invoice.currency and refund.currency != invoice.currency:
            raise SyncHeld(f"Stripe refunded {refund.currency} on invoice {invoice.label}, which is in {invoice.currency}. "
                           "Enter it by hand; nothing was entered.")
        customer, booked_number = booked
        amount = self._amount(refund.amount_minor, refund.currency, f"refund on invoice {invoice.label}")
        day = self._day(refund.created)
        text = entry_text(self.choices.text("refund", invoice_number=invoice.number, customer_name=invoice.customer_name,
                                            refund_id=refund.id), refund.id)
        # The payment reversed: the customer's debtor account is debited again, the Stripe balance credited.
        entry = {"customer": {"customerNumber": customer}, "customerInvoice": booked_number, "amount": amount,
                 "contraAccount": {"accountNumber": balance}, "currency": {"code": refund.currency},
                 "date": day.isoformat(), "text": text}
        return self._enter(state, "refund", journal, day, {"customerPayments": [entry]}, amount, refund.currency)

    # -- a payout -----------------------------------------------------------------------------------------

    def _fetch_payout(self, state: EntryState) -> _Payout:
        started = time.monotonic()
        data = self._get(f"/v1/payouts/{state.stripe_object_id}")
        payout = _Payout(data["id"], (data.get("currency") or "").upper(), int(data.get("amount") or 0),
                         int(data.get("arrival_date") or data.get("created") or 0))
        self.recorder.entry_described(None, None, payout.currency, payout.amount_minor)
        status = data.get("status")
        if status in ("failed", "canceled"):
            raise SyncSkipped(f"Stripe's payout {payout.id} {status}: no money reached the bank, so nothing was entered.")
        if status != "paid":
            raise SyncWaiting(f"Waits for Stripe's payout {payout.id} to arrive (it is {status}, expected "
                              f"{self._calendar_day(payout.arrival_date).isoformat()}): it is entered once paid.")
        if not data.get("automatic"):
            raise SyncHeld(f"Stripe's payout {payout.id} was made by hand: Stripe lists the transactions of automatic "
                           "payouts only, so what it paid out cannot be checked. Enter it by hand; nothing was entered.")
        if data.get("reconciliation_status") not in (None, "completed"):
            raise SyncWaiting(f"Waits for Stripe to finish reconciling its payout {payout.id} "
                              f"({data.get('reconciliation_status')}): its transactions are listed once it has.")
        self._switched_on("payouts_enabled", "Enter payouts and Stripe's fees")
        self._chosen("journal_number", "stripe_balance_account", "bank_account", "fees_account")
        own = data.get("balance_transaction")
        listed = self.stripe.v1.balance_transactions.list(
            params={"payout": payout.id, "limit": PAGE, "expand": ["data.source"]})
        for item in listed.auto_paging_iter():
            transaction = item.to_dict()
            if transaction["id"] == _id_of(own) or (transaction.get("type") == "payout"
                                                    and _id_of(transaction.get("source")) == payout.id):
                continue
            payout.transactions.append(transaction)
        payout.invoices = self._invoices_of(payout)
        self.recorder.step("fetch", "found", numbers=f"payout {payout.id}: {len(payout.transactions)} transactions",
                           summary={"amount": str(from_minor(payout.amount_minor, payout.currency)),
                                    "currency": payout.currency}, duration_ms=_elapsed(started))
        return payout

    def _invoices_of(self, payout: _Payout) -> dict[str, _Invoice]:
        """The invoice of each payment (and refunded payment) in the payout: from our payment runs, else from
        Stripe where it links one (one look-up per payment intent: since API 2025-03-31 neither charges nor
        payment intents name their invoice)."""
        intents = list(dict.fromkeys(
            intent for transaction in payout.transactions
            if (intent := _id_of((transaction.get("source") if isinstance(transaction.get("source"), dict) else {})
                                 .get("payment_intent")))))
        known = self.books.invoices_of_payments(intents)
        invoices = {intent: _Invoice(invoice_id, number, None, payout.currency) for intent, (invoice_id, number) in known.items()}
        for intent in intents:
            if intent in invoices:
                continue
            found = self._get("/v1/invoice_payments", payment={"type": "payment_intent", "payment_intent": intent},
                              status="paid", limit=PAGE, expand=["data.invoice"])["data"]
            if len({_id_of(p.get("invoice")) for p in found}) == 1:
                invoices[intent] = _invoice_of(found[0], payout.currency)
        return invoices

    def _reconcile_payout(self, payout: _Payout) -> None:
        started = time.monotonic()
        currency = payout.currency
        sums = {"charges": 0, "refunds": 0, "fees": 0, "adjustments": 0}
        for transaction in payout.transactions:
            if (transaction.get("currency") or "").upper() != currency:
                raise SyncHeld(f"Stripe's payout {payout.id} in {currency} lists a transaction in "
                               f"{(transaction.get('currency') or '?').upper()} ({transaction['id']}). Enter it by hand; "
                               "nothing was entered.")
            kind, amount, fee = transaction.get("type"), int(transaction["amount"]), int(transaction.get("fee") or 0)
            sums["fees"] += fee
            if kind in CHARGE_TYPES:
                sums["charges"] += amount
            elif kind in REFUND_TYPES:
                sums["refunds"] -= amount
            elif kind in FEE_TYPES:
                sums["fees"] -= amount
            else:
                sums["adjustments"] += amount
        payout.sums = sums
        net = sum(int(t["net"]) for t in payout.transactions)  # = charges − refunds − fees + adjustments
        t = payout.totals()
        totals = {name: str(value) for name, value in t.items()}
        if net != payout.amount_minor:
            difference = from_minor(payout.amount_minor - net, currency)
            raise SyncHeld(
                f"Stripe's payout of {format_money(t['payout'], currency)} is {format_money(abs(difference), currency)} "
                f"{'more' if difference > 0 else 'less'} than its transactions add up to: charges "
                f"{format_money(t['charges'], currency)} − refunds {format_money(t['refunds'], currency)} − fees "
                f"{format_money(t['fees'], currency)} + adjustments {format_money(t['adjustments'], currency)} = "
                f"{format_money(from_minor(net, currency), currency)}. Nothing was entered; compare the payout with its "
                "transactions in Stripe (Balances › Payouts), then press Sync again.",
                totals={**totals, "transactions": str(from_minor(net, currency)), "difference": str(difference)},
                summary=f"payout {format_money(t['payout'], currency)}, "
                        f"transactions {format_money(from_minor(net, currency), currency)}")
        self.recorder.step("reconcile", "done", numbers=f"{len(payout.transactions)} transactions = "
                           f"{format_money(t['payout'], currency)}", summary=totals,
                           duration_ms=_elapsed(started))

    def _enter_payout(self, state: EntryState, payout: _Payout) -> EntryOutcome:
        journal, balance, bank, fees_account = self._chosen("journal_number", "stripe_balance_account", "bank_account",
                                                            "fees_account")
        waiting = []
        for transaction in payout.transactions:
            source = transaction.get("source") if isinstance(transaction.get("source"), dict) else {}
            if transaction.get("type") not in CHARGE_TYPES or not source:
                continue
            ref = _id_of(source.get("payment_intent")) or source.get("id")
            if ref and self.books.payment_entered(ref) is False:
                invoice = payout.invoices.get(ref)
                waiting.append(f"invoice {invoice.label} ({source.get('id')})" if invoice else source.get("id"))
        if waiting:
            raise SyncWaiting(f"Waits for the payment{'s' if len(waiting) > 1 else ''} of {', '.join(waiting)} to be "
                              "entered in e-conomic first: the payout takes out of the Stripe balance account the "
                              "money the payments put in.")
        currency = payout.currency
        fees = self._amount(payout.sums["fees"], currency, f"fees in payout {payout.id}")
        amount = self._amount(payout.amount_minor, currency, f"payout {payout.id}")
        day = self._calendar_day(payout.arrival_date)
        entries = []
        if fees:
            entries.append({"account": {"accountNumber": fees_account}, "contraAccount": {"accountNumber": balance},
                            "amount": fees, "currency": {"code": currency}, "date": day.isoformat(),
                            "text": entry_text(self.choices.text("fee", payout_id=payout.id), payout.id)})
        entries.append({"account": {"accountNumber": bank}, "contraAccount": {"accountNumber": balance},
                        "amount": amount, "currency": {"code": currency}, "date": day.isoformat(),
                        "text": entry_text(self.choices.text("payout", payout_id=payout.id), payout.id)})
        outcome = self._enter(state, "payout", journal, day, {"financeVouchers": entries}, amount, currency)
        outcome.totals = {name: str(value) for name, value in payout.totals().items()}
        outcome.transactions = [self._transaction_view(t, payout) for t in payout.transactions]
        adjustments = from_minor(payout.sums["adjustments"], currency)
        if adjustments:
            outcome.notes.append(f"Adjustments of {format_money(adjustments, currency)} in this payout (disputes, "
                                 "corrections) are not entered: they stay on the Stripe balance account until entered "
                                 "by hand.")
        return outcome

    def _transaction_view(self, transaction: dict, payout: _Payout) -> dict:
        source = transaction.get("source")
        intent = _id_of(source.get("payment_intent")) if isinstance(source, dict) else None
        invoice = payout.invoices.get(intent) if intent else None
        currency = payout.currency
        return {"id": transaction["id"], "type": transaction.get("type"),
                "reporting_category": transaction.get("reporting_category"), "source": _id_of(source),
                "amount": str(from_minor(int(transaction["amount"]), currency)),
                "fee": str(from_minor(int(transaction.get("fee") or 0), currency)),
                "net": str(from_minor(int(transaction["net"]), currency)),
                "invoice": invoice.id if invoice else None, "invoice_number": invoice.number if invoice else None}

    # -- the voucher, once --------------------------------------------------------------------------------

    def _enter(self, state: EntryState, kind: str, journal: int, day: date, entries: dict, amount: Decimal,
               currency: str) -> EntryOutcome:
        """The voucher of these entries: an earlier attempt's if there is one, else posted now."""
        started = time.monotonic()
        stripe_id = state.stripe_object_id
        summary = [self._entry_view(kind_name, entry) for kind_name, items in entries.items() for entry in items]
        year = self._year(day)
        notes: list[str] = []
        earlier, replacing = self._earlier_voucher(state, journal, year, stripe_id, notes)
        if earlier is not None:
            journal_number, accounting_year, number = earlier
            how = "found"
            notes.insert(0, f"Voucher {number} was made by an earlier attempt; nothing was posted again.")
        else:
            key_parts: tuple = (state.run_id, kind, stripe_id, "voucher")
            if replacing is not None:
                key_parts += ("replacing", *replacing)  # the deleted voucher's key would replay its answer
            body = {"accountingYear": {"year": year}, "entries": entries}
            state.voucher_create_started = True
            self.recorder.voucher_create_started()
            made = voucher_post(self.economic, journal, body, idempotency_key(*key_parts))
            journal_number, accounting_year = journal, str(made["accountingYear"]["year"])
            number = int(made["voucherNumber"])
            how = "created"
        state.journal_number, state.accounting_year, state.voucher_number = journal_number, accounting_year, number
        self.recorder.voucher_known(journal_number, accounting_year, number)
        self.recorder.step("voucher", how, numbers=f"voucher {number} in journal {journal_number} ({accounting_year})",
                           summary={"entries": summary}, duration_ms=_elapsed(started))
        return EntryOutcome(journal_number, accounting_year, number, amount, currency, summary, notes=notes,
                            found=how == "found")

    def _earlier_voucher(self, state: EntryState, journal: int, year: str, stripe_id: str,
                         notes: list[str]) -> tuple[tuple[int, str, int] | None, tuple[str, int] | None]:
        """(journal, year, number) of the voucher an earlier attempt made for this Stripe object, or None; and the
        (year, number) of a voucher the run knew but e-conomic no longer has (deleted), if any."""
        replacing = None
        if state.voucher_number is not None and state.journal_number is not None and state.accounting_year:
            known = (state.journal_number, state.accounting_year, state.voucher_number)
            if self._voucher_in_journal(*known, stripe_id) or self._booked_entries(state.accounting_year, stripe_id,
                                                                                   state.voucher_number):
                return known, None
            replacing = (state.accounting_year, state.voucher_number)  # deleted in e-conomic since: look, else make anew
        if not (state.voucher_create_started or self._key_window_passed(state) or replacing):
            return None, None
        vouchers = [v for v in journal_vouchers_find(self.economic, journal, stripe_id)
                    if (str(v["accountingYear"]["year"]), v["voucherNumber"]) != replacing]
        if vouchers:
            if len(vouchers) > 1:
                numbers = ", ".join(str(v["voucherNumber"]) for v in vouchers)
                notes.append(f"Journal {journal} holds {len(vouchers)} vouchers for {stripe_id} (vouchers {numbers}): "
                             "check for a duplicate before booking it.")
            first = vouchers[0]
            return (journal, str(first["accountingYear"]["year"]), int(first["voucherNumber"])), replacing
        booked = [e for e in self._booked_entries(year, stripe_id) if (year, e.get("voucherNumber")) != replacing]
        if booked:
            notes.append(f"The journal was booked since: voucher {booked[0]['voucherNumber']} is in the accounts.")
            return (journal, year, int(booked[0]["voucherNumber"])), replacing
        return None, replacing

    def _voucher_in_journal(self, journal: int, year: str, number: int, stripe_id: str) -> bool:
        """Whether the journal still holds that voucher, and it is the one for this Stripe object."""
        try:
            voucher = self.economic.request("GET", f"/journals/{journal}/vouchers/{year_in_url(year)}-{number}")
        except EconomicError as error:
            if error.status == 404:
                return False
            raise
        texts = [str(entry.get("text") or "") for items in ((voucher or {}).get("entries") or {}).values()
                 for entry in items or []]
        return any(stripe_id.lower() in text.lower() for text in texts)

    def _booked_entries(self, year: str, stripe_id: str, voucher_number: int | None = None) -> list[dict]:
        """Booked entries of the accounting year whose text holds the Stripe id (a journal booked since the
        voucher was made): its vouchers are in the accounts now, not in the journal."""
        query = f"text$like:{filter_escape(stripe_id)}"
        if voucher_number is not None:
            query = f"voucherNumber$eq:{voucher_number}$and:{query}"
        try:
            answer = self.economic.request("GET", f"/accounting-years/{year_in_url(year)}/entries",
                                           params={"filter": query, "pagesize": PAGE})
        except EconomicError as error:
            if error.status == 404:
                return []
            raise
        return (answer or {}).get("collection") or []

    @staticmethod
    def _key_window_passed(state: EntryState) -> bool:
        first = state.first_attempt_at
        if first is None:
            return False
        if first.tzinfo is None:
            first = first.replace(tzinfo=timezone.utc)
        return datetime.now(timezone.utc) - first > KEY_WINDOW

    @staticmethod
    def _entry_view(kind_name: str, entry: dict) -> dict:
        view = {"type": {"customerPayments": "customer payment", "financeVouchers": "finance"}.get(kind_name, kind_name),
                "amount": str(entry["amount"]), "currency": entry["currency"]["code"], "date": entry["date"],
                "text": entry["text"], "contra_account": entry["contraAccount"]["accountNumber"]}
        if "customer" in entry:
            view.update(customer=entry["customer"]["customerNumber"], customer_invoice=entry.get("customerInvoice"))
        else:
            view["account"] = entry["account"]["accountNumber"]
        return view

    # -- small helpers --------------------------------------------------------------------------------------

    def _get(self, path: str, **params) -> dict:
        """A Stripe object or list as plain JSON, through the SDK's raw_request (as stripe_source reads invoices)."""
        return json.loads(self.stripe.raw_request("get", path, **params).body)

    def _switched_on(self, setting: str, label: str) -> None:
        if not getattr(self.choices, setting):
            raise SyncSkipped(f"“{label}” is off (Journal entries settings): nothing was entered.")

    def _chosen(self, *names: str) -> tuple[int, ...]:
        missing = [name for name in names if getattr(self.choices, name) in (None, "")]
        if missing:
            raise JournalSettingMissing(missing)
        return tuple(int(getattr(self.choices, name)) for name in names)

    def _day(self, timestamp: int | None) -> date:
        moment = datetime.fromtimestamp(timestamp, timezone.utc) if timestamp else datetime.now(timezone.utc)
        return moment.astimezone(self.zone).date()

    @staticmethod
    def _calendar_day(timestamp: int) -> date:
        """A date Stripe gives as midnight UTC (a payout's `arrival_date`): that date, in any time zone."""
        return datetime.fromtimestamp(timestamp, timezone.utc).date()

    def _year(self, day: date) -> str:
        try:
            return accounting_year_for(self.economic, day)
        except LookupError as error:
            raise SyncFailure(f"{error} Then press Sync again.") from None

    @staticmethod
    def _amount(minor: int, currency: str, what: str) -> Decimal:
        """Minor units as e-conomic takes them (2 decimals at most), or the run is held."""
        amount = from_minor(minor, currency)
        if not has_at_most_2_decimals(amount):
            raise SyncHeld(f"The {what} is {format_money(amount, currency)}, with three decimals; e-conomic's entries "
                           "take two, so it cannot be entered exactly. Enter it by hand; nothing was entered.")
        return amount
