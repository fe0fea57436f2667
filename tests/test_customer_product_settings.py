"""Customer & product settings: e-conomic's lists by name, cached briefly, and clear refusals."""

import pytest
import responses

from portal.extensions import db
from portal.models import Connection, SyncSettings

from .helpers import csrf_token, login

API = "https://restapi.e-conomic.com"
LISTS = {
    "/customer-groups": [{"customerGroupNumber": 1, "name": "Domestic customers"}, {"customerGroupNumber": 2, "name": "Foreign customers"}],
    "/payment-terms": [{"paymentTermsNumber": 1, "name": "Net 8 days", "daysOfCredit": 8, "paymentTermsType": "net"}],
    "/vat-zones": [
        {"vatZoneNumber": 1, "name": "Domestic", "enabledForCustomer": True, "enabledForSupplier": True},
        {"vatZoneNumber": 2, "name": "EU", "enabledForCustomer": True, "enabledForSupplier": True},
        {"vatZoneNumber": 3, "name": "Abroad", "enabledForCustomer": True, "enabledForSupplier": True},
    ],
    "/layouts": [{"layoutNumber": 19, "name": "Standard layout"}],
    "/currencies": [{"code": "DKK", "name": "Danish krone", "isoNumber": "208"}, {"code": "EUR", "name": "Euro", "isoNumber": "978"}],
    "/product-groups": [{"productGroupNumber": 1, "name": "Services"}],
}


def mock_lists():
    for path, items in LISTS.items():
        responses.get(API + path, json={"collection": items, "pagination": {"skipPages": 0, "pageSize": 1000, "results": len(items)}})


@pytest.fixture
def connected(app, client, account):
    with app.app_context():
        db.session.add(Connection(merchant_id=account.merchant_id, economic_app_secret_token="app-token", economic_agreement_grant_token="grant-token"))
        db.session.commit()
    login(client, account.email)
    return client


def valid_post(token, **changes):
    data = {
        "csrf_token": token,
        "match_customers_on": "email",
        "customer_number_mode": "economic",
        "customer_number_metadata_key": "economic_customer_number",
        "payment_terms_number": "1",
        "customer_group_number": "2",
        "home_country": "DK",
        "vat_zone_domestic": "1",
        "vat_zone_eu_with_vat_id": "2",
        "vat_zone_eu_without_vat_id": "1",
        "vat_zone_outside_eu": "3",
        "currency_mode": "invoice",
        "fixed_currency": "",
        "layout_number": "19",
        "time_zone": "Europe/Copenhagen",
        "product_matching": "simple",
        "simple_search_on": "name",
        "product_number_metadata_key": "economic_product_number",
        "product_not_found": "create",
        "default_product_number": "STRIPE-MISC",
        "new_product_group_number": "1",
        "apply_invoice_discounts": "y",
        "discount_product_number": "DISCOUNT",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def settings_of(app, merchant_id):
    with app.app_context():
        return db.session.scalar(db.select(SyncSettings).where(SyncSettings.merchant_id == merchant_id))


@responses.activate
def test_page_uses_the_documented_words_and_economics_names(connected):
    mock_lists()
    page = connected.get("/customer-product-settings").get_data(as_text=True)
    for words in (
        "Customer sync", "Match customers on", "Customer name", "E-mail", "Phone", "Custom field",
        "Let e-conomic create the customer number", "Use the customer number from Stripe",
        "Customer default mappings", "Payment terms", "Customer group", "VAT zone", "Currency", "Invoice layout",
        "Product sync", "Product matching", "Simple search", "Direct link", "When a product is not found",
        "Skip invoice generation", "Use a default product", "Create a new product", "Apply invoice-level discounts",
    ):
        assert words in page, words
    for title_case in ("Customer Sync", "Customer Name", "Custom Field", "Payment Terms", "Invoice Layout", "Simple Search",
                       "Use A Default Product", "Create A New Product", "Invoice-Level"):
        assert title_case not in page, title_case
    assert '<option value="2">Foreign customers (2)</option>' in page
    assert '<option value="19">Standard layout (19)</option>' in page
    assert '<option value="EUR">Euro (EUR)</option>' in page
    sent = responses.calls[0].request
    assert sent.headers["X-AppSecretToken"] == "app-token" and sent.headers["X-AgreementGrantToken"] == "grant-token"
    assert "pagesize=1000" in sent.url


@responses.activate
def test_lists_are_cached_briefly(connected):
    mock_lists()
    connected.get("/customer-product-settings")
    calls = len(responses.calls)
    connected.get("/customer-product-settings")
    assert len(responses.calls) == calls  # served from the cache
    connected.get("/customer-product-settings?refresh=1")
    assert len(responses.calls) == 2 * calls


@responses.activate
def test_saving_stores_numbers_and_shows_them_on_reload(app, connected, account):
    mock_lists()
    token = csrf_token(connected, "/customer-product-settings")
    response = connected.post("/customer-product-settings", data=valid_post(token), follow_redirects=True)
    assert "Customer &amp; product settings saved." in response.get_data(as_text=True)
    settings = settings_of(app, account.merchant_id)
    assert (settings.customer_group_number, settings.vat_zone_outside_eu, settings.layout_number) == (2, 3, 19)
    assert (settings.product_matching, settings.simple_search_on, settings.product_not_found) == ("simple", "name", "create")
    assert settings.fixed_currency is None
    page = connected.get("/customer-product-settings").get_data(as_text=True)
    assert '<option selected value="2">Foreign customers (2)</option>' in page


@responses.activate
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"customer_group_number": "99"}, "Not a valid choice"),
        ({"match_customers_on": "custom", "custom_match_stripe_key": ""}, "Enter the Stripe metadata key to match on."),
        ({"match_customers_on": "custom", "custom_match_stripe_key": "cvr", "custom_match_economic_field": ""}, "Choose the e-conomic field to match on."),
        ({"product_not_found": "default", "default_product_number": ""}, "Enter the default product number."),
        ({"default_product_number": "P" * 26}, "at most 25 characters"),
        ({"discount_product_number": ""}, "Enter the product number for discount lines."),
        ({"product_not_found": "guess"}, "Not a valid choice"),
        ({"customer_number_metadata_key": "has space"}, "Use letters, digits"),
    ],
)
def test_refusals_are_clear_and_change_nothing(app, connected, account, changes, message):
    mock_lists()
    token = csrf_token(connected, "/customer-product-settings")
    response = connected.post("/customer-product-settings", data=valid_post(token, **changes))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert settings_of(app, account.merchant_id).customer_group_number is None


def test_without_an_economic_connection_the_page_says_so(client, account):
    login(client, account.email)
    page = client.get("/customer-product-settings").get_data(as_text=True)
    assert "Connect e-conomic on the Connections page" in page


@responses.activate
def test_a_failing_economic_is_reported_and_saved_values_stay_choosable(app, connected, account):
    with app.app_context():
        db.session.add(SyncSettings(merchant_id=account.merchant_id, layout_number=7))
        db.session.commit()
    responses.get(API + "/customer-groups", status=503, json={"message": "Service unavailable", "httpStatusCode": 503})
    page = connected.get("/customer-product-settings").get_data(as_text=True)
    assert "Could not load your e-conomic lists: e-conomic answered 503: Service unavailable" in page
    assert '<option selected value="7">7 (saved)</option>' in page


@responses.activate
def test_settings_never_leak_between_merchants(app, client, connected, account, other_account):
    mock_lists()
    token = csrf_token(connected, "/customer-product-settings")
    connected.post("/customer-product-settings", data=valid_post(token))
    connected.post("/logout", data={"csrf_token": csrf_token(connected, "/")})
    login(client, other_account.email)
    page = client.get("/customer-product-settings").get_data(as_text=True)
    assert "Connect e-conomic on the Connections page" in page  # the other merchant's connection is not used
    assert "Foreign customers" not in page
    assert settings_of(app, other_account.merchant_id).customer_group_number is None


# --- Fields that belong to an option: shown, validated and saved only while it is chosen ------------------


@responses.activate
def test_fields_of_options_not_chosen_are_hidden(connected):
    mock_lists()
    page = connected.get("/customer-product-settings").get_data(as_text=True)
    # The defaults: match on e-mail, the invoice's currency, direct link, create new products, discounts on.
    for hidden in ('id="custom-match" data-shown-when="match_customers_on=custom" hidden',
                   'id="fixed-currency" data-shown-when="currency_mode=fixed" hidden',
                   'id="simple-search" data-shown-when="product_matching=simple" hidden'):
        assert hidden in page, hidden
    for shown in ('id="direct-link" data-shown-when="product_matching=direct">',
                  'id="product-group" data-shown-when="product_not_found=create">',
                  'id="discount-product" data-shown-when="apply_invoice_discounts">'):
        assert shown in page, shown
    # The default product serves lines without a Stripe product whatever is chosen, so it always shows.
    assert '<div id="default-product">' in page


@responses.activate
def test_a_hidden_options_field_is_neither_validated_nor_saved(app, connected, account):
    mock_lists()
    with app.app_context():
        db.session.add(SyncSettings(merchant_id=account.merchant_id, custom_match_stripe_key="cvr", discount_product_number="DISCOUNT"))
        db.session.commit()
    token = csrf_token(connected, "/customer-product-settings")
    data = valid_post(token, match_customers_on="email", custom_match_stripe_key="not a key!",
                      apply_invoice_discounts=None, discount_product_number="")
    response = connected.post("/customer-product-settings", data=data, follow_redirects=True)
    assert "Customer &amp; product settings saved." in response.get_data(as_text=True)
    settings = settings_of(app, account.merchant_id)
    assert settings.custom_match_stripe_key == "cvr"  # kept as stored: the field was not shown
    assert settings.apply_invoice_discounts is False and settings.discount_product_number == "DISCOUNT"
    page = connected.get("/customer-product-settings").get_data(as_text=True)
    assert 'id="discount-product" data-shown-when="apply_invoice_discounts" hidden' in page


@responses.activate
def test_a_chosen_options_field_is_validated(app, connected, account):
    mock_lists()
    token = csrf_token(connected, "/customer-product-settings")
    response = connected.post("/customer-product-settings", data=valid_post(
        token, match_customers_on="custom", custom_match_stripe_key="not a key!", custom_match_economic_field="vatNumber"))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Use letters, digits" in page
    assert 'id="custom-match" data-shown-when="match_customers_on=custom">' in page  # shown with its error
