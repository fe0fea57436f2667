"""Connect Stripe: the Connections page creates the merchant's webhook endpoint in Stripe (the double, over
HTTP), keeps its events in step with what is synced, and deletes it; every refusal is said in the merchant's
words and changes nothing."""

from __future__ import annotations

from html import unescape

import pytest
import stripe

from doubles.stripe import FakeStripe, make_invoice, signed_event
from portal.extensions import db
from portal.models import JournalSettings, StripeAccount, WebhookEvent
from portal.webhooks import WEBHOOK_EVENTS

from .helpers import csrf_token, login
from .test_journal_settings import valid_post

KEY = "sk_test_51AbcdefghijklmnopQRST"
PUBLIC = "https://sync.example.com"


@pytest.fixture
def stripe_fake(app):
    with FakeStripe(KEY) as fake:
        app.config["STRIPE_API_BASE"] = fake.url
        app.config["PUBLIC_BASE_URL"] = PUBLIC
        yield fake


@pytest.fixture
def connected(app, client, account, stripe_fake):
    """Signed in, with the Stripe key saved."""
    assert login(client, account.email).status_code == 302
    token = csrf_token(client, "/connections")
    response = client.post(f"/connections/stripe/{account.stripe_account_id}/key", data={"csrf_token": token, "secret_key": KEY})
    assert response.status_code == 302
    assert stored(app, account.merchant_id).secret_key == KEY, unescape(client.get("/connections").get_data(as_text=True))
    return account


def post(client, action: str, account_id: int | None = None):
    """Press a webhook endpoint button of the signed-in merchant's (first) Stripe account; the page it lands on."""
    token = csrf_token(client, "/connections")
    account_id = account_id or _first_account_id(client)
    response = client.post(f"/connections/stripe/{account_id}/webhook-endpoint/{action}", data={"csrf_token": token})
    assert response.status_code == 302, response.data
    assert response.headers["Location"] == f"/connections#stripe-account-{account_id}"
    return unescape(client.get("/connections").get_data(as_text=True))


def _first_account_id(client) -> int:
    page = client.get("/connections").get_data(as_text=True)
    return int(page.split('id="stripe-account-', 1)[1].split('"', 1)[0])


def stored(app, merchant_id: int) -> StripeAccount:
    """The merchant's first Stripe account as stored."""
    with app.app_context():
        account = db.session.scalar(db.select(StripeAccount).where(StripeAccount.merchant_id == merchant_id)
                                    .order_by(StripeAccount.id))
        db.session.expunge_all()
        return account


def turn_on(app, merchant_id: int, **kinds: bool) -> None:
    with app.app_context():
        row = db.session.scalar(db.select(JournalSettings).where(JournalSettings.merchant_id == merchant_id))
        if row is None:
            row = JournalSettings(merchant_id=merchant_id)
            db.session.add(row)
        for name, value in kinds.items():
            setattr(row, name, value)
        db.session.commit()


def test_create_makes_the_endpoint_with_the_portals_url_and_events_and_stores_its_secret(app, client, connected, stripe_fake):
    page = post(client, "create")
    assert "Webhook endpoint created in Stripe; its signing secret is stored." in page
    (endpoint,) = stripe_fake.webhook_endpoints.values()
    assert endpoint["url"] == f"{PUBLIC}/webhooks/stripe/{connected.webhook_key}"
    assert endpoint["enabled_events"] == list(WEBHOOK_EVENTS)
    assert (endpoint["object"], endpoint["status"], endpoint["livemode"]) == ("webhook_endpoint", "enabled", False)
    connection = stored(app, connected.merchant_id)
    assert connection.webhook_endpoint_id == endpoint["id"]
    assert connection.webhook_secret == endpoint["secret"]
    assert endpoint["secret"] not in page
    assert endpoint["secret"][-4:] in page and endpoint["id"] in page
    assert "Update the endpoint's events" in page and "Create the webhook endpoint for me" not in page

    # Stripe's deliveries, signed with the secret Stripe gave, are taken.
    invoice, _, _ = make_invoice(number="WE-0001")
    payload, signature = signed_event("invoice.paid", invoice, endpoint["secret"])
    response = client.post(f"/webhooks/stripe/{connected.webhook_key}", data=payload,
                           headers={"Stripe-Signature": signature, "Content-Type": "application/json"})
    assert response.status_code == 200, response.data
    with app.app_context():
        assert db.session.scalar(db.select(WebhookEvent.stripe_invoice_id)) == invoice["id"]


def test_create_enables_the_journal_events_the_settings_need(app, client, connected, stripe_fake):
    turn_on(app, connected.merchant_id, payments_enabled=True, refunds_enabled=True)
    post(client, "create")
    (endpoint,) = stripe_fake.webhook_endpoints.values()
    assert endpoint["enabled_events"] == [*WEBHOOK_EVENTS, "invoice_payment.paid", "charge.refunded", "refund.created"]


def test_update_after_turning_on_payouts_adds_payout_paid(app, client, connected, stripe_fake):
    post(client, "create")
    (endpoint,) = stripe_fake.webhook_endpoints.values()
    secret = endpoint["secret"]
    assert "payout.paid" not in endpoint["enabled_events"]
    turn_on(app, connected.merchant_id, payouts_enabled=True)
    page = post(client, "update")
    assert "The webhook endpoint's events now match what is synced." in page
    assert stripe_fake.webhook_endpoints[endpoint["id"]]["enabled_events"] == [*WEBHOOK_EVENTS, "payout.paid"]
    connection = stored(app, connected.merchant_id)
    assert (connection.webhook_endpoint_id, connection.webhook_secret) == (endpoint["id"], secret)


def test_delete_removes_the_endpoint_in_stripe_and_forgets_id_and_secret(app, client, connected, stripe_fake):
    post(client, "create")
    page = post(client, "delete")
    assert "Webhook endpoint deleted in Stripe; its signing secret is forgotten." in page
    assert stripe_fake.webhook_endpoints == {}
    connection = stored(app, connected.merchant_id)
    assert (connection.webhook_endpoint_id, connection.webhook_secret) == (None, None)
    assert connection.secret_key == KEY
    assert "Create the webhook endpoint for me" in page


def test_a_local_url_is_refused_with_public_base_url_explained_and_nothing_stored(app, client, connected, stripe_fake):
    app.config["PUBLIC_BASE_URL"] = ""  # the test client's address: http://localhost
    page = post(client, "create")
    assert "Stripe cannot reach http://localhost/webhooks/stripe/" in page
    assert "PUBLIC_BASE_URL" in page
    assert stripe_fake.webhook_endpoints == {}
    connection = stored(app, connected.merchant_id)
    assert (connection.webhook_endpoint_id, connection.webhook_secret) == (None, None)


def test_stripes_own_refusal_is_shown_and_nothing_stored(app, client, connected, stripe_fake):
    stripe_fake.api_key = "sk_test_another_account"  # Stripe no longer takes the saved key
    page = post(client, "create")
    assert "Stripe refused: Invalid API Key provided" in page
    assert "flash-error" in page
    connection = stored(app, connected.merchant_id)
    assert (connection.webhook_endpoint_id, connection.webhook_secret) == (None, None)


def test_without_a_stripe_key_nothing_is_asked_of_stripe(app, client, account, stripe_fake):
    login(client, account.email)
    page = post(client, "create")
    assert "Enter and save the secret key of the Stripe account “Stripe” first." in page
    assert not [r for r in stripe_fake.requests if r["path"].startswith("/v1/webhook_endpoints")]
    assert stored(app, account.merchant_id).webhook_secret is None


def test_a_second_create_is_refused_in_favour_of_update(app, client, connected, stripe_fake):
    post(client, "create")
    (endpoint,) = stripe_fake.webhook_endpoints.values()
    page = post(client, "create")
    assert "already created in Stripe" in page and "use Update the endpoint's events instead" in page
    assert list(stripe_fake.webhook_endpoints) == [endpoint["id"]]
    assert stored(app, connected.merchant_id).webhook_secret == endpoint["secret"]


@pytest.mark.parametrize("action", ["update", "delete"])
def test_an_endpoint_deleted_in_stripe_is_forgotten_with_a_message(app, client, connected, stripe_fake, action):
    post(client, "create")
    (endpoint_id,) = stripe_fake.webhook_endpoints
    del stripe_fake.webhook_endpoints[endpoint_id]  # deleted in Stripe's dashboard
    page = post(client, action)
    assert f"The webhook endpoint {endpoint_id} no longer exists in Stripe" in page
    assert "flash-warning" in page
    connection = stored(app, connected.merchant_id)
    assert (connection.webhook_endpoint_id, connection.webhook_secret) == (None, None)
    assert "Create the webhook endpoint for me" in page


def test_a_manually_pasted_secret_still_works_and_create_says_it_replaces_it(app, client, connected, stripe_fake):
    token = csrf_token(client, "/connections")
    client.post(f"/connections/stripe/{connected.stripe_account_id}/signing-secret",
                data={"csrf_token": token, "webhook_secret": "whsec_pastedByHand0000WXYZ"})
    assert stored(app, connected.merchant_id).webhook_secret == "whsec_pastedByHand0000WXYZ"
    page = post(client, "create")
    assert "It replaces the signing secret pasted before" in page
    (endpoint,) = stripe_fake.webhook_endpoints.values()
    assert stored(app, connected.merchant_id).webhook_secret == endpoint["secret"]


def test_another_merchant_cannot_act_on_this_merchants_endpoint(app, client, connected, other_account, stripe_fake):
    post(client, "create")
    (endpoint,) = stripe_fake.webhook_endpoints.values()
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    token = csrf_token(client, "/login")
    url = f"/connections/stripe/{connected.stripe_account_id}/webhook-endpoint/"
    for action in ("update", "delete"):  # signed out: to the sign-in page
        response = client.post(url + action, data={"csrf_token": token})
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    login(client, other_account.email)
    token = csrf_token(client, "/connections")
    assert client.post(url + "delete", data={"csrf_token": token}).status_code == 404  # not its account
    page = post(client, "delete")  # its own account, which has no endpoint
    assert "No webhook endpoint was created from here" in page
    assert endpoint["id"] not in page
    assert list(stripe_fake.webhook_endpoints) == [endpoint["id"]]
    assert stored(app, connected.merchant_id).webhook_endpoint_id == endpoint["id"]


def test_the_buttons_need_the_csrf_token(app, client, connected, stripe_fake):
    assert client.post(f"/connections/stripe/{connected.stripe_account_id}/webhook-endpoint/create").status_code == 400
    assert stripe_fake.webhook_endpoints == {}


# -- the double answers like Stripe -------------------------------------------------------------------------


def test_the_double_shapes_and_refuses_like_stripe(stripe_fake):
    client = stripe.StripeClient(KEY, base_addresses={"api": stripe_fake.url}, max_network_retries=0)
    created = client.v1.webhook_endpoints.create(params={"url": "https://example.com/hook", "enabled_events": ["invoice.paid"]})
    assert created.id.startswith("we_") and created.secret.startswith("whsec_")
    assert set(created.to_dict()) == {"id", "object", "api_version", "application", "created", "description", "enabled_events",
                                      "livemode", "metadata", "secret", "status", "url"}
    fetched = client.v1.webhook_endpoints.retrieve(created.id)
    assert "secret" not in fetched.to_dict()  # only in the create answer
    assert client.v1.webhook_endpoints.update(created.id, params={"enabled_events": ["*"]}).enabled_events == ["*"]

    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.create(params={"url": "https://example.com/hook", "enabled_events": ["invoice.nonsense"]})
    assert (refused.value.http_status, refused.value.param) == (400, "enabled_events")
    assert "Invalid enabled_events[0]" in refused.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.create(params={"enabled_events": ["invoice.paid"]})
    assert (refused.value.code, refused.value.param) == ("parameter_missing", "url")
    for url in ("http://127.0.0.1:5000/hook", "http://localhost/hook", "https://192.168.1.10/hook", "ftp://example.com/hook"):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": ["invoice.paid"]})
        assert refused.value.param == "url", url
    # plain http to a public host is taken in test mode
    assert client.v1.webhook_endpoints.create(params={"url": "http://example.com/hook", "enabled_events": ["invoice.paid"]}).id

    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert deleted.deleted is True
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.webhook_endpoints.delete(created.id)
    assert (refused.value.http_status, refused.value.code) == (404, "resource_missing")


def test_saving_journal_entries_keeps_the_endpoints_events_in_step(app, client, connected, stripe_fake):
    """Turning journal entries on adds their events to the endpoint the portal made, without a visit to
    Connections (e-conomic is not connected here: the numbers are saved unchecked)."""
    post(client, "create")
    (endpoint,) = stripe_fake.webhook_endpoints.values()
    token = csrf_token(client, "/settings/journals")
    response = client.post("/settings/journals", data=valid_post(token))
    assert response.status_code == 302
    page = unescape(client.get("/settings/journals").get_data(as_text=True))
    assert "The webhook endpoint of “Stripe” in Stripe now sends the events these settings need." in page
    assert stripe_fake.webhook_endpoints[endpoint["id"]]["enabled_events"] == [
        *WEBHOOK_EVENTS, "invoice_payment.paid", "charge.refunded", "refund.created", "credit_note.created", "payout.paid"]
