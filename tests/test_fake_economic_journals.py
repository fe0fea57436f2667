"""The fake e-conomic's journals ("kassekladder"), vouchers, accounts and accounting years behave like
e-conomic's: a voucher is made only when its year, dates, accounts, customer, invoice, currency and amounts
are right and it balances; booking a journal moves it to the ledger and settles the invoices it pays. The
client functions in portal/sync/economic_journals.py are exercised against the running double."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
import requests

from doubles.economic import FakeEconomic
from portal.sync.economic import EconomicClient, EconomicError
from portal.sync.economic_journals import (
    Account, Journal, accounting_year_for, accounts_list, filter_escape, journal_vouchers_find, journals_list,
    voucher_post,
)

HEADERS = {"X-AppSecretToken": "app", "X-AgreementGrantToken": "grant"}


@pytest.fixture
def fake():
    with FakeEconomic() as fake:
        fake.add_customer(5001, name="Kystlys Studio ApS", customerGroup={"customerGroupNumber": 1})
        fake.add_customer(5002, name="Lampe GmbH", currency="EUR", customerGroup={"customerGroupNumber": 2})
        fake.add_product("SERVICE", "Consulting hour")  # group 1: 25 % at home, 0 % abroad
        yield fake


@pytest.fixture
def client(fake):
    return EconomicClient("app", "grant", base_url=fake.url, timeout=(5, 10))


def call(fake, method, path, body=None, key=None, **params):
    headers = {**HEADERS, **({"Idempotency-Key": key} if key else {})}
    return requests.request(method, fake.url + path, headers=headers, json=body, params=params or None, timeout=10)


def booked_invoice(fake, customer=5001, currency="DKK", zone=1, price=100):
    """Book an invoice of one consulting hour at `price` (125.00 DKK gross at home) and return it."""
    draft = call(fake, "POST", "/invoices/drafts", {
        "date": "2026-03-02", "currency": currency, "layout": {"layoutNumber": 19}, "paymentTerms": {"paymentTermsNumber": 1},
        "customer": {"customerNumber": customer}, "recipient": {"name": "Customer", "vatZone": {"vatZoneNumber": zone}},
        "lines": [{"lineNumber": 1, "description": "Hour", "quantity": 1, "unitNetPrice": price,
                   "product": {"productNumber": "SERVICE"}}]})
    assert draft.status_code == 201, draft.text
    booked = call(fake, "POST", "/invoices/booked", {"draftInvoice": {"draftInvoiceNumber": draft.json()["draftInvoiceNumber"]}})
    assert booked.status_code == 201, booked.text
    return booked.json()


def fee(amount=3.88, day="2026-03-05", text="Stripe fee ch_1", **fields):
    """A finance entry: a Stripe fee from the clearing account 5830 to fees 7220."""
    return {"account": {"accountNumber": 7220}, "contraAccount": {"accountNumber": 5830}, "amount": amount, "date": day,
            "text": text, **fields}


def voucher(*finance, payments=(), year="2026", **fields):
    entries = {}
    if finance:
        entries["financeVouchers"] = list(finance)
    if payments:
        entries["customerPayments"] = list(payments)
    return {"accountingYear": {"year": year}, "entries": entries, **fields}


def payment(invoice=None, amount=-125, customer=5001, contra=5830, day="2026-03-05", text="Stripe payment ch_1"):
    """A customer payment received on the Stripe clearing account (a credit to the customer: negative)."""
    entry = {"customer": {"customerNumber": customer}, "amount": amount, "date": day, "text": text}
    if contra is not None:
        entry["contraAccount"] = {"accountNumber": contra}
    if invoice is not None:
        entry["customerInvoice"] = invoice
    return entry


def errors_at(answer, *path):
    """The error messages e-conomic put at `path`; an int in `path` is an array index (`items`/`arrayIndex`)."""
    node = answer.json()["errors"]
    for step in path:
        node = next(item for item in node["items"] if item["arrayIndex"] == step) if isinstance(step, int) else node[step]
    return [error["errorMessage"] for error in node["errors"]]


# -- journals, accounts, accounting years -------------------------------------------------------------

def test_journals_are_listed_and_read_one_by_one(fake):
    journals = call(fake, "GET", "/journals").json()
    assert [(j["journalNumber"], j["name"]) for j in journals["collection"]] == [(1, "Kassekladde"), (2, "Indbetalinger")]
    assert journals["pagination"]["results"] == 2
    one = call(fake, "GET", "/journals/1").json()
    assert one["settings"]["voucherNumbers"] == {"minimumVoucherNumber": 1, "maximumVoucherNumber": 999999999}
    assert "entryTypeRestrictedTo" not in one["settings"]
    assert one["vouchers"] == f"{fake.url}/journals/1/vouchers" and one["entries"] == f"{fake.url}/journals/1/entries"
    assert one["templates"]["self"] == f"{fake.url}/journals/1/templates" and one["self"] == f"{fake.url}/journals/1"
    two = call(fake, "GET", "/journals/2").json()
    assert two["settings"]["entryTypeRestrictedTo"] == "customerPayment"
    assert two["settings"]["contraAccounts"]["customerPayments"]["accountNumber"] == 5820

    fake.add_journal(7, "Stripe")
    assert [j["journalNumber"] for j in call(fake, "GET", "/journals", filter="name$like:stripe").json()["collection"]] == [7]
    missing = call(fake, "GET", "/journals/99")
    assert missing.status_code == 404 and missing.json()["message"] == "Journal '99' not found."
    refused = call(fake, "GET", "/journals", filter="settings.entryTypeRestrictedTo$eq:customerPayment")
    assert refused.status_code == 400 and "not a filterable property" in refused.json()["message"]


def test_accounts_are_served_with_their_type_and_whether_they_take_entries(fake):
    accounts = {a["accountNumber"]: a for a in call(fake, "GET", "/accounts", pagesize=1000).json()["collection"]}
    assert {5600, 5800, 5820, 5830, 5899, 7220, 1010, 14261} <= set(accounts)
    bank = accounts[5820]
    assert (bank["name"], bank["accountType"], bank["debitCredit"], bank["balance"], bank["blockDirectEntries"]) == \
        ("Bank", "status", "debit", 0.0, False)
    assert accounts[5830]["name"] == "Stripe balance" and accounts[7220]["name"] == "Gebyrer"
    assert accounts[5800]["accountType"] == "heading"
    assert accounts[5899]["accountsSummed"][0]["fromAccount"]["accountNumber"] == 5800
    assert accounts[1010]["vatAccount"]["vatCode"] == "U25" and bank["self"] == f"{fake.url}/accounts/5820"
    assert call(fake, "GET", "/accounts/5830").json()["name"] == "Stripe balance"
    assert call(fake, "GET", "/accounts/4711").status_code == 404

    status = call(fake, "GET", "/accounts", filter="accountType$eq:status$and:accountNumber$gte:5000$and:accountNumber$lt:6000")
    assert [a["accountNumber"] for a in status.json()["collection"]] == [5600, 5610, 5820, 5830]
    assert call(fake, "GET", "/accounts", filter="vatAccount.vatCode$eq:U25").status_code == 400  # not filterable

    fake.add_account(5840, "PayPal", account_type="status", debit_credit="debit")
    assert call(fake, "GET", "/accounts/5840").json()["accountType"] == "status"
    customer_group = call(fake, "GET", "/customer-groups/1").json()
    assert customer_group["account"]["accountNumber"] == 5600


def test_accounting_years_are_served_and_named_in_urls_as_e_conomic_does(fake):
    years = call(fake, "GET", "/accounting-years").json()["collection"]
    assert [(y["year"], y["fromDate"], y["toDate"], y["closed"]) for y in years] == [
        ("2025", "2025-01-01", "2025-12-31", False), ("2026", "2026-01-01", "2026-12-31", False)]
    fake.add_accounting_year("2027/2028", date(2027, 1, 1), date(2028, 6, 30))
    split = call(fake, "GET", "/accounting-years/2027_6_2028").json()
    assert split["year"] == "2027/2028" and split["self"] == f"{fake.url}/accounting-years/2027_6_2028"
    found = call(fake, "GET", "/accounting-years", filter="fromDate$lte:2027-08-01$and:toDate$gte:2027-08-01").json()
    assert [y["year"] for y in found["collection"]] == ["2027/2028"]
    assert call(fake, "GET", "/accounting-years/2030").status_code == 404


# -- creating vouchers --------------------------------------------------------------------------------

def test_one_voucher_object_is_made_and_answered_as_an_array(fake):
    answer = call(fake, "POST", "/journals/1/vouchers", voucher(fee()))
    assert answer.status_code == 201
    [made] = answer.json()
    assert made["voucherNumber"] == 1 and made["accountingYear"] == {"year": "2026", "self": f"{fake.url}/accounting-years/2026"}
    assert made["journal"] == {"journalNumber": 1, "self": f"{fake.url}/journals/1"}
    assert made["self"] == f"{fake.url}/journals/1/vouchers/2026-1"
    [entry] = made["entries"]["financeVouchers"]
    assert entry["entryType"] == "financeVoucher" and entry["amount"] == 3.88 and entry["amountBaseCurrency"] == 3.88
    assert entry["voucher"] == {"voucherNumber": 1, "self": made["self"]} and entry["journal"] == made["journal"]
    assert entry["account"] == {"accountNumber": 7220, "self": f"{fake.url}/accounts/7220"}
    assert entry["contraAccount"]["accountNumber"] == 5830 and entry["currency"]["code"] == "DKK"
    assert entry["text"] == "Stripe fee ch_1" and entry["date"] == "2026-03-05"
    assert b'"amount": 3.88' in answer.content  # a JSON number

    assert call(fake, "GET", "/journals/1/vouchers/2026-1").json() == made
    assert call(fake, "GET", "/journals/1/vouchers").json()["collection"] == [made] == fake.vouchers(1)
    assert call(fake, "GET", "/journals/1/vouchers/2026-2").status_code == 404
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee(text="second"))).json()[0]["voucherNumber"] == 2


def test_an_array_of_vouchers_is_made_whole_or_not_at_all(fake):
    answer = call(fake, "POST", "/journals/1/vouchers", [voucher(fee()), voucher(fee(amount=1.25))])
    assert answer.status_code == 201 and [v["voucherNumber"] for v in answer.json()] == [1, 2]

    refused = call(fake, "POST", "/journals/1/vouchers", [voucher(fee()), voucher(fee(account={"accountNumber": 9999}))])
    assert refused.status_code == 400
    assert errors_at(refused, 1, "entries", "financeVouchers", 0, "account") == ["Account '9999' not found."]
    assert len(fake.vouchers(1)) == 2  # the valid first voucher was not made either
    assert call(fake, "POST", "/journals/1/vouchers", []).status_code == 400


def test_voucher_numbers_come_from_the_journal_series_and_are_unique_per_year(fake):
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee(), voucherNumber=40)).json()[0]["voucherNumber"] == 40
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee())).json()[0]["voucherNumber"] == 41
    taken = call(fake, "POST", "/journals/1/vouchers", voucher(fee(), voucherNumber=40))
    assert errors_at(taken, "voucherNumber") == ["Voucher number 40 is already used in accounting year 2026."]
    other_year = call(fake, "POST", "/journals/1/vouchers", voucher(fee(day="2025-12-30"), year="2025", voucherNumber=40))
    assert other_year.status_code == 201  # unique per accounting year

    first = call(fake, "POST", "/journals/2/vouchers", voucher(payments=[payment(contra=5820)]))
    assert first.json()[0]["voucherNumber"] == 5000  # journal 2 numbers 5000-5999
    outside = call(fake, "POST", "/journals/2/vouchers", voucher(payments=[payment(contra=5820)], voucherNumber=12))
    assert errors_at(outside, "voucherNumber") == ["Voucher number 12 is outside journal 2's number series (5000-5999)."]


def refusal(fake, body, journal=1):
    answer = call(fake, "POST", f"/journals/{journal}/vouchers", body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errorCode"] == "E04300" and answer.json()["message"].startswith("Validation failed.")
    assert fake.vouchers(journal) == []
    return answer


FV = ("entries", "financeVouchers", 0)
CP = ("entries", "customerPayments", 0)


@pytest.mark.parametrize("body, path, message", [
    (voucher(fee(), year="2030"), ("accountingYear",), "Accounting year '2030' not found."),
    ({"entries": {"financeVouchers": [fee()]}}, ("accountingYear",), "Property accountingYear is required."),
    (voucher(fee(day="2027-01-02")), FV + ("date",),
     "Date 2027-01-02 is not within accounting year 2026 (2026-01-01 - 2026-12-31)."),
    (voucher({k: v for k, v in fee().items() if k != "date"}), FV + ("date",), "Property date is required."),
    (voucher(fee(day="05-03-2026")), FV + ("date",), "Property date is not a date in the format YYYY-MM-DD."),
    (voucher(fee(day="2026-02-30")), FV + ("date",), "'2026-02-30' is not a valid date."),
    (voucher({k: v for k, v in fee().items() if k != "amount"}), FV + ("amount",), "Property amount is required."),
    (voucher(fee(amount=3.885)), FV + ("amount",), "Property amount takes at most 2 decimals (3.885)."),
    (voucher(fee(text=None)), FV + ("text",), "Property text is null; leave it out instead."),
    (voucher(fee(account={"accountNumber": 9999})), FV + ("account",), "Account '9999' not found."),
    (voucher(fee(account={"accountNumber": 5800})), FV + ("account",),
     "Account 5800 (Likvide beholdninger) is of type heading and cannot take entries."),
    (voucher(fee(contraAccount={"accountNumber": 5899})), FV + ("contraAccount",),
     "Account 5899 (Likvide beholdninger i alt) is of type sumInterval and cannot take entries."),
    (voucher({"amount": 10, "date": "2026-03-05"}), FV + ("account",), "Either 'account' or 'contraAccount' is required."),
    (voucher(fee(currency={"code": "XYZ"})), FV + ("currency",), "Currency 'XYZ' not found."),
    (voucher(fee(vatAccount={"vatCode": "X99"})), FV + ("vatAccount",), "VatAccount 'X99' not found."),
    (voucher(fee(), journal={"journalNumber": 2}), ("journal",), "The voucher names journal 2 but is posted to journal 1."),
    (voucher({"account": {"accountNumber": 7220}, "amount": 10, "date": "2026-03-05"}), ("entries",),
     "The voucher does not balance: its entries add up to 10.00 DKK, not 0."),
    (voucher({"account": {"accountNumber": 5820}, "amount": 100, "date": "2026-03-05"},
             {"account": {"accountNumber": 5830}, "amount": -99.99, "date": "2026-03-05"}), ("entries",),
     "The voucher does not balance: its entries add up to 0.01 DKK, not 0."),
    ({"accountingYear": {"year": "2026"}, "entries": {}}, ("entries",),
     "A voucher needs at least one entry (financeVouchers, customerPayments, manualCustomerInvoices, supplierInvoices "
     "or supplierPayments)."),
    (voucher(payments=[{"amount": -125, "date": "2026-03-05"}]), CP + ("customer",),
     "Either 'customer' or 'contraAccount' is required."),
    (voucher(payments=[payment(customer=4711)]), CP + ("customer",), "Customer '4711' not found."),
    (voucher(payments=[payment(invoice=29999)]), CP + ("customerInvoice",), "Booked invoice '29999' not found."),
    (voucher(payments=[{**payment(), "customer": None}]),
     CP + ("customer",), "Property customer is null; leave it out instead."),
])
def test_a_voucher_e_conomic_would_refuse_is_refused_at_the_field(fake, body, path, message):
    assert errors_at(refusal(fake, body), *path) == [message]


def test_accounts_blocked_for_direct_entries_or_barred_take_none(fake):
    fake.add_account(5850, "Mellemregning", account_type="status", block_direct_entries=True)
    fake.add_account(5860, "Gammel bank", account_type="status", barred=True)
    blocked = refusal(fake, voucher(fee(contraAccount={"accountNumber": 5850})))
    assert errors_at(blocked, *FV, "contraAccount") == ["Account 5850 (Mellemregning) is blocked for direct entries."]
    barred = refusal(fake, voucher(fee(account={"accountNumber": 5860})))
    assert errors_at(barred, *FV, "account") == ["Account 5860 (Gammel bank) is barred."]


def test_a_closed_year_takes_no_vouchers(fake):
    fake.add_accounting_year("2025", date(2025, 1, 1), date(2025, 12, 31), closed=True)
    closed = refusal(fake, voucher(fee(day="2025-06-30"), year="2025"))
    assert errors_at(closed, "accountingYear") == ["Accounting year 2025 is closed for further transactions."]


def test_a_payment_names_a_booked_invoice_of_its_own_customer(fake):
    invoice = booked_invoice(fake)["bookedInvoiceNumber"]
    other = refusal(fake, voucher(payments=[payment(invoice=invoice, customer=5002)]))
    assert errors_at(other, *CP, "customerInvoice") == [f"Booked invoice {invoice} belongs to customer 5001, not to customer 5002."]
    anonymous = {k: v for k, v in payment(invoice=invoice).items() if k != "customer"}
    nameless = refusal(fake, voucher(payments=[anonymous]))
    assert errors_at(nameless, *CP, "customerInvoice") == [f"customerInvoice {invoice} needs the entry's customer."]
    made = call(fake, "POST", "/journals/1/vouchers", voucher(payments=[payment(invoice=invoice)]))
    assert made.status_code == 201 and made.json()[0]["entries"]["customerPayments"][0]["customerInvoice"] == invoice


def test_a_journal_restricted_to_customer_payments_takes_nothing_else(fake):
    answer = refusal(fake, voucher(fee()), journal=2)
    assert errors_at(answer, *FV, "entryType") == ["Journal 2 takes only entries of type customerPayment, not financeVoucher."]


def test_unknown_journals_are_404_and_every_error_counts(fake):
    assert call(fake, "POST", "/journals/99/vouchers", voucher(fee())).status_code == 404
    several = refusal(fake, voucher(fee(account={"accountNumber": 9999}, day="2027-01-01"), fee(currency={"code": "XYZ"})))
    body = several.json()
    assert body["message"] == "Validation failed. 3 errors found." and body["errorCount"] == 3
    assert [item["arrayIndex"] for item in body["errors"]["entries"]["financeVouchers"]["items"]] == [0, 1]


def test_entries_without_contra_accounts_that_sum_to_zero_make_a_voucher(fake):
    payout = voucher({"account": {"accountNumber": 5820}, "amount": 1000.00, "date": "2026-03-08", "text": "Payout po_1"},
                     {"account": {"accountNumber": 5830}, "amount": -1000.00, "date": "2026-03-08", "text": "Payout po_1"})
    answer = call(fake, "POST", "/journals/1/vouchers", payout)
    assert answer.status_code == 201 and len(answer.json()[0]["entries"]["financeVouchers"]) == 2
    assert fake.account_balance(5820) == 0 and fake.account_balance(5820, include_journals=True) == Decimal("1000.00")
    assert call(fake, "GET", "/accounts/5820").json()["draftBalance"] == 1000.0


def test_a_fee_with_vat_puts_the_vat_on_the_purchase_vat_account(fake):
    answer = call(fake, "POST", "/journals/1/vouchers", voucher(fee(amount=10.00, vatAccount={"vatCode": "I25"})))
    entry = answer.json()[0]["entries"]["financeVouchers"][0]
    assert (entry["vatAccount"]["vatCode"], entry["vatAmount"], entry["vatAmountBaseCurrency"]) == ("I25", 2.0, 2.0)
    fake.book_journal(1)
    assert (fake.account_balance(7220), fake.account_balance(14262), fake.account_balance(5830)) == \
        (Decimal("8.00"), Decimal("2.00"), Decimal("-10.00"))


# -- idempotency and faults ---------------------------------------------------------------------------

def test_the_same_idempotency_key_replays_the_first_answer(fake):
    first = call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="pay-ch_1")
    again = call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="pay-ch_1")
    assert first.status_code == again.status_code == 201 and again.headers["X-ResultFromCache"] == "true"
    assert json.loads(first.content) == json.loads(again.content) and len(fake.vouchers(1)) == 1
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="fee-ch_2").json()[0]["voucherNumber"] == 2
    fake.expire_idempotency_keys()
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="pay-ch_1").json()[0]["voucherNumber"] == 3


def test_a_refusal_is_not_remembered_under_its_key(fake):
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee(amount=1.001)), key="k").status_code == 400
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="k").status_code == 201


def test_a_lost_answer_is_recovered_with_the_same_key(fake):
    fake.fail_next(1, status=503)
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="k1").status_code == 503
    assert fake.vouchers(1) == []
    fake.drop_after_create_next()
    with pytest.raises(requests.ConnectionError):
        call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="k1")
    assert len(fake.vouchers(1)) == 1  # made, though the answer was lost
    retry = call(fake, "POST", "/journals/1/vouchers", voucher(fee()), key="k1")
    assert retry.status_code == 201 and retry.headers["X-ResultFromCache"] == "true"
    assert retry.json()[0]["voucherNumber"] == 1 and len(fake.vouchers(1)) == 1


# -- listing entries ----------------------------------------------------------------------------------

def test_entries_are_listed_by_type_and_filtered_on_text_but_vouchers_filter_on_nothing(fake):
    invoice = booked_invoice(fake)["bookedInvoiceNumber"]
    call(fake, "POST", "/journals/1/vouchers", voucher(fee(text="Stripe fee (ch_1)"), payments=[payment(invoice=invoice)]))
    call(fake, "POST", "/journals/1/vouchers", voucher(fee(text="Stripe fee ch_2")))
    entries = call(fake, "GET", "/journals/1/entries").json()["collection"]
    assert [(e["entryType"], e["journalEntryNumber"]) for e in entries] == [
        ("financeVoucher", 1), ("financeVoucher", 3), ("customerPayment", 2)]
    assert entries[2]["voucher"]["accountingYear"]["year"] == "2026" and entries[2]["amountDefaultCurrency"] == -125.0
    assert entries[0]["self"] == f"{fake.url}/journals/1/entries/1"

    found = call(fake, "GET", "/journals/1/entries", filter=f"text$like:{filter_escape('FEE (CH_1)')}").json()["collection"]
    assert [e["voucher"]["voucherNumber"] for e in found] == [1]
    by_number = call(fake, "GET", "/journals/1/entries", filter="voucher.voucherNumber$eq:2").json()["collection"]
    assert [e["text"] for e in by_number] == ["Stripe fee ch_2"]
    assert call(fake, "GET", "/journals/1/entries", filter="customer.customerNumber$eq:5001").status_code == 400
    refused = call(fake, "GET", "/journals/1/vouchers", filter="voucherNumber$eq:1")
    assert refused.status_code == 400 and "(filterable: none)" in refused.json()["message"]


def test_deleting_an_entry_can_unbalance_a_voucher_and_then_the_journal_will_not_book(fake):
    payout = voucher({"account": {"accountNumber": 5820}, "amount": 50.00, "date": "2026-03-08"},
                     {"account": {"accountNumber": 5830}, "amount": -50.00, "date": "2026-03-08"})
    call(fake, "POST", "/journals/1/vouchers", payout)
    assert call(fake, "DELETE", "/journals/1/entries/2").status_code == 204
    assert call(fake, "DELETE", "/journals/1/entries/2").status_code == 404
    with pytest.raises(ValueError, match=r"voucher 1 \(2026\) is off by 50.00 DKK"):
        fake.book_journal(1)
    assert len(fake.vouchers(1)) == 1 and fake.ledger_entries(5820) == []  # nothing booked


# -- booking ------------------------------------------------------------------------------------------

def test_booking_a_payment_settles_the_invoice_and_the_clearing_account_nets_to_zero(fake):
    invoice = booked_invoice(fake)
    number = invoice["bookedInvoiceNumber"]
    assert (invoice["grossAmount"], invoice["remainder"], invoice["remainderInBaseCurrency"]) == (125.0, 125.0, 125.0)
    assert fake.account_balance(5600) == Decimal("125.00")  # booking the invoice: debtors 125, sales -100, VAT -25
    assert (fake.account_balance(1010), fake.account_balance(14261)) == (Decimal("-100.00"), Decimal("-25.00"))

    call(fake, "POST", "/journals/1/vouchers", voucher(fee(), payments=[payment(invoice=number)]))
    payout = voucher({"account": {"accountNumber": 5820}, "amount": 121.12, "date": "2026-03-08", "text": "Payout po_1"},
                     {"account": {"accountNumber": 5830}, "amount": -121.12, "date": "2026-03-08", "text": "Payout po_1"})
    call(fake, "POST", "/journals/1/vouchers", payout)
    assert call(fake, "GET", f"/invoices/booked/{number}").json()["remainder"] == 125.0  # not until booked
    assert call(fake, "GET", "/accounts/5830").json()["draftBalance"] == 0.0

    booked = fake.book_journal(1)
    assert [v["voucherNumber"] for v in booked] == [1, 2] and fake.vouchers(1) == []
    assert call(fake, "GET", "/journals/1/entries").json()["collection"] == []
    paid = call(fake, "GET", f"/invoices/booked/{number}").json()
    assert (paid["remainder"], paid["remainderInBaseCurrency"]) == (0.0, 0.0)
    assert fake.account_balance(5830) == 0 and fake.account_balance(5600) == 0
    assert (fake.account_balance(5820), fake.account_balance(7220)) == (Decimal("121.12"), Decimal("3.88"))
    assert call(fake, "GET", "/accounts/5820").json()["balance"] == 121.12
    assert sum(entry["amountInBaseCurrency"] for entry in fake.ledger_entries()) == 0

    year_entries = call(fake, "GET", "/accounting-years/2026/entries", filter="text$like:ch_1$and:entryType$eq:customerPayment")
    [debtor, clearing] = year_entries.json()["collection"]
    assert (debtor["account"]["accountNumber"], debtor["amount"], debtor["customer"]["customerNumber"]) == (5600, -125.0, 5001)
    assert debtor["bookedInvoice"]["bookedInvoiceNumber"] == number and "bookedInvoice" not in clearing
    assert (clearing["account"]["accountNumber"], clearing["amount"], clearing["voucherNumber"]) == (5830, 125.0, 1)
    assert call(fake, "POST", "/journals/1/vouchers", voucher(fee(), voucherNumber=1)).status_code == 400  # booked numbers stay used


def test_a_part_payment_leaves_a_remainder_and_an_overpayment_does_not_go_below_zero(fake):
    number = booked_invoice(fake)["bookedInvoiceNumber"]
    call(fake, "POST", "/journals/1/vouchers", voucher(payments=[payment(invoice=number, amount=-100)]))
    fake.book_journal(1)
    assert call(fake, "GET", f"/invoices/booked/{number}").json()["remainder"] == 25.0
    call(fake, "POST", "/journals/1/vouchers", voucher(payments=[payment(invoice=number, amount=-30)]))
    fake.book_journal(1)
    assert call(fake, "GET", f"/invoices/booked/{number}").json()["remainder"] == 0.0
    assert fake.account_balance(5600) == Decimal("-5.00")  # the customer has 5.00 to their credit
    call(fake, "POST", "/journals/1/vouchers", voucher(payments=[payment(invoice=number, amount=40, text="Refund re_1")]))
    fake.book_journal(1)
    assert call(fake, "GET", f"/invoices/booked/{number}").json()["remainder"] == 40.0  # a refund reopens it


def test_a_foreign_currency_invoice_is_settled_in_its_currency_and_in_base_currency(fake):
    invoice = booked_invoice(fake, customer=5002, currency="EUR", zone=3, price=100)  # 0 % abroad
    assert (invoice["exchangeRate"], invoice["remainder"], invoice["remainderInBaseCurrency"]) == (746.0, 100.0, 746.0)
    assert fake.account_balance(5610) == Decimal("746.00")  # group 2's debtors, in DKK
    entry = payment(invoice=invoice["bookedInvoiceNumber"], amount=-100, customer=5002)
    answer = call(fake, "POST", "/journals/1/vouchers", voucher(payments=[{**entry, "currency": {"code": "EUR"}}]))
    made = answer.json()[0]["entries"]["customerPayments"][0]
    assert (made["amount"], made["amountBaseCurrency"], made["exchangeRate"]) == (-100.0, -746.0, 746.0)
    fake.book_journal(1)
    paid = call(fake, "GET", f"/invoices/booked/{invoice['bookedInvoiceNumber']}").json()
    assert (paid["remainder"], paid["remainderInBaseCurrency"]) == (0.0, 0.0)
    assert fake.account_balance(5610) == 0 and fake.account_balance(5830) == Decimal("746.00")


# -- the client functions -----------------------------------------------------------------------------

def test_journals_and_accounts_through_the_client(fake, client):
    assert journals_list(client) == [Journal(1, "Kassekladde"), Journal(2, "Indbetalinger", "customerPayment")]
    accounts = {a.number: a for a in accounts_list(client)}
    assert accounts[5830] == Account(5830, "Stripe balance", "status", True)
    assert accounts[1010] == Account(1010, "Salg af varer/ydelser m/moms", "profitAndLoss", True, "U25")
    assert not accounts[5800].accepts_entries and not accounts[5899].accepts_entries
    fake.add_account(5850, "Mellemregning", account_type="status", block_direct_entries=True)
    assert not {a.number: a for a in accounts_list(client)}[5850].accepts_entries


def test_voucher_post_returns_the_voucher_with_its_number_and_year_and_is_idempotent(fake, client):
    number = booked_invoice(fake)["bookedInvoiceNumber"]
    body = {"accountingYear": {"year": "2026"}, "entries": {
        "customerPayments": [{"customer": {"customerNumber": 5001}, "customerInvoice": number, "amount": Decimal("-125.00"),
                              "contraAccount": {"accountNumber": 5830}, "date": "2026-03-05", "text": "Stripe ch_1"}],
        "financeVouchers": [{"account": {"accountNumber": 7220}, "contraAccount": {"accountNumber": 5830},
                             "amount": Decimal("3.88"), "date": "2026-03-05", "text": "Stripe fee ch_1"}]}}
    made = voucher_post(client, 1, body, idempotency_key="stripe-ch_1")
    assert made["voucherNumber"] == 1 and made["accountingYear"]["year"] == "2026"
    assert made["entries"]["financeVouchers"][0]["amount"] == 3.88
    assert voucher_post(client, 1, body, idempotency_key="stripe-ch_1") == made and len(fake.vouchers(1)) == 1
    assert fake.posts("/journals/1/vouchers")[0]["headers"]["Idempotency-Key"] == "stripe-ch_1"
    assert isinstance(fake.posts("/journals/1/vouchers")[0]["json"], dict)  # one voucher object, not an array


def test_voucher_post_raises_what_e_conomic_said_field_by_field(fake, client):
    body = voucher(fee(amount=Decimal("3.885")))
    with pytest.raises(EconomicError) as refused:
        voucher_post(client, 1, body, idempotency_key="k")
    assert refused.value.status == 400 and not refused.value.transient
    assert refused.value.field_errors == {"entries.financeVouchers.items[0].amount": ["Property amount takes at most 2 decimals (3.885)."]}
    with pytest.raises(EconomicError) as unbalanced:
        voucher_post(client, 1, voucher({"account": {"accountNumber": 7220}, "amount": Decimal("10.00"), "date": "2026-03-05"}),
                     idempotency_key="k2")
    assert unbalanced.value.field_errors == {"entries": ["The voucher does not balance: its entries add up to 10.00 DKK, not 0."]}
    fake.fail_next(1, status=503)
    with pytest.raises(EconomicError) as outage:
        voucher_post(client, 1, voucher(fee()), idempotency_key="k3")
    assert outage.value.transient and fake.vouchers(1) == []


def test_journal_vouchers_find_looks_up_by_text_on_the_server(fake, client):
    voucher_post(client, 1, voucher(fee(text="Stripe fee (ch_1)")), idempotency_key="a")
    voucher_post(client, 1, voucher(fee(text="Stripe fee ch_2"), fee(text="Stripe fee (CH_1) again")), idempotency_key="b")
    voucher_post(client, 1, voucher(fee(text="Payout po_1")), idempotency_key="c")
    found = journal_vouchers_find(client, 1, "fee (ch_1)")
    assert [v["voucherNumber"] for v in found] == [1, 2] and found[1] == fake.vouchers(1)[1]
    assert journal_vouchers_find(client, 1, "ch_9") == []
    asked = [r["query"].get("filter") for r in fake.requests if r["path"] == "/journals/1/entries"]
    assert asked == ["text$like:fee $(ch_1$)", "text$like:ch_9"]  # the server filters, escaped
    with pytest.raises(ValueError):
        journal_vouchers_find(client, 1, "")


def test_accounting_year_for_picks_the_year_holding_the_day(fake, client):
    assert accounting_year_for(client, date(2026, 6, 30)) == "2026"
    assert accounting_year_for(client, date(2025, 12, 31)) == "2025"
    fake.add_accounting_year("2027/2028", date(2027, 1, 1), date(2028, 6, 30))
    assert accounting_year_for(client, date(2028, 2, 29)) == "2027/2028"
    with pytest.raises(LookupError, match="2024-12-31"):
        accounting_year_for(client, date(2024, 12, 31))
    split = voucher(fee(day="2028-02-29"), year="2027/2028")
    made = voucher_post(client, 1, split, idempotency_key="y")
    assert made["self"].endswith("/journals/1/vouchers/2027_6_2028-1")
    assert call(fake, "GET", "/journals/1/vouchers/2027_6_2028-1").json() == made
