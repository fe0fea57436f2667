"""The journal-entry engine (portal/sync/ledger.py) against the running doubles of Stripe and e-conomic: what an
accountant checks after booking the journal, to the minor unit — the invoice's remainder, the Stripe balance
(clearing) account, the bank and the fees — and that no attempt, retried or late, enters anything twice.

Amounts: DKK øre unless said otherwise; Stripe's fee rule in the double is 1.5 % (rounded half up) + 1.80 kr."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest
import requests

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe, FeeRule, make_invoice
from portal.sync.economic import EconomicClient
from portal.sync.errors import SettingMissing, SyncFailure, SyncHeld, SyncSkipped, SyncWaiting
from portal.sync.journal_choices import JournalChoices
from portal.sync.ledger import TEXT_LIMIT, EntryState, LedgerEngine
from portal.sync.stripe_source import stripe_client

DAY = 86400
T0 = 1794000000  # 2026-11-06 21:20 UTC, 22:20 in Copenhagen
HEADERS = {"X-AppSecretToken": "app", "X-AgreementGrantToken": "grant"}
CUSTOMER = 5001  # in customer group 1, whose debtor account is 5600
DEBTORS, BANK, STRIPE_BALANCE, FEES = 5600, 5820, 5830, 7220
VOUCHERS = "/journals/1/vouchers"
CHOICES = JournalChoices(payments_enabled=True, refunds_enabled=True, payouts_enabled=True, journal_number=1,
                         stripe_balance_account=STRIPE_BALANCE, bank_account=BANK, fees_account=FEES)


def fee_of(amount: int) -> int:
    return int((Decimal(amount) * Decimal("1.5") / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + 180


def kroner(ore: int) -> Decimal:
    return Decimal(ore).scaleb(-2)


class Recorder:
    """The engine's reports in the order made; `voucher_create_started` notes how many voucher POSTs the fake
    e-conomic had seen by then (none: it is persisted before the POST it announces)."""

    def __init__(self, economic: FakeEconomic) -> None:
        self.economic = economic
        self.events: list[tuple] = []
        self.steps: list[dict] = []
        self.described: tuple | None = None
        self.known: tuple | None = None
        self.posts_when_started: list[int] = []

    def step(self, step, outcome, *, numbers=None, summary=None, error=None, duration_ms=0):
        assert isinstance(duration_ms, int) and duration_ms >= 0
        self.events.append(("step", step, outcome))
        self.steps.append({"step": step, "outcome": outcome, "numbers": numbers, "summary": summary, "error": error})

    def entry_described(self, invoice_number, customer_name, currency, amount_minor):
        self.events.append(("entry_described",))
        self.described = (invoice_number, customer_name, currency, amount_minor)

    def voucher_create_started(self):
        self.events.append(("voucher_create_started",))
        self.posts_when_started.append(len(self.economic.posts(VOUCHERS)))

    def voucher_known(self, journal_number, accounting_year, voucher_number):
        self.events.append(("voucher_known",))
        self.known = (journal_number, accounting_year, voucher_number)

    def outcomes(self):
        return [(s["step"], s["outcome"]) for s in self.steps]


@dataclass
class Books:
    invoices: dict[str, tuple[int, int]] = field(default_factory=dict)  # Stripe invoice → (customer, booked number)
    payments: dict[str, bool] = field(default_factory=dict)  # pi_… or ch_… → its payment run succeeded?

    def booked_invoice(self, stripe_invoice_id):
        return self.invoices.get(stripe_invoice_id)

    def payment_entered(self, stripe_payment_intent_or_charge_id):
        return self.payments.get(stripe_payment_intent_or_charge_id)

    def invoices_of_payments(self, stripe_payment_refs):
        return {}  # nothing known: the engine asks Stripe


@dataclass
class World:
    stripe: FakeStripe
    economic: FakeEconomic
    books: Books = field(default_factory=Books)
    runs: int = 0

    def engine(self, choices: JournalChoices = CHOICES, timezone_name: str = "Europe/Copenhagen"):
        recorder = Recorder(self.economic)
        engine = LedgerEngine(stripe_client("sk_test_fake", self.stripe.url, max_network_retries=0),
                              EconomicClient("app", "grant", base_url=self.economic.url, timeout=(5, 10)),
                              choices, recorder, self.books, timezone=timezone_name)
        return engine, recorder

    def state(self, kind: str, stripe_id: str, **fields) -> EntryState:
        if "run_id" not in fields:
            self.runs += 1
            fields["run_id"] = 100 + self.runs
        return EntryState(kind=kind, stripe_object_id=stripe_id, **fields)

    def invoice(self, number: str, net: int, currency: str = "dkk", *, booked: bool = True, created: int = T0) -> dict:
        """An open Stripe invoice of one line at `net` with 25 % VAT, and (`booked`) its booked e-conomic invoice
        for the same gross, which the Books know of."""
        invoice, customer, products = make_invoice(number=number, lines=[("Consulting hour", "1", net)], status="open",
                                                   created=created)
        invoice["currency"] = currency
        invoice = self.stripe.add_invoice(invoice, customer, products)
        if booked:
            self.books.invoices[invoice["id"]] = (CUSTOMER, self.book_in_economic(net, currency)["bookedInvoiceNumber"])
        return invoice

    def book_in_economic(self, net: int, currency: str) -> dict:
        price = float(Decimal(net).scaleb(-2 if currency != "jpy" else 0))
        draft = call(self.economic, "POST", "/invoices/drafts", {
            "date": "2026-11-06", "currency": currency.upper(), "layout": {"layoutNumber": 19},
            "paymentTerms": {"paymentTermsNumber": 1}, "customer": {"customerNumber": CUSTOMER},
            "recipient": {"name": "Kystlys Studio ApS", "vatZone": {"vatZoneNumber": 1}},
            "lines": [{"lineNumber": 1, "description": "Consulting hour", "quantity": 1, "unitNetPrice": price,
                       "product": {"productNumber": "SERVICE"}}]})
        assert draft.status_code == 201, draft.text
        booked = call(self.economic, "POST", "/invoices/booked",
                      {"draftInvoice": {"draftInvoiceNumber": draft.json()["draftInvoiceNumber"]}})
        assert booked.status_code == 201, booked.text
        return booked.json()

    def remainder(self, stripe_invoice: dict) -> Decimal:
        number = self.books.invoices[stripe_invoice["id"]][1]
        return Decimal(str(call(self.economic, "GET", f"/invoices/booked/{number}").json()["remainder"]))

    def charge_of(self, invoice_payment: dict) -> str:
        return self.stripe.payment_intents[invoice_payment["payment"]["payment_intent"]]["latest_charge"]

    def pay_and_enter(self, invoice: dict, at: int, amount: int | None = None) -> dict:
        """Pay on Stripe and enter the payment, as its run would; the Books then know it is entered."""
        paid = self.stripe.pay_invoice(invoice["id"], amount, at=at)
        engine, _ = self.engine()
        engine.payment(self.state("payment", paid["id"], stripe_invoice_id=invoice["id"]))
        self.books.payments[paid["payment"]["payment_intent"]] = True
        return paid


def call(fake, method, path, body=None, **params):
    return requests.request(method, fake.url + path, headers=HEADERS, json=body, params=params or None, timeout=10)


@pytest.fixture
def world():
    with FakeStripe() as stripe_fake, FakeEconomic() as economic_fake:
        stripe_fake.clock = T0 + 60 * DAY
        economic_fake.add_customer(CUSTOMER, name="Kystlys Studio ApS", customerGroup={"customerGroupNumber": 1})
        economic_fake.add_product("SERVICE", "Consulting hour")  # group 1: 25 % VAT at home
        yield World(stripe_fake, economic_fake)


def only_voucher(world: World) -> dict:
    [voucher] = world.economic.vouchers(1)
    return voucher


# -- customer payments --------------------------------------------------------------------------------------

def test_a_booked_invoice_paid_is_one_customer_payment_that_settles_it_after_booking(world):
    invoice = world.invoice("NL-0042", 800000)  # 8,000.00 + 25 % = 10,000.00
    customer, booked_number = world.books.invoices[invoice["id"]]
    assert world.remainder(invoice) == Decimal("10000.00")
    paid = world.stripe.pay_invoice(invoice["id"], at=T0 + 3600)

    engine, recorder = world.engine()
    state = world.state("payment", paid["id"], stripe_invoice_id=invoice["id"])
    outcome = engine.payment(state)

    voucher = only_voucher(world)
    [entry] = voucher["entries"]["customerPayments"]
    assert (entry["customer"]["customerNumber"], entry["customerInvoice"], entry["amount"], entry["currency"]["code"]) == \
        (customer, booked_number, -10000.0, "DKK")
    assert (entry["contraAccount"]["accountNumber"], entry["date"]) == (STRIPE_BALANCE, "2026-11-06")
    assert entry["text"] == f"Stripe payment NL-0042 Kystlys Studio ApS ({paid['id']})"
    assert set(voucher["entries"]) == {"customerPayments"}
    assert (outcome.journal_number, outcome.accounting_year, outcome.voucher_number) == (1, "2026", voucher["voucherNumber"])
    assert (outcome.amount, outcome.currency, outcome.found, outcome.economic_calls) == (Decimal("10000.00"), "DKK", False, 2)
    assert outcome.entries == [{"type": "customer payment", "customer": customer, "customer_invoice": booked_number,
                                "contra_account": STRIPE_BALANCE, "amount": "-10000.00", "currency": "DKK",
                                "date": "2026-11-06", "text": entry["text"]}]
    assert outcome.summary() == f"voucher {voucher['voucherNumber']} in journal 1 (2026): 10,000.00 DKK"

    # the POST was announced first, carried a key, and what e-conomic made was reported right after
    [post] = world.economic.posts(VOUCHERS)
    assert post["headers"]["Idempotency-Key"].startswith("invoice-sync-")
    assert recorder.posts_when_started == [0]
    assert [e[0] for e in recorder.events] == ["entry_described", "step", "voucher_create_started", "voucher_known", "step"]
    assert recorder.outcomes() == [("fetch", "found"), ("voucher", "created")]
    assert recorder.described == ("NL-0042", invoice["customer_name"], "DKK", 1000000)
    assert recorder.known == (1, "2026", voucher["voucherNumber"])
    assert (state.voucher_create_started, state.voucher_number) == (True, voucher["voucherNumber"])

    # nothing moves until the accountant books the journal; then the invoice is paid and Stripe holds the money
    assert world.remainder(invoice) == Decimal("10000.00")
    world.economic.book_journal(1)
    assert world.remainder(invoice) == 0
    assert world.economic.account_balance(STRIPE_BALANCE) == Decimal("10000.00")
    assert world.economic.account_balance(DEBTORS) == 0


def test_a_part_payment_enters_its_own_amount_and_leaves_the_rest_due(world):
    invoice = world.invoice("NL-0043", 800000)
    part = world.stripe.pay_invoice(invoice["id"], 400000, at=T0 + 3600)  # 4,000.00 of 10,000.00
    engine, _ = world.engine()
    outcome = engine.payment(world.state("payment", part["id"]))
    [entry] = only_voucher(world)["entries"]["customerPayments"]
    assert (entry["amount"], outcome.amount) == (-4000.0, Decimal("4000.00"))
    world.economic.book_journal(1)
    assert world.remainder(invoice) == Decimal("6000.00")
    assert world.economic.account_balance(STRIPE_BALANCE) == Decimal("4000.00")

    rest = world.stripe.pay_invoice(invoice["id"], at=T0 + 2 * DAY)  # the rest, through the default payment
    engine, _ = world.engine()
    assert engine.payment(world.state("payment", rest["id"])).amount == Decimal("6000.00")
    world.economic.book_journal(1)
    assert world.remainder(invoice) == 0 and world.economic.account_balance(STRIPE_BALANCE) == Decimal("10000.00")


def test_a_payment_outside_stripe_is_skipped_and_nothing_is_posted(world):
    invoice = world.invoice("NL-0044", 800000)
    oob = world.stripe.pay_invoice(invoice["id"], out_of_band=True, at=T0 + 3600)
    engine, recorder = world.engine()
    with pytest.raises(SyncSkipped) as skipped:
        engine.payment(world.state("payment", oob["id"]))
    assert skipped.value.reason == (f"Paid outside Stripe ({oob['payment']['payment_record']}): enter it in e-conomic "
                                    "where the money arrived; nothing was entered.")
    assert world.economic.posts(VOUCHERS) == [] and recorder.outcomes() == [("fetch", "skipped")]
    assert recorder.described == ("NL-0044", invoice["customer_name"], "DKK", 1000000)


def test_a_payment_before_its_invoice_is_booked_waits_for_it(world):
    invoice = world.invoice("NL-0045", 800000, booked=False)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0 + 3600)
    engine, recorder = world.engine()
    with pytest.raises(SyncWaiting) as waiting:
        engine.payment(world.state("payment", paid["id"]))
    assert waiting.value.reason.startswith("Waits for invoice NL-0045 to be booked in e-conomic: ")
    assert recorder.outcomes() == [("fetch", "found"), ("voucher", "waiting")]
    assert world.economic.posts(VOUCHERS) == [] and world.economic.vouchers(1) == []


def test_payments_turned_off_are_skipped_naming_the_setting(world):
    invoice = world.invoice("NL-0046", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    engine, _ = world.engine(replace(CHOICES, payments_enabled=False))
    with pytest.raises(SyncSkipped, match="^“Enter customer payments” is off \\(Journal entries settings\\): nothing"):
        engine.payment(world.state("payment", paid["id"]))
    assert [r for r in world.economic.requests if "/journals" in r["path"] or "/accounting-years" in r["path"]] == []


def test_what_e_conomic_refuses_fails_in_its_words_with_where_to_look(world):
    invoice = world.invoice("NL-0051", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    engine, recorder = world.engine(replace(CHOICES, stripe_balance_account=5800))  # a heading: takes no entries
    with pytest.raises(SyncFailure) as refused:
        engine.payment(world.state("payment", paid["id"]))
    assert not refused.value.transient
    assert refused.value.message.startswith("e-conomic refused the payment's voucher: e-conomic answered 400: Validation "
                                            "failed. 1 error found.")
    assert ("(entries.customerPayments.items[0].contraAccount: Account 5800 (Likvide beholdninger) is of type heading "
            "and cannot take entries.)") in refused.value.message
    assert refused.value.message.endswith(". Check the journal and accounts under Journal entries settings, then press "
                                          "Sync again.")
    assert recorder.outcomes() == [("fetch", "found"), ("voucher", "failed")] and world.economic.vouchers(1) == []


def test_missing_settings_fail_naming_each_setting(world):
    invoice = world.invoice("NL-0047", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    engine, recorder = world.engine(replace(CHOICES, journal_number=None, stripe_balance_account=None))
    with pytest.raises(SyncFailure) as failed:
        engine.payment(world.state("payment", paid["id"]))
    assert isinstance(failed.value, SettingMissing) and not failed.value.transient
    assert failed.value.message == ("Journal and Stripe balance account are not chosen (Journal entries settings): "
                                    "nothing was entered.")
    assert failed.value.anchor == "journal-and-accounts"
    assert recorder.outcomes()[-1] == ("voucher", "failed")

    world.stripe.make_payout(at=T0 + 8 * DAY)
    payout_id = next(iter(world.stripe.payouts))
    engine, _ = world.engine(replace(CHOICES, bank_account=None, fees_account=None))
    with pytest.raises(SettingMissing, match="^Bank account and Fees account are not chosen"):
        engine.payout(world.state("payout", payout_id))
    assert world.economic.vouchers(1) == []


def test_entries_are_dated_in_the_merchants_time_zone_and_its_accounting_year(world):
    new_year = int(datetime(2025, 12, 31, 23, 30, tzinfo=timezone.utc).timestamp())  # 00:30 on 1 January in Copenhagen
    invoice = world.invoice("NL-0048", 800000, created=new_year - DAY)
    paid = world.stripe.pay_invoice(invoice["id"], at=new_year)
    engine, _ = world.engine()
    outcome = engine.payment(world.state("payment", paid["id"]))
    assert (outcome.accounting_year, outcome.entries[0]["date"]) == ("2026", "2026-01-01")

    other = world.invoice("NL-0049", 800000, created=new_year - DAY)
    paid = world.stripe.pay_invoice(other["id"], at=new_year)
    engine, _ = world.engine(timezone_name="UTC")
    outcome = engine.payment(world.state("payment", paid["id"]))
    assert (outcome.accounting_year, outcome.entries[0]["date"]) == ("2025", "2025-12-31")


def test_a_long_text_is_cut_to_e_conomics_limit_keeping_the_stripe_id(world):
    invoice = world.invoice("NL-0050", 800000)
    world.stripe.invoices[invoice["id"]]["customer_name"] = "Nordisk Lys og Lampe Kompagni " * 4  # 120 characters
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    template = "Indbetaling {invoice_number} fra " * 5 + "{customer_name}"  # 200 characters, the most allowed
    engine, _ = world.engine(replace(CHOICES, payment_text=template))
    engine.payment(world.state("payment", paid["id"]))
    [entry] = only_voucher(world)["entries"]["customerPayments"]
    whole = replace(CHOICES, payment_text=template).text("payment", invoice_number="NL-0050",
                                                         customer_name="Nordisk Lys og Lampe Kompagni " * 4)
    suffix = f" ({paid['id']})"
    assert len(whole) + len(suffix) > TEXT_LIMIT == len(entry["text"])
    assert entry["text"] == whole[:TEXT_LIMIT - len(suffix)] + suffix  # the customer's name cut, never the id


def test_jpy_has_no_minor_unit_and_is_entered_in_yen(world):
    invoice = world.invoice("JP-0001", 10000, currency="jpy")  # 10,000 yen + 25 % = 12,500 yen
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    engine, recorder = world.engine()
    outcome = engine.payment(world.state("payment", paid["id"]))
    [entry] = only_voucher(world)["entries"]["customerPayments"]
    assert (entry["amount"], entry["currency"]["code"], entry["amountBaseCurrency"]) == (-12500.0, "JPY", -575.0)
    assert (outcome.amount, outcome.entries[0]["amount"], outcome.summary().endswith(": 12,500 JPY")) == \
        (Decimal("12500"), "-12500", True)
    assert recorder.described[2:] == ("JPY", 12500)
    world.economic.book_journal(1)
    assert world.remainder(invoice) == 0
    assert world.economic.account_balance(STRIPE_BALANCE) == Decimal("575.00")  # at e-conomic's 4.60 DKK per 100 yen


# -- refunds ------------------------------------------------------------------------------------------------

def test_a_refund_of_part_of_a_paid_invoice_reverses_that_much_of_the_payment(world):
    invoice = world.invoice("NL-0060", 800000)
    paid = world.pay_and_enter(invoice, T0)
    refund = world.stripe.refund(world.charge_of(paid), 250000, at=T0 + 2 * DAY)  # 2,500.00 back to the customer

    engine, recorder = world.engine()
    outcome = engine.refund(world.state("refund", refund["id"]))
    customer, booked_number = world.books.invoices[invoice["id"]]
    vouchers = world.economic.vouchers(1)
    [entry] = vouchers[-1]["entries"]["customerPayments"]
    assert (entry["customer"]["customerNumber"], entry["customerInvoice"]) == (customer, booked_number)
    assert entry["amount"] == 2500.0  # positive: the debtor is debited again, the Stripe balance credited
    assert (entry["contraAccount"]["accountNumber"], entry["date"]) == (STRIPE_BALANCE, "2026-11-08")
    assert entry["text"] == f"Stripe refund NL-0060 Kystlys Studio ApS ({refund['id']})"
    assert (outcome.amount, len(vouchers)) == (Decimal("2500.00"), 2)
    assert recorder.described == ("NL-0060", invoice["customer_name"], "DKK", 250000)
    assert recorder.outcomes() == [("fetch", "found"), ("voucher", "created")]

    world.economic.book_journal(1)
    assert world.remainder(invoice) == Decimal("2500.00")  # the refunded part is due again until a credit note
    assert world.economic.account_balance(STRIPE_BALANCE) == Decimal("7500.00")
    assert world.economic.account_balance(DEBTORS) == Decimal("2500.00")


def test_a_refund_waits_for_the_payment_it_reverses_to_be_entered(world):
    invoice = world.invoice("NL-0061", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    world.books.payments[paid["payment"]["payment_intent"]] = False  # its run exists, not done
    refund = world.stripe.refund(world.charge_of(paid), 100000, at=T0 + DAY)
    engine, _ = world.engine()
    with pytest.raises(SyncWaiting, match="^Waits for the payment of invoice NL-0061 \\(pi_"):
        engine.refund(world.state("refund", refund["id"]))
    assert world.economic.vouchers(1) == []


def test_a_refund_bigger_than_the_payment_is_held(world):
    invoice = world.invoice("NL-0062", 800000)
    paid = world.pay_and_enter(invoice, T0)
    # The payment intent carried more than the invoice got (say, 2,000.00 went to the customer's balance).
    world.stripe.invoice_payments[paid["id"]]["amount_paid"] = 800000
    refund = world.stripe.refund(world.charge_of(paid), 900000, at=T0 + DAY)
    engine, recorder = world.engine()
    with pytest.raises(SyncHeld) as held:
        engine.refund(world.state("refund", refund["id"]))
    assert held.value.reason == ("Stripe's refund of 9,000.00 DKK is more than the 8,000.00 DKK paid on invoice NL-0062. "
                                 "Enter it by hand; nothing was entered.")
    assert recorder.outcomes() == [("fetch", "found"), ("voucher", "held")]
    assert len(world.economic.vouchers(1)) == 1  # the payment only


def test_a_refund_of_an_invoice_we_do_not_sync_is_held(world):
    invoice = world.invoice("NL-0063", 800000, booked=False)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    refund = world.stripe.refund(world.charge_of(paid), 100000, at=T0 + DAY)
    engine, _ = world.engine()
    with pytest.raises(SyncHeld) as held:
        engine.refund(world.state("refund", refund["id"]))
    assert held.value.reason.startswith("This refund is not for a synced invoice: invoice NL-0063 has no booked invoice ")

    # a payment Stripe links to no invoice at all (a charge made outside Invoicing)
    other = world.invoice("NL-0064", 800000)
    paid = world.stripe.pay_invoice(other["id"], at=T0)
    del world.stripe.invoice_payments[paid["id"]]
    refund = world.stripe.refund(world.charge_of(paid), 100000, at=T0 + DAY)
    engine, _ = world.engine()
    with pytest.raises(SyncHeld) as held:
        engine.refund(world.state("refund", refund["id"]))
    assert held.value.reason.startswith(f"This refund is not for a synced invoice: Stripe lists no invoice paid by the "
                                        f"payment it refunds ({paid['payment']['payment_intent']}).")
    assert world.economic.vouchers(1) == []


# -- payouts ------------------------------------------------------------------------------------------------

def test_a_payout_of_three_charges_a_refund_and_fees_is_one_voucher_that_clears_the_stripe_balance(world):
    first, second, third = (world.invoice("NL-0101", 800000), world.invoice("NL-0102", 160000),
                            world.invoice("NL-0103", 39600))  # 10,000.00, 2,000.00 and 495.00 gross
    payments = [world.pay_and_enter(invoice, T0 + n * 3600) for n, invoice in enumerate((first, second, third))]
    refund = world.stripe.refund(world.charge_of(payments[0]), 250000, at=T0 + DAY)
    engine, _ = world.engine()
    engine.refund(world.state("refund", refund["id"]))
    payout = world.stripe.make_payout(at=T0 + 8 * DAY)

    fees = fee_of(1000000) + fee_of(200000) + fee_of(49500)
    assert (fees, payout["amount"]) == (15180 + 3180 + 923, 1249500 - 250000 - fees) == (19283, 980217)

    engine, recorder = world.engine()
    outcome = engine.payout(world.state("payout", payout["id"]))

    voucher = world.economic.vouchers(1)[-1]
    assert set(voucher["entries"]) == {"financeVouchers"}
    fee_entry, payout_entry = voucher["entries"]["financeVouchers"]
    assert (fee_entry["account"]["accountNumber"], fee_entry["contraAccount"]["accountNumber"], fee_entry["amount"]) == \
        (FEES, STRIPE_BALANCE, 192.83)
    assert (payout_entry["account"]["accountNumber"], payout_entry["contraAccount"]["accountNumber"],
            payout_entry["amount"]) == \
        (BANK, STRIPE_BALANCE, 9802.17)
    assert fee_entry["date"] == payout_entry["date"] == "2026-11-16"  # the arrival date, in Copenhagen
    assert fee_entry["text"] == f"Stripe fees ({payout['id']})"
    assert payout_entry["text"] == f"Stripe payout ({payout['id']})"
    assert [e["amount"] for e in outcome.entries] == ["192.83", "9802.17"]
    assert Decimal("192.83") + Decimal("9802.17") == Decimal("12495.00") - Decimal("2500.00")  # what went in, less refunds
    assert outcome.totals == {"charges": "12495.00", "refunds": "2500.00", "fees": "192.83", "adjustments": "0.00",
                              "payout": "9802.17"}
    assert (outcome.amount, outcome.currency, outcome.notes) == (Decimal("9802.17"), "DKK", [])
    assert recorder.outcomes() == [("fetch", "found"), ("reconcile", "done"), ("voucher", "created")]
    assert recorder.described == (None, None, "DKK", 980217)

    # the Payouts view: each transaction, its source and the invoice Stripe links it to
    by_source = {t["source"]: t for t in outcome.transactions}
    assert len(outcome.transactions) == 4
    charge = by_source[world.charge_of(payments[1])]
    assert (charge["type"], charge["amount"], charge["fee"], charge["net"], charge["invoice"], charge["invoice_number"]) == \
        ("charge", "2000.00", "31.80", "1968.20", second["id"], "NL-0102")
    back = by_source[refund["id"]]
    assert (back["type"], back["amount"], back["fee"], back["invoice_number"]) == ("refund", "-2500.00", "0.00", "NL-0101")

    world.economic.book_journal(1)
    assert world.economic.account_balance(STRIPE_BALANCE) == 0  # in by payments, out by the refund, fees and payout
    assert world.economic.account_balance(BANK) == Decimal("9802.17")
    assert world.economic.account_balance(FEES) == Decimal("192.83")
    assert [world.remainder(i) for i in (first, second, third)] == [Decimal("2500.00"), 0, 0]


def test_a_payout_that_does_not_add_up_is_held_naming_the_difference(world):
    invoice = world.invoice("NL-0110", 800000)
    world.pay_and_enter(invoice, T0)
    payout = world.stripe.make_payout(at=T0 + 8 * DAY, discrepancy=1000)  # 10.00 kr. more than its transactions
    engine, recorder = world.engine()
    with pytest.raises(SyncHeld) as held:
        engine.payout(world.state("payout", payout["id"]))
    assert held.value.reason == (
        "Stripe's payout of 9,858.20 DKK is 10.00 DKK more than its transactions add up to: charges 10,000.00 DKK "
        "− refunds 0.00 DKK − fees 151.80 DKK + adjustments 0.00 DKK = 9,848.20 DKK. Nothing was entered; compare the "
        "payout with its transactions in Stripe (Balances › Payouts), then press Sync again.")
    assert held.value.totals == {"charges": "10000.00", "refunds": "0.00", "fees": "151.80", "adjustments": "0.00",
                                 "payout": "9858.20", "transactions": "9848.20", "difference": "10.00"}
    assert recorder.outcomes() == [("fetch", "found"), ("reconcile", "held")]
    assert len(world.economic.vouchers(1)) == 1  # the payment only


def test_a_payout_waits_for_the_payments_in_it_to_be_entered(world):
    entered, pending = world.invoice("NL-0120", 800000), world.invoice("NL-0121", 160000)
    world.pay_and_enter(entered, T0)
    paid = world.stripe.pay_invoice(pending["id"], at=T0 + 3600)
    world.books.payments[paid["payment"]["payment_intent"]] = False  # its run exists, not done yet
    payout = world.stripe.make_payout(at=T0 + 8 * DAY)
    engine, recorder = world.engine()
    with pytest.raises(SyncWaiting) as waiting:
        engine.payout(world.state("payout", payout["id"]))
    assert waiting.value.reason.startswith(f"Waits for the payment of invoice NL-0121 ({world.charge_of(paid)}) to be "
                                           "entered in e-conomic first")
    assert recorder.outcomes() == [("fetch", "found"), ("reconcile", "done"), ("voucher", "waiting")]

    # a charge of no synced invoice (None) does not hold the payout up
    world.books.payments[paid["payment"]["payment_intent"]] = None
    engine, _ = world.engine()
    assert engine.payout(world.state("payout", payout["id"])).amount == kroner(payout["amount"])


def test_a_payout_with_a_dispute_enters_its_fee_and_says_the_dispute_stays_on_the_stripe_balance(world):
    invoice = world.invoice("NL-0130", 800000)
    world.pay_and_enter(invoice, T0)
    world.stripe.add_adjustment(-50000, reporting_category="dispute", fee=11250, at=T0 + 2 * DAY, available_on=T0 + 2 * DAY)
    payout = world.stripe.make_payout(at=T0 + 8 * DAY)
    engine, _ = world.engine()
    outcome = engine.payout(world.state("payout", payout["id"]))
    assert outcome.totals == {"charges": "10000.00", "refunds": "0.00", "fees": "264.30", "adjustments": "-500.00",
                              "payout": "9235.70"}
    assert [e["amount"] for e in outcome.entries] == ["264.30", "9235.70"]
    assert outcome.notes == ["Adjustments of -500.00 DKK in this payout (disputes, corrections) are not entered: they "
                             "stay on the Stripe balance account until entered by hand."]
    world.economic.book_journal(1)
    assert world.economic.account_balance(STRIPE_BALANCE) == Decimal("500.00")  # the disputed amount, for the accountant


def test_a_payout_in_yen(world):
    with FakeStripe(settlement_currency="jpy", fee_rules={"jpy": FeeRule(Decimal("3.6"), 0)}) as stripe_fake:
        stripe_fake.clock = T0 + 60 * DAY
        world.stripe = stripe_fake
        invoice = world.invoice("JP-0002", 10000, currency="jpy")
        world.pay_and_enter(invoice, T0)
        payout = stripe_fake.make_payout(at=T0 + 8 * DAY)
        engine, _ = world.engine()
        outcome = engine.payout(world.state("payout", payout["id"]))
    assert outcome.totals == {"charges": "12500", "refunds": "0", "fees": "450", "adjustments": "0", "payout": "12050"}
    fee_entry, payout_entry = world.economic.vouchers(1)[-1]["entries"]["financeVouchers"]
    assert (fee_entry["amount"], payout_entry["amount"], payout_entry["currency"]["code"]) == (450.0, 12050.0, "JPY")
    assert outcome.summary().endswith(": 12,050 JPY")
    world.economic.book_journal(1)
    assert world.remainder(invoice) == 0
    assert world.economic.account_balance(STRIPE_BALANCE) == 0  # 575.00 in, 20.70 + 554.30 out


# -- once, whatever happens -----------------------------------------------------------------------------------

def test_a_retry_after_the_answer_was_lost_finds_the_voucher_and_posts_nothing_twice(world):
    invoice = world.invoice("NL-0200", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    state = world.state("payment", paid["id"], first_attempt_at=datetime.now(timezone.utc))

    world.economic.drop_after_creating.add(VOUCHERS.strip("/"))  # the POST is carried out, its answer lost
    engine, recorder = world.engine()
    with pytest.raises(SyncFailure) as lost:
        engine.payment(state)
    assert lost.value.transient and recorder.outcomes()[-1] == ("voucher", "failed")
    assert recorder.events[-2:] == [("voucher_create_started",), ("step", "voucher", "failed")]
    made = only_voucher(world)  # made, though its answer was lost

    retry = world.state("payment", paid["id"], run_id=state.run_id, attempt=2, voucher_create_started=True,
                        first_attempt_at=state.first_attempt_at)
    engine, recorder = world.engine()
    outcome = engine.payment(retry)
    assert (outcome.voucher_number, outcome.found) == (made["voucherNumber"], True)
    assert outcome.notes == [f"Voucher {made['voucherNumber']} was made by an earlier attempt; nothing was posted again."]
    assert recorder.outcomes() == [("fetch", "found"), ("voucher", "found")]
    assert recorder.known == (1, "2026", made["voucherNumber"]) and recorder.posts_when_started == []
    assert len(world.economic.posts(VOUCHERS)) == 1 and world.economic.vouchers(1) == [made]


def test_a_retry_after_a_refused_post_reuses_its_idempotency_key(world):
    invoice = world.invoice("NL-0201", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    state = world.state("payment", paid["id"])
    world.economic.timeout_next(1, seconds=0)  # the accounting years are read as usual (a pause of no length) ...
    world.economic.fail_next(1, status=503)  # ... then e-conomic refuses the POST for now
    engine, _ = world.engine()
    with pytest.raises(SyncFailure) as failed:
        engine.payment(state)
    assert failed.value.transient and world.economic.vouchers(1) == []
    engine, _ = world.engine()
    engine.payment(world.state("payment", paid["id"], run_id=state.run_id, attempt=2, voucher_create_started=True))
    keys = {post["headers"]["Idempotency-Key"] for post in world.economic.posts(VOUCHERS)}
    assert len(world.economic.posts(VOUCHERS)) == 2 and len(keys) == 1 and len(world.economic.vouchers(1)) == 1


def test_past_the_key_window_an_earlier_voucher_is_found_by_its_text(world):
    invoice = world.invoice("NL-0202", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    first = world.state("payment", paid["id"], first_attempt_at=datetime.now(timezone.utc))
    engine, _ = world.engine()
    made = engine.payment(first)  # posted; say the worker died before the run recorded the voucher
    world.economic.expire_idempotency_keys()  # two hours later, a repeated key would be a new voucher
    first.first_attempt_at -= timedelta(hours=2)

    retry = world.state("payment", paid["id"], run_id=first.run_id, attempt=2, voucher_create_started=True,
                        first_attempt_at=first.first_attempt_at)
    engine, _ = world.engine()
    outcome = engine.payment(retry)
    assert (outcome.voucher_number, outcome.found) == (made.voucher_number, True)
    assert len(world.economic.posts(VOUCHERS)) == 1 and len(world.economic.vouchers(1)) == 1
    lookups = [r["query"].get("filter") for r in world.economic.requests if r["path"] == "/journals/1/entries"]
    assert lookups == [f"text$like:{paid['id']}"]

    # booked by the accountant in between: the voucher is in the accounts, not in the journal, and still found
    world.economic.book_journal(1)
    engine, _ = world.engine()
    again = engine.payment(world.state("payment", paid["id"], run_id=first.run_id, attempt=3, voucher_create_started=True,
                                       first_attempt_at=first.first_attempt_at))
    assert (again.voucher_number, again.found) == (made.voucher_number, True)
    assert again.notes[-1] == f"The journal was booked since: voucher {made.voucher_number} is in the accounts."
    assert len(world.economic.posts(VOUCHERS)) == 1 and world.remainder(invoice) == 0


def test_a_known_voucher_is_checked_and_made_anew_only_if_it_was_deleted(world):
    invoice = world.invoice("NL-0203", 800000)
    paid = world.stripe.pay_invoice(invoice["id"], at=T0)
    state = world.state("payment", paid["id"])
    engine, _ = world.engine()
    made = engine.payment(state)

    again = world.state("payment", paid["id"], run_id=state.run_id, attempt=2, voucher_create_started=True,
                        journal_number=1, accounting_year="2026", voucher_number=made.voucher_number)
    engine, _ = world.engine()
    assert engine.payment(again).found and len(world.economic.posts(VOUCHERS)) == 1

    [entry] = call(world.economic, "GET", "/journals/1/entries").json()["collection"]
    assert call(world.economic, "DELETE", f"/journals/1/entries/{entry['journalEntryNumber']}").status_code == 204
    engine, _ = world.engine()
    remade = engine.payment(again)
    assert not remade.found and len(world.economic.vouchers(1)) == 1
    first_key, second_key = (post["headers"]["Idempotency-Key"] for post in world.economic.posts(VOUCHERS))
    assert first_key != second_key  # the first key would replay the deleted voucher's answer
