"""Connections: "Test this key" and "Test these tokens" check what was just typed, storing nothing."""

from html import unescape

import pytest
import responses

from doubles.stripe import FakeStripe
from portal.extensions import db
from portal.models import Connection, StripeAccount

from .helpers import csrf_token, login, stripe_connect

KEY = "sk_test_typedkey000000000001"
RESTRICTED = "rk_test_invoicesOnly00000003"
SELF = "https://restapi.e-conomic.com/self"


@pytest.fixture
def fake_stripe(app):
    with FakeStripe(KEY, account_name="Acme Danmark ApS",
                    restricted_keys={RESTRICTED: {"invoice_read", "customer_read", "account_read"}}) as fake:
        app.config["STRIPE_API_BASE"] = fake.url
        yield fake


@pytest.fixture
def signed_in(client, account):
    assert login(client, account.email).status_code == 302
    return client


def key_answer(client, account_id: int, key: str) -> str:
    token = csrf_token(client, "/connections")
    response = client.post(f"/connections/stripe/{account_id}/key/test", data={"csrf_token": token, "secret_key": key},
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200
    return unescape(response.get_data(as_text=True))


def stored_account(app, account_id: int) -> StripeAccount:
    with app.app_context():
        found = db.session.get(StripeAccount, account_id)
        db.session.expunge(found)
        return found


def test_the_key_in_the_box_is_tested_and_not_stored(app, signed_in, account, fake_stripe):
    page = signed_in.get("/connections").get_data(as_text=True)
    assert "Test this key" in page and f"/connections/stripe/{account.stripe_account_id}/key/test" in page
    answer = key_answer(signed_in, account.stripe_account_id, KEY)
    assert 'class="flash flash-success"' in answer
    assert f"Connected to Stripe account {fake_stripe.account['id']} (Acme Danmark ApS) in test mode" in answer
    assert "Not saved yet: press Save and check the key" in answer
    stored = stored_account(app, account.stripe_account_id)
    assert (stored.secret_key, stored.checked_at, stored.stripe_account_ref) == (None, None, None)


@pytest.mark.parametrize("key, words", [
    ("", "Type the key first"),
    ("pk_test_publishable0000", "Stripe keys start with sk_test_"),
    ("sk_test_unknownKey000000000", "Stripe refused the key: Invalid API Key provided"),
    (RESTRICTED, "lacks permissions the sync needs: Products (read)"),
])
def test_a_key_stripe_refuses_is_reported_in_place(app, signed_in, account, fake_stripe, key, words):
    answer = key_answer(signed_in, account.stripe_account_id, key)
    assert 'class="flash flash-error"' in answer and words in answer
    assert stored_account(app, account.stripe_account_id).checked_at is None


def test_the_saved_key_stays_when_another_is_tested(app, signed_in, account, fake_stripe):
    with app.app_context():
        stripe_connect(account.merchant_id, "sk_test_savedkey0000000000")
        db.session.commit()
    key_answer(signed_in, account.stripe_account_id, KEY)
    assert stored_account(app, account.stripe_account_id).secret_key == "sk_test_savedkey0000000000"


def test_another_merchants_account_cannot_be_used(signed_in, other_account, fake_stripe):
    token = csrf_token(signed_in, "/connections")
    response = signed_in.post(f"/connections/stripe/{other_account.stripe_account_id}/key/test",
                              data={"csrf_token": token, "secret_key": KEY}, headers={"X-CSRFToken": token})
    assert response.status_code == 404


def tokens_answer(client, **tokens) -> str:
    token = csrf_token(client, "/connections")
    response = client.post("/connections/economic/tokens/test", data={"csrf_token": token, **tokens},
                           headers={"HX-Request": "true", "X-CSRFToken": token})
    assert response.status_code == 200
    return unescape(response.get_data(as_text=True))


def connections_count(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Connection))


@responses.activate
def test_the_tokens_in_the_boxes_are_tested_and_not_stored(app, signed_in):
    page = signed_in.get("/connections").get_data(as_text=True)
    assert "Test these tokens" in page
    responses.get(SELF, json={"agreementNumber": 123456, "company": {"name": "Acme ApS"}},
                  match=[responses.matchers.header_matcher({"X-AppSecretToken": "typedApp", "X-AgreementGrantToken": "typedGrant"})])
    answer = tokens_answer(signed_in, economic_app_secret_token="typedApp", economic_agreement_grant_token="typedGrant")
    assert 'class="flash flash-success"' in answer
    assert "e-conomic accepts these tokens: they open Acme ApS (agreement 123456). Not saved yet" in answer
    assert connections_count(app) == 0


@responses.activate
def test_tokens_economic_refuses_are_reported_in_place(app, signed_in):
    responses.get(SELF, status=401, json={"message": "The token provided in the X-AgreementGrantToken header is not valid.",
                                          "httpStatusCode": 401})
    answer = tokens_answer(signed_in, economic_app_secret_token="typedApp", economic_agreement_grant_token="wrong")
    assert 'class="flash flash-error"' in answer
    assert "e-conomic did not accept these tokens: e-conomic answered 401: The token provided" in answer
    assert "Nothing was saved." in answer
    assert connections_count(app) == 0


@responses.activate
def test_a_blank_token_box_is_the_stored_token_as_when_saving(app, signed_in, account):
    with app.app_context():
        db.session.add(Connection(merchant_id=account.merchant_id, economic_app_secret_token="storedApp",
                                  economic_agreement_grant_token="storedGrant"))
        db.session.commit()
    responses.get(SELF, json={"agreementNumber": 7, "company": {"name": "New ApS"}},
                  match=[responses.matchers.header_matcher({"X-AppSecretToken": "storedApp", "X-AgreementGrantToken": "newGrant"})])
    answer = tokens_answer(signed_in, economic_agreement_grant_token="newGrant")
    assert "they open New ApS (agreement 7)" in answer
    with app.app_context():
        connection = db.session.scalar(db.select(Connection))
        assert connection.economic_agreement_grant_token == "storedGrant" and connection.economic_checked_at is None


def test_empty_or_malformed_token_boxes_are_refused_before_asking_economic(signed_in):
    assert "Paste the tokens first" in tokens_answer(signed_in)
    assert "Tokens contain no spaces." in tokens_answer(signed_in, economic_app_secret_token="has space")
