"""VAT mapping and the shipping and rounding products on the Customer & product settings page."""

import copy
import html
import json
import re
from pathlib import Path

import pytest
import responses

from portal.extensions import db
from portal.models import Connection, SyncSettings, VatMapping
from portal.merchant_config import vat_mappings_for
from portal.settings.sync_config import VatMappingError, vat_mappings_save
from portal.settings.vat_mapping import treatment_from_key
from portal.sync.vat import VatChoice

from . import helpers
from .helpers import csrf_token, login, stripe_connect
from .test_customer_product_settings import API, LISTS, settings_of, valid_post

STRIPE = "https://api.stripe.com"
DATA = Path(__file__).parent / "data"
PAGE = "/customer-product-settings"

ECONOMIC_LISTS = {**LISTS, "/product-groups": [{"productGroupNumber": 1, "name": "Services"}, {"productGroupNumber": 20, "name": "OSS Germany"}]}


def mock_economic():
    for path, items in ECONOMIC_LISTS.items():
        responses.get(API + path, json={"collection": items, "pagination": {"skipPages": 0, "pageSize": 1000, "results": len(items)}})


def stripe_list(url, items):
    return {"object": "list", "data": items, "has_more": False, "url": url}


def tax_rate(rate_id, country, percentage, active=True):
    rate = json.loads((DATA / "tax_rate.json").read_text())
    return {**rate, "id": rate_id, "country": country, "jurisdiction": country, "percentage": percentage, "active": active}


def mock_stripe(tax_rates=(), invoices=()):
    responses.get(STRIPE + "/v1/tax_rates", json=stripe_list("/v1/tax_rates", list(tax_rates)))
    responses.get(STRIPE + "/v1/invoices", json=stripe_list("/v1/invoices", list(invoices)))


def connect(app, merchant_id, stripe=False):
    with app.app_context():
        db.session.add(Connection(merchant_id=merchant_id, economic_app_secret_token="app-token", economic_agreement_grant_token="grant-token"))
        stripe_connect(merchant_id, "sk_test_vatmapping" if stripe else None)
        db.session.add(SyncSettings(merchant_id=merchant_id, home_country="DK", vat_zone_domestic=1, vat_zone_eu_with_vat_id=2, vat_zone_outside_eu=3))
        db.session.commit()


@pytest.fixture
def signed_in(app, client, account):
    connect(app, account.merchant_id)
    login(client, account.email)
    return client


@pytest.fixture
def with_stripe(app, client, account):
    connect(app, account.merchant_id, stripe=True)
    login(client, account.email)
    return client


def page_text(client, path=PAGE):
    return helpers.page_text(client, path)


def rows_of(page):
    """{treatment key: row index} from the page's hidden inputs."""
    return {key: int(index) for index, key in re.findall(r'name="vat_mapping-(\d+)-treatment" type="hidden" value="([^"]+)"', page)}


def mapping_post(token, rows, **changes):
    """The settings form plus VAT mapping rows: [(treatment, zone, group)]."""
    data = valid_post(token, **changes)
    for index, (key, zone, group) in enumerate(rows):
        data[f"vat_mapping-{index}-treatment"] = key
        data[f"vat_mapping-{index}-vat_zone_number"] = zone
        data[f"vat_mapping-{index}-product_group_number"] = group
    return data


def mappings(app, merchant_id):
    with app.app_context():
        return vat_mappings_for(merchant_id)


def stored_rows(app):
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(VatMapping))


# --- Defaults ---------------------------------------------------------------------------------------


def test_a_new_merchants_mapping_comes_from_its_vat_zone_settings(app, account):
    connect(app, account.merchant_id)
    assert mappings(app, account.merchant_id) == {
        "rate:DK:25": VatChoice(1), "reverse_charge": VatChoice(2), "none:outside_eu": VatChoice(3),
    }


def test_a_merchant_without_settings_has_nothing_mapped_and_reading_writes_nothing(app, account):
    assert mappings(app, account.merchant_id) == {}
    with app.app_context():
        assert db.session.scalar(db.select(SyncSettings).where(SyncSettings.merchant_id == account.merchant_id)) is None


@responses.activate
def test_the_page_lists_the_standard_treatments_with_their_defaults(signed_in):
    mock_economic()
    page = page_text(signed_in)
    assert 'id="vat-mapping"' in page
    assert "Stripe charged VAT in these ways. Choose where each goes in e-conomic. e-conomic computes the VAT itself" in page
    for label in ("DK 25 %", "Reverse charge (the customer accounts for VAT)", "Customer exempt from VAT",
                  "No VAT charged, customer outside the EU", "— not mapped: such invoices are held —", "— the product's own group —"):
        assert label in page, label
    rows = rows_of(page)
    assert {"rate:DK:25", "reverse_charge", "exempt", "none:outside_eu"} <= set(rows)
    zone = f'name="vat_mapping-{rows["rate:DK:25"]}-vat_zone_number"'
    assert zone in page
    after = page.split(zone, 1)[1].split("</select>", 1)[0]
    assert '<option selected value="1">Domestic (1)</option>' in after
    exempt = page.split(f'name="vat_mapping-{rows["exempt"]}-vat_zone_number"', 1)[1].split("</select>", 1)[0]
    assert '<option selected value="">— not mapped: such invoices are held —</option>' in exempt
    assert "Connect Stripe on the Connections page" in page


# --- What Stripe shows ------------------------------------------------------------------------------


@responses.activate
def test_stripe_tax_rates_and_invoice_treatments_are_listed_and_cached(with_stripe):
    mock_economic()
    invoice = json.loads((DATA / "invoice_paid_automatic.json").read_text())  # DE 19 % on a German customer
    draft = copy.deepcopy(invoice)
    draft.update(id="in_draft", status="draft", default_tax_rates=[tax_rate("txr_it", "IT", 22)])
    for line in draft["lines"]["data"]:
        for tax in line["taxes"]:
            tax["tax_rate_details"]["tax_rate"] = "txr_it"
    mock_stripe(
        tax_rates=[tax_rate("txr_dk", "DK", 25), tax_rate("txr_fr", "FR", 20), tax_rate("txr_nl", "NL", 21, active=False)],
        invoices=[invoice, draft],
    )
    page = page_text(with_stripe)
    rows = rows_of(page)
    assert {"rate:FR:20", "rate:DE:19"} <= set(rows)
    assert "FR 20 % (OSS)" in page and "DE 19 % (OSS)" in page
    assert "rate:NL:21" not in rows  # an archived tax rate
    assert "rate:IT:22" not in rows  # a draft is not finalized
    assert "Connect Stripe" not in page and "Could not read" not in page
    listed = next(call.request for call in responses.calls if "/v1/invoices" in call.request.url)
    assert "limit=100" in listed.url and "expand%5B0%5D=data.total_taxes.tax_rate_details.tax_rate" in listed.url
    assert listed.headers["Authorization"] == "Bearer sk_test_vatmapping"
    stripe_calls = sum("api.stripe.com" in call.request.url for call in responses.calls)
    page_text(with_stripe)
    assert sum("api.stripe.com" in call.request.url for call in responses.calls) == stripe_calls  # from the cache
    page_text(with_stripe, PAGE + "?refresh=1")
    assert sum("api.stripe.com" in call.request.url for call in responses.calls) == 2 * stripe_calls


@responses.activate
def test_when_stripe_cannot_be_read_the_standard_and_stored_rows_stay(app, with_stripe, account):
    mock_economic()
    with app.app_context():
        vat_mappings_save(account.merchant_id, {"rate:SE:25": VatChoice(2)})
        db.session.commit()
    responses.get(STRIPE + "/v1/tax_rates", status=401, json={"error": {"message": "Invalid API Key provided: sk_test_****ping", "type": "invalid_request_error"}})
    page = page_text(with_stripe)
    assert "Could not read your Stripe tax rates and invoices (Invalid API Key provided" in page
    assert {"rate:DK:25", "reverse_charge", "rate:SE:25"} <= set(rows_of(page))
    assert "SE 25 % (OSS)" in page


# --- Saving -----------------------------------------------------------------------------------------


@responses.activate
def test_saving_a_mapping_stores_only_what_changed_and_reads_back(app, signed_in, account):
    mock_economic()
    token = csrf_token(signed_in, PAGE)
    rows = [("rate:DK:25", "1", ""), ("rate:DE:19", "2", "20"), ("exempt", "", "")]
    response = signed_in.post(PAGE, data=mapping_post(token, rows), follow_redirects=True)
    assert "Customer &amp; product settings saved." in response.get_data(as_text=True)
    assert mappings(app, account.merchant_id) == {
        "rate:DK:25": VatChoice(1), "rate:DE:19": VatChoice(2, 20), "reverse_charge": VatChoice(2), "none:outside_eu": VatChoice(3),
        "none:eu": VatChoice(1),  # the form's "EU customers without a VAT id" zone
    }
    assert stored_rows(app) == 1  # the rows left as shown keep following the VAT zone settings
    page = page_text(signed_in)
    row = rows_of(page)["rate:DE:19"]
    group = page.split(f'name="vat_mapping-{row}-product_group_number"', 1)[1].split("</select>", 1)[0]
    assert '<option selected value="20">OSS Germany (20)</option>' in group
    # A later change of the domestic VAT zone moves the default row with it, not the stored one.
    token = csrf_token(signed_in, PAGE)
    signed_in.post(PAGE, data=mapping_post(token, [("rate:DK:25", "1", ""), ("rate:DE:19", "2", "20")], vat_zone_domestic="3"))
    assert mappings(app, account.merchant_id)["rate:DK:25"] == VatChoice(3)
    assert mappings(app, account.merchant_id)["rate:DE:19"] == VatChoice(2, 20)


@responses.activate
def test_clearing_a_default_leaves_the_treatment_unmapped(app, signed_in, account):
    mock_economic()
    token = csrf_token(signed_in, PAGE)
    signed_in.post(PAGE, data=mapping_post(token, [("rate:DK:25", "", "")]))
    assert "rate:DK:25" not in mappings(app, account.merchant_id)
    page = page_text(signed_in)
    zone = page.split(f'name="vat_mapping-{rows_of(page)["rate:DK:25"]}-vat_zone_number"', 1)[1].split("</select>", 1)[0]
    assert '<option selected value="">— not mapped: such invoices are held —</option>' in zone


@responses.activate
@pytest.mark.parametrize(
    "row, message",
    [
        (("rate:DE:19", "99", ""), "VAT zone 99 is not in your e-conomic's list of VAT zones"),
        (("rate:DE:19", "2", "77"), "Product group 77 is not in your e-conomic's list of product groups"),
        (("rate:DE:19", "", "20"), "Choose a VAT zone too, or set the product group back to the product's own group."),
        (("../../etc", "2", ""), "This row is not a VAT treatment the sync knows: reload the page and choose again."),
    ],
)
def test_refused_rows_say_why_and_change_nothing(app, signed_in, account, row, message):
    mock_economic()
    token = csrf_token(signed_in, PAGE)
    response = signed_in.post(PAGE, data=mapping_post(token, [("rate:DK:25", "", ""), row], customer_group_number="2"))
    assert response.status_code == 422
    assert message in html.unescape(response.get_data(as_text=True))
    assert stored_rows(app) == 0
    assert settings_of(app, account.merchant_id).customer_group_number is None


def test_saving_is_all_or_none(app, account):
    with app.app_context():
        with pytest.raises(VatMappingError):
            vat_mappings_save(account.merchant_id, {"rate:DE:19": VatChoice(2), "exempt": VatChoice(None, 20)})
        db.session.commit()
    assert stored_rows(app) == 0


@responses.activate
def test_one_merchants_mapping_never_shows_for_another(app, client, with_stripe, account, other_account):
    mock_economic()
    mock_stripe(tax_rates=[tax_rate("txr_fr", "FR", 20)])
    token = csrf_token(with_stripe, PAGE)
    with_stripe.post(PAGE, data=mapping_post(token, [("rate:DE:19", "2", "20")]))
    assert mappings(app, account.merchant_id)["rate:DE:19"] == VatChoice(2, 20)
    with_stripe.post("/logout", data={"csrf_token": csrf_token(with_stripe, "/")})
    login(client, other_account.email)
    page = page_text(client)
    assert "DE 19 % (OSS)" not in page and "FR 20 % (OSS)" not in page and "OSS Germany (20)" not in page
    assert not {"rate:DE:19", "rate:FR:20"} & set(rows_of(page))
    assert mappings(app, other_account.merchant_id) == {}
    with app.app_context():
        vat_mappings_save(other_account.merchant_id, {"rate:DE:19": VatChoice(None)})
        db.session.commit()
    assert mappings(app, account.merchant_id)["rate:DE:19"] == VatChoice(2, 20)


def test_stored_keys_get_their_labels_back():
    assert treatment_from_key("rate:DE:19", "DK").label == "DE 19 % (OSS)"
    assert treatment_from_key("rate:DK:25", "DK").label == "DK 25 %"
    assert treatment_from_key("zero_rated:DE", "DK").label == "DE, zero-rated"
    assert treatment_from_key("rate:DE:19+rate:DE:7", "DK").label == "DE 19 % (OSS) + DE 7 % (OSS)"
    assert treatment_from_key("none:outside_eu", "DK").label == "No VAT charged, customer outside the EU"
    assert treatment_from_key("something:new", "DK").label == "something:new"


# --- Shipping and rounding products -----------------------------------------------------------------


@responses.activate
def test_shipping_and_rounding_products_are_checked_in_economic_and_saved(app, signed_in, account):
    mock_economic()
    responses.get(API + "/products/SHIP", json={"productNumber": "SHIP", "name": "Shipping"})
    responses.get(API + "/products/ROUND%2F1", json={"productNumber": "ROUND/1", "name": "Rounding"})
    page = page_text(signed_in)
    assert 'id="shipping-product"' in page and 'id="rounding-product"' in page
    assert "Shipping Stripe charged is booked on this product, with its VAT as Stripe computed it." in page
    assert "choose one in a product group whose sales accounts carry no VAT" in page
    token = csrf_token(signed_in, PAGE)
    response = signed_in.post(PAGE, data=valid_post(token, shipping_product_number="SHIP", rounding_product_number="ROUND/1"), follow_redirects=True)
    assert "settings saved" in response.get_data(as_text=True)
    settings = settings_of(app, account.merchant_id)
    assert (settings.shipping_product_number, settings.rounding_product_number) == ("SHIP", "ROUND/1")
    calls = len(responses.calls)
    token = csrf_token(signed_in, PAGE)
    signed_in.post(PAGE, data=valid_post(token, shipping_product_number="SHIP", rounding_product_number="ROUND/1"))
    assert not any("/products/" in call.request.url for call in responses.calls[calls:])  # unchanged: not asked again


@responses.activate
def test_a_product_economic_does_not_have_is_refused(app, signed_in, account):
    mock_economic()
    responses.get(API + "/products/NOPE", status=404, json={"message": "Product not found.", "httpStatusCode": 404})
    token = csrf_token(signed_in, PAGE)
    response = signed_in.post(PAGE, data=valid_post(token, rounding_product_number="NOPE", customer_group_number="2"))
    assert response.status_code == 422
    assert "e-conomic has no product number NOPE. Create it in e-conomic first, or enter another number." in response.get_data(as_text=True)
    settings = settings_of(app, account.merchant_id)
    assert (settings.rounding_product_number, settings.customer_group_number) == (None, None)


@responses.activate
def test_when_economic_cannot_say_the_product_is_saved_with_a_warning(app, signed_in, account):
    mock_economic()
    responses.get(API + "/products/SHIP", status=503, json={"message": "Service unavailable", "httpStatusCode": 503})
    token = csrf_token(signed_in, PAGE)
    response = signed_in.post(PAGE, data=valid_post(token, shipping_product_number="SHIP"), follow_redirects=True)
    body = response.get_data(as_text=True)
    assert "settings saved" in body
    assert "Product SHIP could not be checked in e-conomic (e-conomic answered 503: Service unavailable); check that it exists there." in body
    assert settings_of(app, account.merchant_id).shipping_product_number == "SHIP"


@responses.activate
def test_product_numbers_longer_than_economic_allows_are_refused(app, signed_in, account):
    mock_economic()
    token = csrf_token(signed_in, PAGE)
    response = signed_in.post(PAGE, data=valid_post(token, shipping_product_number="S" * 26))
    assert response.status_code == 422
    assert "e-conomic product numbers have at most 25 characters." in response.get_data(as_text=True)
