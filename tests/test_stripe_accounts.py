"""Several Stripe accounts feeding one merchant: each connected on the Connections page with its own key (checked
with Stripe at once, permissions named when missing), webhook URL and signing secret; runs kept apart per
account even when two accounts' invoices share an id; the history filtered by account."""

from __future__ import annotations

import copy
from html import unescape

import pytest
from sqlalchemy import text

from doubles.economic import FakeEconomic
from doubles.stripe import FakeStripe, StripeRouter, example, make_invoice, signed_event
from portal.extensions import db
from portal.merchant_config import engine_settings_for
from portal.models import StripeAccount, SyncRun, WebhookEvent

from .helpers import csrf_token, login, stripe_connect
from .live import start_worker, stop_process, wait_for
from .test_worker_processes import SECRET, configure, worker_env

DK_KEY, DE_KEY = "sk_test_denmark000000000001", "sk_test_germany000000000002"
RESTRICTED = "rk_test_invoicesOnly00000003"
PUBLIC = "https://sync.example.com"


@pytest.fixture
def two_accounts():
    denmark = FakeStripe(DK_KEY, account_name="Acme Danmark ApS", country="DK",
                         restricted_keys={RESTRICTED: {"invoice_read", "customer_read", "account_read"}})
    germany = FakeStripe(DE_KEY, account_name="Acme GmbH", country="DE", settlement_currency="eur")
    with denmark, germany, StripeRouter(denmark, germany) as router:  # each also served alone (unused), then closed
        yield router, denmark, germany


@pytest.fixture
def signed_in(app, client, account, two_accounts):
    router, _, _ = two_accounts
    app.config["STRIPE_API_BASE"] = router.url
    app.config["PUBLIC_BASE_URL"] = PUBLIC
    assert login(client, account.email).status_code == 302
    return account


def page(client) -> str:
    return unescape(client.get("/connections").get_data(as_text=True))


def accounts_of(app, merchant_id: int) -> list[StripeAccount]:
    with app.app_context():
        found = list(db.session.scalars(db.select(StripeAccount).where(StripeAccount.merchant_id == merchant_id)
                                        .order_by(StripeAccount.id)))
        db.session.expunge_all()
        return found


def save_key(client, account_id: int, key: str):
    token = csrf_token(client, "/connections")
    return client.post(f"/connections/stripe/{account_id}/key", data={"csrf_token": token, "secret_key": key})


def add_account(client, label: str, key: str = ""):
    token = csrf_token(client, "/connections")
    return client.post("/connections/stripe", data={"csrf_token": token, "label": label, "secret_key": key})


def test_a_key_is_checked_with_stripe_and_its_account_shown_live(app, client, signed_in, two_accounts):
    assert save_key(client, signed_in.stripe_account_id, DK_KEY).status_code == 302
    shown = page(client)
    _, denmark, _ = two_accounts
    assert "Key saved for “Stripe”." in shown
    assert f"Connected to Stripe account {denmark.account['id']} (Acme Danmark ApS) in test mode" in shown
    assert denmark.account["id"] in shown and "test mode" in shown
    assert DK_KEY not in shown and DK_KEY[-4:] in shown
    assert "Last event received" in shown and "none yet" in shown
    [stored] = accounts_of(app, signed_in.merchant_id)
    assert (stored.secret_key, stored.stripe_account_ref, stored.check_ok) == (DK_KEY, denmark.account["id"], True)
    with app.app_context():  # encrypted at rest
        raw = db.session.execute(text("SELECT secret_key FROM stripe_accounts")).scalar()
        assert raw.startswith("gAAAAA") and DK_KEY not in raw


def test_a_restricted_key_without_the_permissions_the_sync_needs_is_refused_naming_them(app, client, signed_in):
    response = save_key(client, signed_in.stripe_account_id, RESTRICTED)
    assert response.status_code == 302
    shown = page(client)
    assert "The key was not saved: The key works, but it lacks permissions the sync needs:" in shown
    assert "Products (read)" in shown and "Tax rates (read)" in shown and "Webhook endpoints" in shown
    assert "Invoices (read)" not in shown.split("lacks permissions")[1].split("</")[0]
    [stored] = accounts_of(app, signed_in.merchant_id)
    assert stored.secret_key is None and stored.checked_at is None  # nothing changed


@pytest.mark.parametrize("key, words", [
    ("pk_test_publishable0000", "Stripe keys start with sk_test_"),
    ("sk_test_unknownKey000000000", "Stripe refused the key: Invalid API Key provided"),
])
def test_a_wrong_key_is_refused_and_nothing_is_stored(app, client, signed_in, key, words):
    save_key(client, signed_in.stripe_account_id, key)
    assert words in page(client)
    assert accounts_of(app, signed_in.merchant_id)[0].secret_key is None


def test_a_second_account_gets_its_own_webhook_url_endpoint_and_secret(app, client, signed_in, two_accounts):
    _, denmark, germany = two_accounts
    save_key(client, signed_in.stripe_account_id, DK_KEY)
    assert add_account(client, "Germany", DE_KEY).status_code == 302
    first, second = accounts_of(app, signed_in.merchant_id)
    assert (second.label, second.secret_key, second.stripe_account_ref) == ("Germany", DE_KEY, germany.account["id"])
    assert first.webhook_key != second.webhook_key
    shown = page(client)
    for account in (first, second):
        assert f"{PUBLIC}/webhooks/stripe/{account.webhook_key}" in shown
    token = csrf_token(client, "/connections")
    for account in (first, second):
        client.post(f"/connections/stripe/{account.id}/webhook-endpoint/create", data={"csrf_token": token})
    [dk_endpoint], [de_endpoint] = denmark.webhook_endpoints.values(), germany.webhook_endpoints.values()
    assert dk_endpoint["url"].endswith(first.webhook_key) and de_endpoint["url"].endswith(second.webhook_key)
    first, second = accounts_of(app, signed_in.merchant_id)
    assert (first.webhook_secret, second.webhook_secret) == (dk_endpoint["secret"], de_endpoint["secret"])

    # The same Stripe account cannot be connected twice: its invoices would be synced twice.
    add_account(client, "Denmark again", DK_KEY)
    assert f"This key belongs to Stripe account {denmark.account['id']}, which is connected already as “Stripe”" in page(client)
    assert len(accounts_of(app, signed_in.merchant_id)) == 2

    # Disconnecting one deletes its endpoint in Stripe and forgets its secrets; the other is untouched.
    client.post(f"/connections/stripe/{second.id}/disconnect", data={"csrf_token": token})
    first, second = accounts_of(app, signed_in.merchant_id)
    assert germany.webhook_endpoints == {} and (second.secret_key, second.webhook_secret) == (None, None)
    assert first.secret_key == DK_KEY and list(denmark.webhook_endpoints) == [dk_endpoint["id"]]


def test_an_account_may_have_its_own_currency_and_layout(app, client, signed_in):
    token = csrf_token(client, "/connections")
    url = f"/connections/stripe/{signed_in.stripe_account_id}/settings"
    client.post(url, data={"csrf_token": token, "label": "Germany", "fixed_currency": "eur", "layout_number": "21"})
    [account] = accounts_of(app, signed_in.merchant_id)
    assert (account.label, account.fixed_currency, account.layout_number) == ("Germany", "EUR", 21)
    with app.app_context():
        shared = engine_settings_for(signed_in.merchant_id, "draft_invoice", False)
        own = engine_settings_for(signed_in.merchant_id, "draft_invoice", False, db.session.get(StripeAccount, account.id))
    assert (shared.currency_mode, shared.layout_number) == ("invoice", None)
    assert (own.currency_mode, own.fixed_currency, own.layout_number) == ("fixed", "EUR", 21)
    client.post(url, data={"csrf_token": token, "label": "Germany", "fixed_currency": "euro", "layout_number": ""})
    assert "A currency is three letters" in page(client)
    assert accounts_of(app, signed_in.merchant_id)[0].fixed_currency == "EUR"  # nothing changed


def deliver(client, webhook_key: str, event_type: str, invoice: dict, secret: str, event_id: str):
    payload, signature = signed_event(event_type, invoice, secret, event_id)
    return client.post(f"/webhooks/stripe/{webhook_key}", data=payload,
                       headers={"Stripe-Signature": signature, "Content-Type": "application/json"})


def test_two_stripe_accounts_feed_one_merchant_with_their_runs_kept_apart(app, base_config, client, account, two_accounts, tmp_path):
    router, denmark, germany = two_accounts
    with FakeEconomic() as economic:
        configure(app, account.merchant_id, denmark, "booked_invoice")  # the first account: DK key, SECRET
        with app.app_context():
            second = stripe_connect(account.merchant_id, DE_KEY, "whsec_germany_account", label="Germany", new=True)
            db.session.commit()
            second_key, second_id = second.webhook_key, second.id
        # Both accounts have an invoice with the same id (ids are only unique within an account).
        dk_invoice, dk_customer, dk_products = make_invoice("DK-0001", invoice_id="in_shared_id_0001")
        german = copy.deepcopy(example("customer"))
        german.update(id="cus_germany0001", name="Kunde GmbH", email="kunde@example.de")
        de_invoice, _, de_products = make_invoice("DE-0001", [("Beratung", "2", 50000)], invoice_id="in_shared_id_0001",
                                                  customer=german)
        denmark.add_invoice(dk_invoice, dk_customer, dk_products)
        germany.add_invoice(de_invoice, german, de_products)
        worker = start_worker(worker_env(base_config, router, economic, tmp_path), tmp_path / "worker.log")
        try:
            assert deliver(client, account.webhook_key, "invoice.paid", dk_invoice, SECRET, "evt_dk_1").status_code == 200
            assert deliver(client, second_key, "invoice.paid", de_invoice, "whsec_germany_account", "evt_de_1").status_code == 200
            # Signed with the other account's secret: refused, and stored nowhere.
            assert deliver(client, second_key, "invoice.paid", de_invoice, SECRET, "evt_forged").status_code == 400

            def finished():
                with app.app_context():
                    runs = list(db.session.scalars(db.select(SyncRun).order_by(SyncRun.stripe_account_id)))
                    db.session.expunge_all()
                return len(runs) == 2 and all(run.status in ("succeeded", "failed", "held") for run in runs) and runs

            dk_run, de_run = wait_for(finished, timeout=60, what="both accounts' runs")
        finally:
            stop_process(worker)
        log = (tmp_path / "worker.log").read_text()[-3000:]
        assert (dk_run.status, de_run.status) == ("succeeded", "succeeded"), (dk_run.last_error, de_run.last_error, log)
        assert (dk_run.stripe_account_id, de_run.stripe_account_id) == (account.stripe_account_id, second_id)
        assert dk_run.stripe_object_id == de_run.stripe_object_id == "in_shared_id_0001"
        assert (dk_run.stripe_invoice_number, dk_run.total_minor) == ("DK-0001", dk_invoice["total"])
        assert (de_run.stripe_invoice_number, de_run.total_minor, de_run.customer_name) == ("DE-0001", de_invoice["total"], "Kunde GmbH")
        booked = {doc["references"]["other"]: doc for doc in economic.documents("invoices/booked")}
        assert set(booked) == {"DK-0001", "DE-0001"}
        assert booked["DE-0001"]["grossAmount"] != booked["DK-0001"]["grossAmount"]
        # Each account's key wrote its own invoice back.
        assert denmark.invoices["in_shared_id_0001"]["metadata"]["economic_document_number"] == str(dk_run.economic_booked_number)
        assert germany.invoices["in_shared_id_0001"]["metadata"]["economic_document_number"] == str(de_run.economic_booked_number)
        with app.app_context():
            assert db.session.scalar(db.select(db.func.count()).select_from(WebhookEvent)) == 2

    # The history tells them apart and filters by account.
    login(client, account.email)
    everything = client.get("/history").get_data(as_text=True)
    assert "All Stripe accounts" in everything and "DK-0001" in everything and "DE-0001" in everything
    only_germany = client.get(f"/history?account={second_id}").get_data(as_text=True)
    assert "DE-0001" in only_germany and "DK-0001" not in only_germany
