"""The fake e-conomic computes a document's VAT the way e-conomic does: from each line's product group,
its sales account for the document's VAT zone, and that account's VAT code, rounded per VAT code. It
refuses what e-conomic refuses, so a test against it can tell a right document from a wrong one."""

from __future__ import annotations

import json

import pytest
import requests

from doubles.economic import FakeEconomic

HEADERS = {"X-AppSecretToken": "app", "X-AgreementGrantToken": "grant"}


@pytest.fixture
def fake():
    with FakeEconomic() as fake:
        fake.add_customer(5001, email="bogholderi@kystlys.dk")
        fake.add_product("SERVICE", "Consulting hour")  # group 1 "Services"
        fake.add_product("GOODS", "Lamp", productGroup={"productGroupNumber": 2})
        fake.add_product("FEE", "Card fee", productGroup={"productGroupNumber": 3})
        fake.add_product("OSS-DE", "Download (Germany)", productGroup={"productGroupNumber": 4})
        fake.add_product("OSS-SE", "Download (Sweden)", productGroup={"productGroupNumber": 5})
        yield fake


def call(fake, method, path, body=None, **params):
    return requests.request(method, fake.url + path, headers=HEADERS, json=body, params=params or None, timeout=10)


def document(zone=1, lines=(), **fields):
    """A valid draft-invoice (or order) body for customer 5001 in VAT `zone`; `lines` as (product, quantity, price)."""
    return {
        "date": "2026-11-16", "currency": "DKK", "layout": {"layoutNumber": 19}, "paymentTerms": {"paymentTermsNumber": 1},
        "customer": {"customerNumber": 5001}, "recipient": {"name": "Kystlys Studio ApS", "vatZone": {"vatZoneNumber": zone}},
        "lines": [{"lineNumber": n, "description": f"Line {n}", "quantity": quantity, "unitNetPrice": price,
                   "product": {"productNumber": product}} for n, (product, quantity, price) in enumerate(lines, start=1)],
        **fields,
    }


def totals(answer):
    body = answer.json()
    return body["netAmount"], body["vatAmount"], body["grossAmount"], body["roundingAmount"]


def field_errors(answer, *path):
    """The error messages e-conomic put at `path` in its annotated `errors`."""
    node = answer.json()["errors"]
    for step in path:
        node = node[step]
    return [error["errorMessage"] for error in node["errors"]]


# -- VAT ----------------------------------------------------------------------------------------------

def test_a_domestic_document_of_services_carries_25_percent(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 7.5, 950), ("SERVICE", 1, 1495)]))
    assert answer.status_code == 201
    assert totals(answer) == (8620.00, 2155.00, 10775.00, 0.0)
    assert b'"vatAmount": 2155.0' in answer.content  # a JSON number, not a string
    number = answer.json()["draftInvoiceNumber"]
    assert totals(call(fake, "GET", f"/invoices/drafts/{number}")) == (8620.00, 2155.00, 10775.00, 0.0)
    assert [line["totalNetAmount"] for line in answer.json()["lines"]] == [7125.00, 1495.00]


@pytest.mark.parametrize("zone", [2, 3, 4])
@pytest.mark.parametrize("product", ["SERVICE", "GOODS"])
def test_services_and_goods_outside_the_domestic_zone_carry_no_vat(fake, zone, product):
    answer = call(fake, "POST", "/orders/drafts", document(zone, [(product, 2, 500)]))
    assert answer.status_code == 201
    assert totals(answer) == (1000.00, 0.0, 1000.00, 0.0)


def test_the_rounding_and_fees_group_carries_no_vat_even_at_home(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100), ("FEE", 1, 2.5)]))
    assert totals(answer) == (102.50, 25.00, 127.50, 0.0)


def test_an_oss_group_carries_its_own_rate_in_the_eu_zone(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(2, [("OSS-DE", 3, 33.33)]))
    assert answer.status_code == 201
    assert totals(answer) == (99.99, 19.00, 118.99, 0.0)  # 99.99 × 19 % = 18.9981


def test_two_vat_codes_on_one_document(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(2, [("OSS-DE", 1, 200), ("OSS-SE", 2, 50), ("SERVICE", 1, 1000)]))
    assert answer.status_code == 201
    assert totals(answer) == (1300.00, 63.00, 1363.00, 0.0)  # 200 × 19 % + 100 × 25 % + 1000 × 0 %


def test_vat_is_summed_per_vat_code_then_rounded_once_per_code(fake):
    # Rounded per line, three lines of 0.02 at 25 % would be 3 × 0.01; per code it is 0.06 × 25 % = 0.015 → 0.02.
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 0.02)] * 3))
    assert totals(answer) == (0.06, 0.02, 0.08, 0.0)


def test_each_vat_code_is_rounded_on_its_own(fake):
    # 0.05 at 19 % = 0.0095 → 0.01 and 0.02 at 25 % = 0.005 → 0.01; rounded once for the document it would be 0.01.
    answer = call(fake, "POST", "/invoices/drafts", document(2, [("OSS-DE", 1, 0.05), ("OSS-SE", 1, 0.02)]))
    assert totals(answer) == (0.07, 0.02, 0.09, 0.0)


def test_line_nets_are_rounded_to_cents_after_the_discount(fake):
    body = document(1, [("SERVICE", 3, 33.33)])
    body["lines"][0]["discountPercentage"] = 12.5  # 99.99 less 12.5 % = 87.49125 → 87.49
    answer = call(fake, "POST", "/invoices/drafts", body)
    assert totals(answer) == (87.49, 21.87, 109.36, 0.0)


def test_a_credit_note_has_negative_totals(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", -1, 99.99)]))
    assert totals(answer) == (-99.99, -25.00, -124.99, 0.0)


def test_a_line_whose_product_group_has_no_sales_account_for_the_zone_is_refused(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 10), ("OSS-DE", 1, 10)]))
    assert answer.status_code == 400
    body = answer.json()
    assert body["message"] == "Validation failed. 1 error found." and body["errorCode"] == "E04300"
    [line] = body["errors"]["lines"]["items"]
    assert line["arrayIndex"] == 1
    assert "Product group 4 has no sales account for VAT zone 1" in line["product"]["errors"][0]["errorMessage"]
    assert fake.documents("invoices/drafts") == []


def test_a_line_naming_a_product_that_does_not_exist_is_refused(fake):
    answer = call(fake, "POST", "/orders/drafts", document(1, [("NO-SUCH-PRODUCT", 1, 10)]))
    assert answer.status_code == 400
    [line] = answer.json()["errors"]["lines"]["items"]
    assert line["arrayIndex"] == 0 and line["product"]["errors"][0]["errorMessage"] == "Product 'NO-SUCH-PRODUCT' not found."


def test_a_line_with_an_amount_and_no_product_is_refused(fake):
    body = document(1, [("SERVICE", 1, 10)])
    del body["lines"][0]["product"]
    answer = call(fake, "POST", "/invoices/drafts", body)
    assert answer.status_code == 400 and "lines" in answer.json()["errors"]


def test_the_chart_can_be_changed_from_a_test(fake):
    fake.add_vat_account("U12", 12, "Salgsmoms 12 %")
    fake.add_account(1070, "Salg af fødevarer", vat_code="U12")
    fake.set_sales_account(2, 1, 1070)
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("GOODS", 1, 100), ("SERVICE", 1, 100)]))
    assert totals(answer) == (200.00, 37.00, 237.00, 0.0)
    fake.set_sales_account(2, 1, None)
    assert call(fake, "POST", "/invoices/drafts", document(1, [("GOODS", 1, 100)])).status_code == 400
    with pytest.raises(ValueError):
        fake.add_account(1080, "Unknown code", vat_code="X99")
    with pytest.raises(ValueError):
        fake.set_sales_account(1, 1, 9999)


# -- the chart over HTTP ------------------------------------------------------------------------------

def test_the_chart_is_served_as_e_conomic_serves_it(fake):
    sales = call(fake, "GET", "/product-groups/1/sales-accounts").json()["collection"]
    assert [(s["vatZone"]["vatZoneNumber"], s["salesAccount"]["accountNumber"]) for s in sales] == [(1, 1010), (2, 1020), (3, 1030), (4, 1040)]
    assert sales[0]["salesAccount"]["vatAccount"]["vatCode"] == "U25" and "vatAccount" not in sales[1]["salesAccount"]
    assert [s["salesAccount"]["accountNumber"] for s in call(fake, "GET", "/product-groups/4/sales-accounts").json()["collection"]] == [1050]

    account = call(fake, "GET", "/accounts/1050").json()
    assert account["name"] == "OSS-salg Tyskland 19 %" and account["vatAccount"]["vatCode"] == "OSSDE"
    vat = call(fake, "GET", f"/vat-accounts/{account['vatAccount']['vatCode']}").json()
    assert vat["ratePercentage"] == 19 and vat["self"].endswith("/vat-accounts/OSSDE")
    assert call(fake, "GET", "/vat-accounts/U25").json()["ratePercentage"] == 25

    group = call(fake, "GET", "/product-groups/3").json()
    assert group["name"] == "Rounding and fees (no VAT)" and group["salesAccounts"].endswith("/product-groups/3/sales-accounts")
    assert call(fake, "GET", "/product-groups/99").status_code == 404

    accounts = call(fake, "GET", "/accounts", filter="accountNumber$gte:1000$and:accountNumber$lt:2000", pagesize=3).json()
    assert [a["accountNumber"] for a in accounts["collection"]] == [1010, 1020, 1030]
    assert accounts["pagination"]["results"] == 7 and "nextPage" in accounts["pagination"]
    codes = [v["vatCode"] for v in call(fake, "GET", "/vat-accounts").json()["collection"]]
    assert set(codes) >= {"U25", "OSSDE", "OSSSE"}


def test_self_names_the_agreement_company_and_base_currency(fake):
    me = call(fake, "GET", "/self").json()
    assert me["company"]["country"] == "Denmark" and me["company"]["companyIdentificationNumber"]
    assert me["settings"]["baseCurrency"] == "DKK"
    with FakeEconomic(agreement_country="SE") as swedish:
        assert call(swedish, "GET", "/self").json()["company"]["country"] == "Sweden"


# -- documents: update, delete, due dates -------------------------------------------------------------

@pytest.mark.parametrize("kind, number_field", [("invoices/drafts", "draftInvoiceNumber"), ("orders/drafts", "orderNumber")])
def test_put_replaces_the_document_and_recomputes_its_totals(fake, kind, number_field):
    created = call(fake, "POST", f"/{kind}", document(1, [("SERVICE", 1, 100)])).json()
    number = created[number_field]
    replaced = call(fake, "PUT", f"/{kind}/{number}", document(2, [("OSS-SE", 2, 100), ("GOODS", 1, 50)]))
    assert replaced.status_code == 200
    assert replaced.json()[number_field] == number
    assert totals(replaced) == (250.00, 50.00, 300.00, 0.0)
    stored = call(fake, "GET", f"/{kind}/{number}").json()
    assert totals_of(stored) == (250.00, 50.00, 300.00) and len(stored["lines"]) == 2
    assert len(fake.documents(kind)) == 1

    refused = call(fake, "PUT", f"/{kind}/{number}", document(1, [("OSS-SE", 1, 100)]))
    assert refused.status_code == 400
    assert totals_of(call(fake, "GET", f"/{kind}/{number}").json()) == (250.00, 50.00, 300.00)  # unchanged
    assert call(fake, "PUT", f"/{kind}/{number}", {"date": "2026-11-16"}).status_code == 400  # the put schema wants recipient
    assert call(fake, "PUT", f"/{kind}/999", document(1, [("SERVICE", 1, 1)])).status_code == 404


def totals_of(body):
    return body["netAmount"], body["vatAmount"], body["grossAmount"]


@pytest.mark.parametrize("kind, number_field", [("invoices/drafts", "draftInvoiceNumber"), ("orders/drafts", "orderNumber")])
def test_delete_removes_the_document(fake, kind, number_field):
    number = call(fake, "POST", f"/{kind}", document(1, [("SERVICE", 1, 100)])).json()[number_field]
    deleted = call(fake, "DELETE", f"/{kind}/{number}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert call(fake, "GET", f"/{kind}/{number}").status_code == 404
    assert call(fake, "DELETE", f"/{kind}/{number}").status_code == 404
    assert fake.documents(kind) == []
    assert call(fake, "POST", f"/{kind}", document(1, [("SERVICE", 1, 100)])).json()[number_field] == number + 1


def test_due_date_terms_need_a_due_date_and_keep_it(fake):
    terms = call(fake, "GET", "/payment-terms/2").json()
    assert terms["name"] == "Due date" and terms["paymentTermsType"].lower() == "duedate"

    missing = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100)], paymentTerms={"paymentTermsNumber": 2}))
    assert missing.status_code == 400 and field_errors(missing, "dueDate")

    kept = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100)], paymentTerms={"paymentTermsNumber": 2}, dueDate="2027-01-31"))
    assert kept.status_code == 201 and kept.json()["dueDate"] == "2027-01-31"


def test_net_terms_compute_the_due_date_whatever_was_sent(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100)], dueDate="2030-01-01"))
    assert answer.json()["dueDate"] == "2026-11-30"  # 2026-11-16 + 14 days of credit
    assert answer.json()["paymentTerms"]["paymentTermsType"] == "net"
    number = answer.json()["draftInvoiceNumber"]
    assert call(fake, "GET", f"/invoices/drafts/{number}").json()["dueDate"] == "2026-11-30"


def test_unknown_payment_terms_are_refused(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100)], paymentTerms={"paymentTermsNumber": 4711}))
    assert answer.status_code == 400
    assert field_errors(answer, "paymentTerms") == ["PaymentTerms '4711' not found."]


# -- customers and currencies -------------------------------------------------------------------------

def customer(**fields):
    return {"name": "Kystlys Studio ApS", "currency": "DKK", "customerGroup": {"customerGroupNumber": 1},
            "vatZone": {"vatZoneNumber": 1}, "paymentTerms": {"paymentTermsNumber": 1}, **fields}


def test_vat_number_is_refused_on_a_danish_agreement(fake):
    refused = call(fake, "POST", "/customers", customer(vatNumber="DK12345678"))
    assert refused.status_code == 400
    [message] = field_errors(refused, "vatNumber")
    assert "only available to agreements in Sweden, UK, Germany, Poland and Finland" in message
    assert fake.documents("customers") == [fake.store["customers"][5001]]  # nothing created

    accepted = call(fake, "POST", "/customers", customer(corporateIdentificationNumber="DK12345678"))
    assert accepted.status_code == 201 and accepted.json()["corporateIdentificationNumber"] == "DK12345678"


def test_vat_number_is_accepted_on_a_swedish_agreement():
    with FakeEconomic(agreement_country="SE") as swedish:
        answer = call(swedish, "POST", "/customers", customer(vatNumber="SE556677889901", currency="SEK"))
        assert answer.status_code == 201 and answer.json()["vatNumber"] == "SE556677889901"


def test_an_unknown_currency_is_refused_on_customers_and_documents(fake):
    refused = call(fake, "POST", "/customers", customer(currency="XYZ"))
    assert refused.status_code == 400 and field_errors(refused, "currency") == ["Currency 'XYZ' not found."]
    refused = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100)], currency="XYZ"))
    assert refused.status_code == 400 and field_errors(refused, "currency")


def test_a_document_may_be_in_another_currency_than_its_customer(fake):
    answer = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100)], currency="EUR"))
    assert answer.status_code == 201 and answer.json()["currency"] == "EUR"


def test_the_currency_list_is_realistic(fake):
    currencies = {c["code"]: c for c in call(fake, "GET", "/currencies", pagesize=1000).json()["collection"]}
    assert {"DKK", "EUR", "USD", "SEK", "NOK", "GBP", "CHF", "PLN", "JPY", "KWD"} <= set(currencies)
    assert currencies["KWD"]["isoNumber"] == "414" and currencies["JPY"]["name"] == "Japanese yen"
    assert call(fake, "GET", "/currencies/NOK").json()["isoNumber"] == "578"


# -- filters ------------------------------------------------------------------------------------------

def customer_numbers(fake, wanted):
    answer = call(fake, "GET", "/customers", filter=wanted)
    assert answer.status_code == 200, answer.text
    return [c["customerNumber"] for c in answer.json()["collection"]]


def test_like_finds_one_address_among_several_in_the_email_field(fake):
    fake.add_customer(5002, email="info@kystlys.dk Bogholderi@Lampe.dk", name="Lampe ApS")
    fake.add_customer(5003, email="ab@lampe.dk", name="Other ApS")
    assert customer_numbers(fake, "email$like:*bogholderi@lampe.dk*") == [5002]  # case insensitive
    assert customer_numbers(fake, "email$like:bogholderi@lampe.dk") == [5002]  # no wildcard: "contains"
    assert customer_numbers(fake, "email$like:info@*") == [5002]
    assert customer_numbers(fake, "email$eq:bogholderi@lampe.dk") == []  # $eq: wants the whole field
    assert customer_numbers(fake, "email$like:*@lampe.dk$or:name$eq:customer 5001") == [5001, 5002, 5003]
    assert customer_numbers(fake, "email$ne:ab@lampe.dk") == [5001, 5002]
    assert customer_numbers(fake, "customerNumber$in:[5001,5003]") == [5001, 5003]
    assert customer_numbers(fake, "customerNumber$nin:[5001,5003]$and:email$like:*kystlys*") == [5002]
    assert customer_numbers(fake, "name$eq:Other ApS$and:(customerNumber$eq:5001$or:customerNumber$eq:5003)") == [5003]


def test_escaped_characters_and_bad_filters(fake):
    fake.add_customer(5002, name="A (B) * $5,00")
    assert customer_numbers(fake, "name$eq:A $(B$) $* $$5$,00") == [5002]
    assert call(fake, "GET", "/customers", filter="name$in:[a,b]").status_code == 400  # $in: takes numbers only
    assert call(fake, "GET", "/customers", filter="name$contains:x").status_code == 400
    assert call(fake, "GET", "/customers", filter="(name$eq:x").status_code == 400


def test_document_lists_carry_no_lines_and_find_by_reference(fake):
    call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 1, 100)], references={"other": "INV-(1)"}))
    listed = call(fake, "GET", "/invoices/drafts", filter="references.other$eq:inv-$(1$)").json()["collection"]
    assert len(listed) == 1 and "lines" not in listed[0] and listed[0]["grossAmount"] == 125.0


# -- what was there before ----------------------------------------------------------------------------

def test_an_idempotent_repeat_gets_the_first_answer(fake):
    body = document(1, [("SERVICE", 1, 100)])
    first = requests.post(fake.url + "/invoices/drafts", headers={**HEADERS, "Idempotency-Key": "k1"}, json=body, timeout=10)
    again = requests.post(fake.url + "/invoices/drafts", headers={**HEADERS, "Idempotency-Key": "k1"}, json=body, timeout=10)
    assert json.loads(first.content) == json.loads(again.content) and again.headers["X-ResultFromCache"] == "true"
    assert len(fake.documents("invoices/drafts")) == 1 and len(fake.posts("/invoices/drafts")) == 2


def test_booking_keeps_the_totals(fake):
    number = call(fake, "POST", "/invoices/drafts", document(1, [("SERVICE", 2, 50)])).json()["draftInvoiceNumber"]
    booked = call(fake, "POST", "/invoices/booked", {"draftInvoice": {"draftInvoiceNumber": number}})
    assert booked.status_code == 201 and totals(booked) == (100.0, 25.0, 125.0, 0.0)
    assert fake.documents("invoices/drafts") == []
