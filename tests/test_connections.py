
import responses
from cryptography.fernet import Fernet
from sqlalchemy import text

from portal import create_app
from portal.extensions import db
from portal.models import Connection

from .helpers import csrf_token, login

SECRETS = {
    "stripe_secret_key": "sk_test_51AbcdefghijklmnopQRST",
    "stripe_webhook_secret": "whsec_abcdefghijklmnopWXYZ",
    "economic_app_secret_token": "appSecret1234567890abcd",
    "economic_agreement_grant_token": "grantToken1234567890wxyz",
}


def save_connections(client, **values):
    token = csrf_token(client, "/connections")
    return client.post("/connections", data={"csrf_token": token, **values})


def signed_in(client, account):
    assert login(client, account.email).status_code == 302
    return client


def test_secrets_are_encrypted_at_rest(app, client, account):
    signed_in(client, account)
    assert save_connections(client, **SECRETS).status_code == 302
    with app.app_context():
        raw = db.session.execute(text("SELECT * FROM connections")).mappings().one()
        dump = " ".join(str(value) for value in raw.values())
        for secret in SECRETS.values():
            assert secret not in dump
        for name in SECRETS:
            assert raw[name].startswith("gAAAAA")  # a Fernet token
        connection = db.session.scalar(db.select(Connection))
        assert connection.stripe_secret_key == SECRETS["stripe_secret_key"]


def test_secrets_are_never_shown_back_in_full(client, account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    page = client.get("/connections").get_data(as_text=True)
    assert "Connections saved." in page
    for secret in SECRETS.values():
        assert secret not in page
        assert secret[-4:] in page  # the last four characters tell them apart


def test_blank_fields_keep_what_is_stored(app, client, account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    save_connections(client, stripe_secret_key="sk_live_newKey0000000000")
    with app.app_context():
        connection = db.session.scalar(db.select(Connection))
        assert connection.stripe_secret_key == "sk_live_newKey0000000000"
        assert connection.economic_app_secret_token == SECRETS["economic_app_secret_token"]


def test_a_malformed_key_is_refused_with_a_form_error(app, client, account):
    signed_in(client, account)
    response = save_connections(client, stripe_secret_key="pk_test_publishable", stripe_webhook_secret="nope")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Stripe keys start with sk_test_" in body
    assert "Signing secrets start with whsec_" in body
    with app.app_context():
        assert db.session.scalar(db.select(Connection)) is None


def test_saving_without_csrf_token_is_refused_and_changes_nothing(app, client, account):
    signed_in(client, account)
    response = client.post("/connections", data=SECRETS)
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(db.select(Connection)) is None


def test_htmx_requests_without_the_csrf_header_are_refused(client, account):
    signed_in(client, account)
    response = client.post("/connections/test/stripe", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_the_page_shows_the_merchants_own_webhook_url_and_events(client, account, other_account):
    signed_in(client, account)
    page = client.get("/connections").get_data(as_text=True)
    assert f"http://localhost/webhooks/stripe/{account.webhook_key}" in page
    assert other_account.webhook_key not in page
    for event in ("invoice.sent", "invoice.paid", "invoice.finalized"):
        assert event in page


def test_one_merchant_never_sees_anothers_secrets(client, account, other_account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, other_account.email)
    page = client.get("/connections").get_data(as_text=True)
    for secret in SECRETS.values():
        assert secret[-4:] not in page
    assert page.count("not set") == 4


def htmx_post(client, path):
    token = csrf_token(client, "/connections")
    return client.post(path, headers={"HX-Request": "true", "X-CSRFToken": token})


@responses.activate
def test_stripe_connection_test_success(client, account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    responses.get(
        "https://api.stripe.com/v1/invoices",
        json={"object": "list", "data": [], "has_more": False, "url": "/v1/invoices"},
    )
    response = htmx_post(client, "/connections/test/stripe")
    assert "Connected to Stripe (test mode)" in response.get_data(as_text=True)
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == f"Bearer {SECRETS['stripe_secret_key']}"
    assert "limit=1" in sent.url


@responses.activate
def test_stripe_connection_test_shows_stripes_error(client, account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    responses.get(
        "https://api.stripe.com/v1/invoices",
        status=401,
        json={"error": {"message": "Invalid API Key provided: sk_test_****QRST", "type": "invalid_request_error"}},
    )
    body = htmx_post(client, "/connections/test/stripe").get_data(as_text=True)
    assert "Stripe refused: Invalid API Key provided" in body
    assert "flash-error" in body


@responses.activate
def test_economic_connection_test_calls_self_with_both_tokens(client, account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    responses.get(
        "https://restapi.e-conomic.com/self",
        json={"agreementNumber": 123456, "company": {"name": "Acme ApS"}, "self": "https://restapi.e-conomic.com/self"},
        match=[
            responses.matchers.header_matcher(
                {
                    "X-AppSecretToken": SECRETS["economic_app_secret_token"],
                    "X-AgreementGrantToken": SECRETS["economic_agreement_grant_token"],
                }
            )
        ],
    )
    body = htmx_post(client, "/connections/test/economic").get_data(as_text=True)
    assert "Connected to e-conomic as Acme ApS (agreement 123456)." in body


@responses.activate
def test_economic_connection_test_shows_economics_error(client, account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    responses.get(
        "https://restapi.e-conomic.com/self",
        status=401,
        json={
            "message": "The token provided in the X-AgreementGrantToken header is not valid.",
            "errorCode": "E04010",
            "developerHint": "Find the token in your app's list of granted agreements.",
            "logId": "0HN7ABCDEF:00000001",
            "httpStatusCode": 401,
            "logTime": "2026-11-25T08:00:00",
        },
    )
    body = htmx_post(client, "/connections/test/economic").get_data(as_text=True)
    assert "e-conomic answered 401: The token provided in the X-AgreementGrantToken header is not valid." in body
    assert "0HN7ABCDEF:00000001" in body


def test_connection_tests_before_any_secret_is_saved_say_what_is_missing(client, account):
    signed_in(client, account)
    assert "Enter and save a Stripe secret key first." in htmx_post(client, "/connections/test/stripe").get_data(as_text=True)
    assert "Enter and save both e-conomic tokens first." in htmx_post(client, "/connections/test/economic").get_data(as_text=True)


def test_key_rotation_re_encrypts_every_secret(app, base_config, client, account):
    signed_in(client, account)
    save_connections(client, **SECRETS)
    old_key = base_config["ENCRYPTION_KEYS"][0]
    new_key = Fernet.generate_key().decode()
    rotating = create_app({**base_config, "ENCRYPTION_KEYS": [new_key, old_key]})
    result = rotating.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert "Re-encrypted 4 secret(s)" in result.output, result.output
    new_only = create_app({**base_config, "ENCRYPTION_KEYS": [new_key]})
    with new_only.app_context():
        connection = db.session.scalar(db.select(Connection))
        assert connection.economic_agreement_grant_token == SECRETS["economic_agreement_grant_token"]
    for extra_app in (rotating, new_only):
        with extra_app.app_context():
            db.session.remove()
            db.engine.dispose()
