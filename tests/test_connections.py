
import responses
from cryptography.fernet import Fernet
from sqlalchemy import text

from portal import create_app
from portal.extensions import db
from portal.models import Connection, StripeAccount

from .helpers import csrf_token, login, stripe_connect

SECRETS = {
    "secret_key": "sk_test_51AbcdefghijklmnopQRST",
    "webhook_secret": "whsec_abcdefghijklmnopWXYZ",
    "economic_app_secret_token": "appSecret1234567890abcd",
    "economic_agreement_grant_token": "grantToken1234567890wxyz",
}


def store_secrets(app, merchant_id: int) -> None:
    """The four secrets as the Connections page stores them (its checks with Stripe and e-conomic are tested
    in test_stripe_accounts.py and test_economic_install.py)."""
    with app.app_context():
        stripe_connect(merchant_id, SECRETS["secret_key"], SECRETS["webhook_secret"])
        db.session.add(Connection(merchant_id=merchant_id, economic_app_secret_token=SECRETS["economic_app_secret_token"],
                                  economic_agreement_grant_token=SECRETS["economic_agreement_grant_token"]))
        db.session.commit()


def signed_in(client, account):
    assert login(client, account.email).status_code == 302
    return client


def test_secrets_are_encrypted_at_rest(app, account):
    store_secrets(app, account.merchant_id)
    with app.app_context():
        raw = {**db.session.execute(text("SELECT * FROM connections")).mappings().one(),
               **db.session.execute(text("SELECT * FROM stripe_accounts")).mappings().one()}
        dump = " ".join(str(value) for value in raw.values())
        for name, secret in SECRETS.items():
            assert secret not in dump
            assert raw[name].startswith("gAAAAA")  # a Fernet token
        assert db.session.scalar(db.select(StripeAccount)).secret_key == SECRETS["secret_key"]


def test_secrets_are_never_shown_back_in_full(app, client, account):
    store_secrets(app, account.merchant_id)
    signed_in(client, account)
    page = client.get("/connections").get_data(as_text=True)
    for secret in SECRETS.values():
        assert secret not in page
    for name in ("secret_key", "webhook_secret"):
        assert SECRETS[name][-4:] in page  # the last four characters tell them apart


def test_saving_a_key_without_csrf_token_is_refused_and_changes_nothing(app, client, account):
    signed_in(client, account)
    response = client.post(f"/connections/stripe/{account.stripe_account_id}/key", data={"secret_key": SECRETS["secret_key"]})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(db.select(StripeAccount)).secret_key is None


def test_htmx_requests_without_the_csrf_header_are_refused(client, account):
    signed_in(client, account)
    response = client.post("/connections/test/economic", headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_the_page_shows_the_merchants_own_webhook_url_and_events(client, account, other_account):
    signed_in(client, account)
    page = client.get("/connections").get_data(as_text=True)
    assert f"http://localhost/webhooks/stripe/{account.webhook_key}" in page
    assert other_account.webhook_key not in page
    for event in ("invoice.sent", "invoice.paid", "invoice.finalized"):
        assert event in page


def test_one_merchant_never_sees_anothers_secrets(app, client, account, other_account):
    store_secrets(app, account.merchant_id)
    login(client, other_account.email)
    page = client.get("/connections").get_data(as_text=True)
    for secret in SECRETS.values():
        assert secret[-4:] not in page
    assert "not saved yet" in page
    assert "no signing secret" in page
    assert "not connected" in page


def htmx_post(client, path):
    token = csrf_token(client, "/connections")
    return client.post(path, headers={"HX-Request": "true", "X-CSRFToken": token})


def paste_economic_tokens(client, app_secret_token: str, agreement_grant_token: str):
    """Paste both e-conomic tokens (portal/settings/economic_connect.py checks them with `/self` first)."""
    token = csrf_token(client, "/connections")
    return client.post("/connections/economic/tokens", data={"csrf_token": token, "economic_app_secret_token": app_secret_token,
                                                             "economic_agreement_grant_token": agreement_grant_token})


def economic_tokens_stored(app, merchant_id: int) -> None:
    """The tokens in SECRETS, stored as if pasted when e-conomic still took them."""
    with app.app_context():
        db.session.add(Connection(merchant_id=merchant_id, economic_app_secret_token=SECRETS["economic_app_secret_token"],
                                  economic_agreement_grant_token=SECRETS["economic_agreement_grant_token"]))
        db.session.commit()


@responses.activate
def test_economic_connection_test_calls_self_with_both_tokens(client, account):
    signed_in(client, account)
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
    assert paste_economic_tokens(client, SECRETS["economic_app_secret_token"], SECRETS["economic_agreement_grant_token"]).status_code == 302
    body = htmx_post(client, "/connections/test/economic").get_data(as_text=True)
    assert "Connected to e-conomic as Acme ApS (agreement 123456)." in body
    assert len(responses.calls) == 2  # once before storing the pasted tokens, once for the test


@responses.activate
def test_economic_connection_test_shows_economics_error(app, client, account):
    signed_in(client, account)
    economic_tokens_stored(app, account.merchant_id)
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


def test_connection_tests_before_any_secret_is_saved_say_what_is_missing(app, client, account):
    signed_in(client, account)
    answer = htmx_post(client, f"/connections/stripe/{account.stripe_account_id}/test").get_data(as_text=True)
    assert "Enter and save the secret key of “Stripe” first." in answer
    assert "Enter and save both e-conomic tokens first." in htmx_post(client, "/connections/test/economic").get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Connection)) == 0  # a check stores no empty row


def test_key_rotation_re_encrypts_every_secret(app, base_config, account):
    store_secrets(app, account.merchant_id)
    old_key = base_config["ENCRYPTION_KEYS"][0]
    new_key = Fernet.generate_key().decode()
    rotating = create_app({**base_config, "ENCRYPTION_KEYS": [new_key, old_key]})
    result = rotating.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert "Re-encrypted 4 secret(s)" in result.output, result.output
    new_only = create_app({**base_config, "ENCRYPTION_KEYS": [new_key]})
    with new_only.app_context():
        connection = db.session.scalar(db.select(Connection))
        assert connection.economic_agreement_grant_token == SECRETS["economic_agreement_grant_token"]
        assert db.session.scalar(db.select(StripeAccount)).webhook_secret == SECRETS["webhook_secret"]
    for extra_app in (rotating, new_only):
        with extra_app.app_context():
            db.session.remove()
            db.engine.dispose()
