"""The sync engine against `responses` mocks of Stripe and e-conomic: exact bodies, order, fewest calls, faults."""

import copy
import json
from pathlib import Path

import pytest
import requests
import responses
from responses import matchers

from portal.sync.economic import EconomicClient
from portal.sync.engine import EngineSettings, RunState, SettingMissing, SyncEngine, SyncFailure, SyncHeld
from portal.sync.mapping import DEFAULT_MAPPINGS
from portal.sync.stripe_source import stripe_client

from .engine_support import MemoryLinks, MemoryRecorder, assert_valid_for_economic

DATA = Path(__file__).parent / "data"
STRIPE = "https://api.stripe.com"
ECONOMIC = "https://restapi.e-conomic.com"


def load(name):
    return json.loads((DATA / name).read_text())


@pytest.fixture
def invoice():
    data = load("invoice_send_invoice_open.json")
    data["customer"] = load("customer.json")
    return data


def settings(**overrides):
    values = dict(
        document_type="draft_invoice", write_back_to_stripe=False, mappings=dict(DEFAULT_MAPPINGS),
        payment_terms_number=1, customer_group_number=1, vat_zone_domestic=1, vat_zone_eu_with_vat_id=2,
        vat_zone_eu_without_vat_id=2, vat_zone_outside_eu=3, layout_number=19, product_matching="direct",
        product_not_found="create", new_product_group_number=1, default_product_number="MISC",
        discount_product_number="DISCOUNT",
    )
    values.update(overrides)
    return EngineSettings(**values)


def make_engine(engine_settings=None, links=None):
    recorder = MemoryRecorder()
    engine = SyncEngine(
        stripe_client("sk_test_engine", STRIPE, max_network_retries=0),
        EconomicClient("app", "grant", ECONOMIC),
        engine_settings or settings(),
        recorder,
        links or MemoryLinks(),
    )
    return engine, recorder


def mock_stripe(invoice):
    responses.get(f"{STRIPE}/v1/invoices/{invoice['id']}", json=invoice)
    product = load("product.json")
    for line in invoice["lines"]["data"]:
        product_id = line["pricing"]["price_details"]["product"]
        responses.get(f"{STRIPE}/v1/products/{product_id}", json={**product, "id": product_id, "name": f"Product {product_id[-4:]}"})


def draft_answer(body, number=101, net="8620.00", vat="2155.00", gross="10775.00"):
    return {**body, "draftInvoiceNumber": number, "netAmount": float(net), "vatAmount": float(vat), "grossAmount": float(gross)}


def economic_calls():
    return [(c.request.method, c.request.url.split("?")[0].replace(ECONOMIC, "")) for c in responses.calls if c.request.url.startswith(ECONOMIC)]


def sent_json(method, path):
    return [json.loads(c.request.body) for c in responses.calls if c.request.method == method and c.request.url.split("?")[0] == ECONOMIC + path]


def state(attempt=1, **fields):
    return RunState(run_id=7, stripe_invoice_id="in_1aacrhKx8Wq2LmT5q32ohADl", attempt=attempt, **fields)


@responses.activate
def test_a_new_customer_and_new_products_then_a_draft_invoice_exact_bodies(invoice):
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/customers", json={"collection": []})
    responses.post(f"{ECONOMIC}/customers", json={"customerNumber": 5001})
    responses.get(f"{ECONOMIC}/products/prod_38AibNyyurlGFb", status=404, json={"message": "Not found", "httpStatusCode": 404})
    responses.get(f"{ECONOMIC}/products/prod_U2EqkNk6sEr6f4", status=404, json={"message": "Not found", "httpStatusCode": 404})
    responses.post(f"{ECONOMIC}/products", json={"productNumber": "prod_38AibNyyurlGFb"}, match=[matchers.json_params_matcher({"productNumber": "prod_38AibNyyurlGFb"}, strict_match=False)])
    responses.post(f"{ECONOMIC}/products", json={"productNumber": "prod_U2EqkNk6sEr6f4"})
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}))
    engine, recorder = make_engine(settings(product_matching="simple", simple_search_on="product_number"))
    outcome = engine.run(state())

    customer = sent_json("POST", "/customers")[0]
    assert customer == {
        "name": "Kystlys Studio ApS",
        "email": "bogholderi@kystlys.dk",
        "telephoneAndFaxNumber": "+45 35 20 11 48",
        "address": "Nørre Farimagsgade 37, 3. sal",
        "zip": "1364",
        "city": "København K",
        "country": "Denmark",
        "currency": "DKK",
        "customerGroup": {"customerGroupNumber": 1},
        "paymentTerms": {"paymentTermsNumber": 1},
        "vatZone": {"vatZoneNumber": 1},
        "layout": {"layoutNumber": 19},
    }
    assert_valid_for_economic("customers.post.schema.json", customer)

    products = sent_json("POST", "/products")
    assert products == [
        {"productNumber": "prod_38AibNyyurlGFb", "name": "Product lGFb", "productGroup": {"productGroupNumber": 1}},
        {"productNumber": "prod_U2EqkNk6sEr6f4", "name": "Product r6f4", "productGroup": {"productGroupNumber": 1}},
    ]
    for product in products:
        assert_valid_for_economic("products.post.schema.json", product)

    draft = sent_json("POST", "/invoices/drafts")[0]
    assert_valid_for_economic("invoices.drafts.post.schema.json", draft)
    assert draft["date"] == "2026-11-16" and draft["dueDate"] == "2026-11-30"
    assert draft["currency"] == "DKK"
    assert draft["customer"] == {"customerNumber": 5001}
    assert draft["recipient"]["vatZone"] == {"vatZoneNumber": 1}
    # Delivered where Stripe's own invoice ships to: the invoice's shipping details.
    assert draft["delivery"] == {"address": "Refshalevej 163A", "city": "København K", "country": "Denmark", "zip": "1432", "deliveryDate": "2026-11-16"}
    assert draft["references"] == {"other": "KYSTLYS1-0007"}
    assert draft["lines"][0] == {"lineNumber": 1, "sortKey": 1, "description": invoice["lines"]["data"][0]["description"], "quantity": 7.5, "unitNetPrice": 950, "product": {"productNumber": "prod_38AibNyyurlGFb"}}
    assert draft["lines"][1]["product"] == {"productNumber": "prod_U2EqkNk6sEr6f4"}

    # The documented order: the VAT treatment checked before anything is made, then customer, products, document.
    assert [step for step, _ in recorder.outcomes()] == ["fetch", "vat", "customer", "products", "document"]
    assert recorder.outcomes()[2:] == [("customer", "created"), ("products", "created"), ("document", "created")]
    assert outcome.document_number == 101 and outcome.reconciled
    assert recorder.fields["economic_draft_number"] == 101
    idempotency = [c.request.headers.get("Idempotency-Key") for c in responses.calls if c.request.method == "POST"]
    assert all(idempotency) and len(set(idempotency)) == len(idempotency)
    for call in responses.calls:
        if call.request.url.startswith(ECONOMIC):
            assert call.request.headers["X-AppSecretToken"] == "app"
            assert call.request.headers["X-AgreementGrantToken"] == "grant"


def known_links():
    return MemoryLinks(customers={"cus_zWcPDxNG0RaLgg": 5001}, products={"prod_38AibNyyurlGFb": "P1", "prod_U2EqkNk6sEr6f4": "P2"})


KNOWN_CHECKED_ON_RETRY = [("GET", "/customers/5001"), ("GET", "/products/P1"), ("GET", "/products/P2")]


def mock_known_links_exist():
    """e-conomic still has what `known_links` remembers (a retry checks before it trusts)."""
    responses.get(f"{ECONOMIC}/customers/5001", json={"customerNumber": 5001})
    for number in ("P1", "P2"):
        responses.get(f"{ECONOMIC}/products/{number}", json={"productNumber": number})


@responses.activate
def test_a_repeat_customer_with_known_products_costs_one_call_for_a_draft(invoice):
    mock_stripe(invoice)
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}))
    engine, _ = make_engine(links=known_links())
    outcome = engine.run(state())
    assert economic_calls() == [("POST", "/invoices/drafts")]
    assert outcome.economic_calls == 1


@responses.activate
def test_a_booked_invoice_costs_two_calls_and_books_that_draft(invoice):
    mock_stripe(invoice)
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}, number=202))
    responses.post(f"{ECONOMIC}/invoices/booked", json={"bookedInvoiceNumber": 9001, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0},
                   match=[matchers.json_params_matcher({"draftInvoice": {"draftInvoiceNumber": 202}})])
    engine, recorder = make_engine(settings(document_type="booked_invoice"), links=known_links())
    outcome = engine.run(state())
    assert economic_calls() == [("POST", "/invoices/drafts"), ("POST", "/invoices/booked")]
    assert_valid_for_economic("invoices.booked.post.schema.json", sent_json("POST", "/invoices/booked")[0])
    assert outcome.document_number == 9001
    assert recorder.fields["economic_booked_number"] == 9001
    assert ("book", "created") in recorder.outcomes()


@responses.activate
def test_a_draft_order(invoice):
    mock_stripe(invoice)
    responses.post(f"{ECONOMIC}/orders/drafts", json={"orderNumber": 33, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0})
    engine, recorder = make_engine(settings(document_type="draft_order"), links=known_links())
    outcome = engine.run(state())
    order = sent_json("POST", "/orders/drafts")[0]
    assert_valid_for_economic("orders.drafts.post.schema.json", order)
    assert order["references"] == {"other": "KYSTLYS1-0007"}
    assert outcome.document_number == 33 and recorder.fields["economic_order_number"] == 33


@responses.activate
def test_write_back_puts_the_outcome_in_the_stripe_invoices_metadata(invoice):
    mock_stripe(invoice)
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}))
    responses.post(f"{STRIPE}/v1/invoices/{invoice['id']}", json=invoice)
    engine, recorder = make_engine(settings(write_back_to_stripe=True), links=known_links())
    engine.run(state())
    update = [c for c in responses.calls if c.request.method == "POST" and c.request.url.startswith(STRIPE)][0]
    assert "metadata[economic_document_number]=101" in update.request.body
    assert "metadata[economic_document_type]=draft_invoice" in update.request.body
    assert recorder.outcomes()[-1] == ("write_back", "done")


@responses.activate
def test_totals_that_do_not_reconcile_hold_the_run_with_both_figures(invoice):
    mock_stripe(invoice)
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}, net="8600.00", vat="2150.00", gross="10750.00"))
    engine, recorder = make_engine(links=known_links())
    with pytest.raises(SyncHeld) as held:
        engine.run(state())
    assert "net: Stripe 8,620.00 DKK, e-conomic 8,600.00 DKK" in held.value.reason
    assert "The draft invoice 101 is in e-conomic, flagged for review." in held.value.reason
    assert held.value.totals["stripe"] == {"net": "8620.00", "vat": "2155.00", "gross": "10775.00"}
    assert held.value.totals["economic"] == {"net": "8600.0", "vat": "2150.0", "gross": "10750.0"}
    assert recorder.outcomes()[-1] == ("document", "held")


@responses.activate
def test_a_customer_number_in_stripe_metadata_wins(invoice):
    invoice["customer"]["metadata"] = {"economic_customer_number": "42"}
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/customers/42", json={"customerNumber": 42})
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}))
    links = known_links()
    engine, _ = make_engine(links=links)
    engine.run(state())
    assert sent_json("POST", "/invoices/drafts")[0]["customer"] == {"customerNumber": 42}
    assert links.customers["cus_zWcPDxNG0RaLgg"] == 42


@responses.activate
def test_an_existing_customer_is_found_by_email(invoice):
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/customers", json={"collection": [{"customerNumber": 77, "email": "info@kystlys.dk bogholderi@kystlys.dk"}]},
                  match=[matchers.query_param_matcher({"filter": "email$like:*bogholderi@kystlys.dk*", "pagesize": "20"})])
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}))
    engine, recorder = make_engine(links=MemoryLinks(products=known_links().products))
    engine.run(state())
    assert recorder.outcomes()[2] == ("customer", "found")
    assert sent_json("POST", "/invoices/drafts")[0]["customer"] == {"customerNumber": 77}


@responses.activate
def test_skip_invoice_generation_when_a_product_is_missing(invoice):
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/products/prod_38AibNyyurlGFb", status=404, json={"message": "Not found"})
    engine, recorder = make_engine(settings(product_matching="simple", product_not_found="skip"), links=MemoryLinks(customers={"cus_zWcPDxNG0RaLgg": 5001}))
    with pytest.raises(SyncFailure, match="Skip Invoice Generation: nothing was created") as failure:
        engine.run(state())
    assert not failure.value.transient
    assert not [c for c in responses.calls if c.request.method == "POST"]
    assert recorder.outcomes()[-1] == ("products", "failed")


@responses.activate
def test_a_missing_setting_fails_at_once_naming_it(invoice):
    mock_stripe(invoice)
    engine, _ = make_engine(settings(layout_number=None), links=known_links())
    with pytest.raises(SettingMissing, match="Invoice layout is not set") as failure:
        engine.run(state())
    assert failure.value.anchor == "layout" and not failure.value.transient


@responses.activate
def test_a_validation_error_ends_failed_with_economics_field_message(invoice):
    mock_stripe(invoice)
    responses.post(f"{ECONOMIC}/invoices/drafts", status=400, json={
        "message": "Validation exception.", "errorCode": "E04300", "developerHint": "Inspect validation errors and correct your request.",
        "logId": "abc123", "httpStatusCode": 400, "logTime": "2026-11-25T08:00:00",
        "errors": {"delivery": {"city": {"errors": [{"propertyName": "city", "errorMessage": "City is too long.", "errorCode": "E06000"}]}}},
    })
    engine, recorder = make_engine(links=known_links())
    with pytest.raises(SyncFailure) as failure:
        engine.run(state())
    assert not failure.value.transient
    assert "delivery.city: City is too long." in failure.value.message
    assert "abc123" in failure.value.message
    assert failure.value.message.endswith("Check the Invoice/Order field mappings (Delivery fields), then press Sync again.")
    assert failure.value.message.count("Validation exception.") == 1
    assert recorder.steps[-1]["step"] == "document" and recorder.steps[-1]["error"] == failure.value.message


@pytest.mark.parametrize(
    "fault",
    ["timeout", "429", "500", "dropped-after-create"],
)
@responses.activate
def test_every_create_failing_once_still_ends_with_exactly_one_document(invoice, fault):
    mock_stripe(invoice)
    created, attempts = [], []

    def create(request):
        attempts.append(1)
        if len(attempts) == 1:
            if fault == "timeout":
                raise requests.ReadTimeout("read timed out")
            if fault == "429":
                return (429, {"Retry-After": "3"}, json.dumps({"message": "Too many requests", "httpStatusCode": 429}))
            if fault == "500":
                return (500, {}, json.dumps({"message": "Internal error", "httpStatusCode": 500}))
            created.append(json.loads(request.body))  # e-conomic made it, but the answer never arrives
            raise requests.ConnectionError("connection dropped after the draft was created")
        created.append(json.loads(request.body))
        return (201, {}, json.dumps(draft_answer({})))

    def listing(request):
        found = [{"draftInvoiceNumber": 101, "references": {"other": "KYSTLYS1-0007"}}] if created else []
        return (200, {}, json.dumps({"collection": found}))

    responses.add_callback(responses.POST, f"{ECONOMIC}/invoices/drafts", callback=create)
    responses.add_callback(responses.GET, f"{ECONOMIC}/invoices/drafts", callback=listing)
    responses.get(f"{ECONOMIC}/invoices/drafts/101", json=draft_answer({}))
    mock_known_links_exist()

    engine, recorder = make_engine(links=known_links())
    first = state()
    with pytest.raises(SyncFailure) as failure:
        engine.run(first)
    assert failure.value.transient
    if fault == "429":
        assert failure.value.retry_after == 3
    # The worker retries the run with what the first attempt recorded.
    retry = state(attempt=2, document_create_started=recorder.fields.get("document_create_started", False))
    outcome = engine.run(retry)
    assert outcome.document_number == 101
    assert len(created) == 1  # exactly one document, whatever failed


@responses.activate
def test_a_booked_invoice_whose_draft_exists_resumes_at_booking(invoice):
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/invoices/booked", json={"collection": []})  # not booked yet
    responses.get(f"{ECONOMIC}/invoices/drafts/202", json=draft_answer({}, number=202))
    responses.post(f"{ECONOMIC}/invoices/booked", json={"bookedInvoiceNumber": 9002, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0})
    mock_known_links_exist()
    engine, recorder = make_engine(settings(document_type="booked_invoice"), links=known_links())
    outcome = engine.run(state(attempt=2, economic_draft_number=202, document_create_started=True))
    assert economic_calls() == [*KNOWN_CHECKED_ON_RETRY, ("GET", "/invoices/booked"), ("GET", "/invoices/drafts/202"), ("POST", "/invoices/booked")]
    assert outcome.document_number == 9002


@responses.activate
def test_a_booked_invoice_found_booked_on_retry_is_not_booked_again(invoice):
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/invoices/booked", json={"collection": [{"bookedInvoiceNumber": 9003, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0}]},
                  match=[matchers.query_param_matcher({"filter": "references.other$eq:KYSTLYS1-0007", "pagesize": "100"})])
    mock_known_links_exist()
    engine, _ = make_engine(settings(document_type="booked_invoice"), links=known_links())
    outcome = engine.run(state(attempt=2, document_create_started=True))
    assert outcome.document_number == 9003
    assert economic_calls() == [*KNOWN_CHECKED_ON_RETRY, ("GET", "/invoices/booked")]


@responses.activate
def test_every_line_page_is_read(invoice):
    lines = invoice["lines"]["data"]
    first_page = copy.deepcopy(lines[:1])
    invoice["lines"] = {"object": "list", "data": first_page, "has_more": True, "url": f"/v1/invoices/{invoice['id']}/lines"}
    responses.get(f"{STRIPE}/v1/invoices/{invoice['id']}", json=invoice)
    responses.get(f"{STRIPE}/v1/invoices/{invoice['id']}/lines", json={"object": "list", "data": lines[:1], "has_more": True, "url": f"/v1/invoices/{invoice['id']}/lines"},
                  match=[matchers.query_param_matcher({"limit": "100"})])
    responses.get(f"{STRIPE}/v1/invoices/{invoice['id']}/lines", json={"object": "list", "data": lines[1:], "has_more": False, "url": f"/v1/invoices/{invoice['id']}/lines"},
                  match=[matchers.query_param_matcher({"limit": "100", "starting_after": lines[0]["id"]})])
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}))
    engine, _ = make_engine(links=known_links())
    outcome = engine.run(state())
    assert len(sent_json("POST", "/invoices/drafts")[0]["lines"]) == 2
    assert outcome.reconciled


@responses.activate
def test_a_reverse_charge_eu_business_gets_the_eu_zone_and_its_vat_number(invoice):
    invoice["customer_address"]["country"] = "DE"
    invoice["customer_tax_exempt"] = "reverse"
    invoice["customer_tax_ids"] = [{"type": "eu_vat", "value": "DE123456789"}]
    invoice["total_taxes"] = []
    for line in invoice["lines"]["data"]:
        line["taxes"] = [{**line["taxes"][0], "amount": 0, "taxability_reason": "reverse_charge"}]
    invoice["total"] = invoice["total_excluding_tax"]
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/customers", json={"collection": []})
    responses.post(f"{ECONOMIC}/customers", json={"customerNumber": 6001})
    responses.get(f"{ECONOMIC}/self", json={"agreementNumber": 1, "company": {"name": "Kystlys ApS", "country": "Danmark"}})
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}, vat="0.00", gross="8620.00"))
    engine, _ = make_engine(links=MemoryLinks(products=known_links().products))
    outcome = engine.run(state())
    customer = sent_json("POST", "/customers")[0]
    # A Danish agreement has no vatNumber on customers: the VAT id goes in the CVR field.
    assert customer["vatZone"] == {"vatZoneNumber": 2} and customer["corporateIdentificationNumber"] == "DE123456789"
    assert "vatNumber" not in customer
    assert customer["country"] == "Germany"
    assert sent_json("POST", "/invoices/drafts")[0]["recipient"]["vatZone"] == {"vatZoneNumber": 2}
    assert outcome.reconciled


@responses.activate
def test_a_booking_whose_answer_was_lost_is_found_booked_not_booked_twice(invoice):
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/invoices/booked", json={"collection": [{"bookedInvoiceNumber": 9004, "netAmount": 8620.0, "vatAmount": 2155.0, "grossAmount": 10775.0}]})
    mock_known_links_exist()
    engine, recorder = make_engine(settings(document_type="booked_invoice"), links=known_links())
    outcome = engine.run(state(attempt=2, economic_draft_number=202, document_create_started=True))
    assert outcome.document_number == 9004
    assert economic_calls() == [*KNOWN_CHECKED_ON_RETRY, ("GET", "/invoices/booked")]  # the draft is gone: it was booked


@responses.activate
def test_a_retry_does_not_trust_a_remembered_customer_or_product_that_e_conomic_no_longer_has(invoice):
    """Customer 5001 and product P1 were deleted in e-conomic after an earlier sync remembered them: the first
    attempt's draft was refused ("Customer 5001 does not exist"); Sync again finds the customer by e-mail and
    makes the product again, and the links point at what e-conomic has now."""
    mock_stripe(invoice)
    responses.get(f"{ECONOMIC}/customers/5001", status=404, json={"message": "Customer '5001' not found.", "httpStatusCode": 404})
    responses.get(f"{ECONOMIC}/customers", json={"collection": [{"customerNumber": 6002, "email": "bogholderi@kystlys.dk"}]})
    responses.get(f"{ECONOMIC}/products/P1", status=404, json={"message": "Product 'P1' not found.", "httpStatusCode": 404})
    responses.get(f"{ECONOMIC}/products/P2", json={"productNumber": "P2"})
    responses.get(f"{ECONOMIC}/products/prod_38AibNyyurlGFb", status=404, json={"message": "not found", "httpStatusCode": 404})
    responses.post(f"{ECONOMIC}/products", json={"productNumber": "prod_38AibNyyurlGFb"})
    responses.get(f"{ECONOMIC}/invoices/drafts", json={"collection": []})
    responses.post(f"{ECONOMIC}/invoices/drafts", json=draft_answer({}))
    links = known_links()
    engine, recorder = make_engine(settings(match_customers_on="email"), links=links)
    outcome = engine.run(state(attempt=2))
    [draft] = sent_json("POST", "/invoices/drafts")
    assert draft["customer"] == {"customerNumber": 6002}
    assert sorted(line["product"]["productNumber"] for line in draft["lines"]) == ["P2", "prod_38AibNyyurlGFb"]
    assert links.customers == {"cus_zWcPDxNG0RaLgg": 6002}
    assert links.products == {"prod_38AibNyyurlGFb": "prod_38AibNyyurlGFb", "prod_U2EqkNk6sEr6f4": "P2"}
    assert outcome.document_number == 101
