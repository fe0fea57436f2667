"""Who may open what: every endpoint is classified (portal/auth/access.py), every admin-only endpoint is
refused to a member on every method it accepts and changes nothing, and changing connections needs the
password confirmed in the last 10 minutes."""

from __future__ import annotations

import pytest
from flask import url_for
from werkzeug.routing import IntegerConverter

from portal import create_app
from portal.auth import recent_password
from portal.auth.access import ADMIN, ENDPOINT_ACCESS, MEMBER, PUBLIC, RECENT_PASSWORD
from portal.auth.services import user_create
from portal.extensions import db
from portal.models import Merchant, Role, StripeAccount, SyncRun

from .helpers import PASSWORD, csrf_token, first_stripe_account, login

MEMBER_EMAIL = "member@acme.test"


@pytest.fixture
def member(app, account):
    with app.app_context():
        user = user_create(db.session.get(Merchant, account.merchant_id), MEMBER_EMAIL, PASSWORD, role=Role.MEMBER)
        db.session.commit()
        return user.id


def _dummy_url(app, rule) -> str:
    values = {name: 1 if isinstance(converter, IntegerConverter) else "x" for name, converter in rule._converters.items()}
    with app.test_request_context():
        return url_for(rule.endpoint, **values)


def _database_snapshot(app) -> dict[str, list]:
    with app.app_context():
        return {table.name: sorted(map(tuple, db.session.execute(table.select()).all()), key=repr)
                for table in db.metadata.sorted_tables}


def test_every_endpoint_is_classified(base_config):
    """A new route fails here until it is put in ENDPOINT_ACCESS (the demo's buttons included)."""
    app = create_app({**base_config, "DEMO_STRIPE_CONTROL_URL": "http://127.0.0.1:9"})
    unclassified = sorted({rule.endpoint for rule in app.url_map.iter_rules()} - set(ENDPOINT_ACCESS))
    assert unclassified == [], f"classify these in portal/auth/access.py ENDPOINT_ACCESS: {unclassified}"
    assert RECENT_PASSWORD <= {endpoint for endpoint, access in ENDPOINT_ACCESS.items() if access is ADMIN}


def test_an_unclassified_endpoint_is_refused_loudly(base_config):
    app = create_app(dict(base_config))
    app.add_url_rule("/forgotten", "forgotten", lambda: "open")
    with pytest.raises(RuntimeError, match="not classified"):
        app.test_client().get("/forgotten")
    app.testing = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert app.test_client().get("/forgotten").status_code == 403


def test_a_member_is_refused_every_admin_endpoint_on_every_method_and_nothing_changes(app, client, account, member):
    login(client, MEMBER_EMAIL)
    token = csrf_token(client, "/")
    before = _database_snapshot(app)
    tried = []
    for rule in app.url_map.iter_rules():
        if ENDPOINT_ACCESS.get(rule.endpoint) is not ADMIN:
            continue
        url = _dummy_url(app, rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method, data={"csrf_token": token, "trigger": "sent", "role": "admin",
                                                              "email": "someone@else.test"})
            assert response.status_code == 403, (rule.endpoint, method, response.status_code)
            body = response.get_data(as_text=True)
            assert "Only admins can change settings" in body and account.email in body, rule.endpoint
            tried.append((rule.endpoint, method))
    assert ("settings.rules", "POST") in tried and ("team.invite", "POST") in tried and ("team.audit_log", "GET") in tried
    assert _database_snapshot(app) == before


def test_an_htmx_request_of_a_member_gets_the_message_and_the_page_again(client, account, member):
    login(client, MEMBER_EMAIL)
    token = csrf_token(client, "/")
    response = client.post("/mappings/preview", data={"csrf_token": token},
                           headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/history"})
    assert response.status_code == 403
    assert response.headers["HX-Redirect"] == "/history"
    assert "Only admins" in response.get_data(as_text=True)


def test_a_member_sees_the_history_and_may_press_sync_again(app, client, account, member):
    with app.app_context():
        run = SyncRun(merchant_id=account.merchant_id, stripe_account_id=first_stripe_account(account.merchant_id),
                      stripe_invoice_id="in_member_1", document_type="draft_invoice", trigger="paid", status="failed",
                      last_error="e-conomic was down", attempts=1)
        db.session.add(run)
        db.session.commit()
        run_id = run.id
    login(client, MEMBER_EMAIL)
    for path in ("/", "/history", "/history/payouts", "/history.csv", "/history/invoices/in_member_1", "/account"):
        assert client.get(path).status_code == 200, path
    assert client.get("/history/rows").status_code in (200, 286)  # 286: htmx stops polling
    token = csrf_token(client, "/history/invoices/in_member_1")
    response = client.post(f"/history/runs/{run_id}/sync-again", data={"csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(SyncRun, run_id).status == "queued"


def test_signed_out_visitors_are_sent_to_sign_in_and_public_pages_stay_open(app, client):
    assert client.get("/team").headers["Location"].startswith("/login?next=")
    assert client.get("/history").headers["Location"].startswith("/login?next=")
    assert client.get("/login").status_code == 200
    assert client.get("/invite/unknown-token").status_code == 404
    public = {endpoint for endpoint, access in ENDPOINT_ACCESS.items() if access is PUBLIC}
    assert public == {"static", "auth.login", "webhooks.stripe_event", "team.invitation"}
    assert ENDPOINT_ACCESS["history.sync_again"] is MEMBER


def test_the_nav_shows_a_member_no_settings_and_an_admin_all(client, account, member):
    def navigation() -> str:
        page = client.get("/history").get_data(as_text=True)
        return page[page.index("<header"):page.index("</header>")]

    login(client, MEMBER_EMAIL)
    nav = navigation()
    assert "Sync history" in nav and "Account" in nav
    for label in ("Rules &amp; mappings", "Connections", ">Team<"):
        assert label not in nav, label
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, account.email)
    nav = navigation()
    for label in ("Rules &amp; mappings", "Connections", ">Team<"):
        assert label in nav, label


def test_changing_connections_needs_the_password_confirmed_in_the_last_10_minutes(app, client, account, monkeypatch):
    now = [1_900_000_000.0]
    monkeypatch.setattr(recent_password, "clock", lambda: now[0])
    login(client, account.email)
    with app.app_context():
        stripe_id = first_stripe_account(account.merchant_id)
    secret_url = f"/connections/stripe/{stripe_id}/signing-secret"
    token = csrf_token(client, "/connections")
    came_from = {"Referer": "http://localhost/connections"}

    now[0] += 9 * 60  # within 10 minutes of signing in: allowed
    response = client.post(secret_url, data={"csrf_token": token, "webhook_secret": "whsec_first_secret_1234"}, headers=came_from)
    assert response.status_code == 302 and response.headers["Location"].startswith("/connections")
    with app.app_context():
        assert db.session.get(StripeAccount, stripe_id).webhook_secret == "whsec_first_secret_1234"

    now[0] += 2 * 60  # 11 minutes after signing in: confirm first, and nothing is changed
    before = _database_snapshot(app)
    changes = [secret_url, f"/connections/stripe/{stripe_id}/disconnect", f"/connections/stripe/{stripe_id}/webhook-endpoint/delete",
               "/connections/stripe"]
    for path in changes:
        response = client.post(path, data={"csrf_token": token, "webhook_secret": "whsec_second_secret_99", "label": "DE"},
                               headers=came_from)
        assert response.status_code == 302, path
        assert response.headers["Location"] == "/confirm-password?next=/connections", path
    assert _database_snapshot(app) == before
    assert client.get("/connections").status_code == 200  # looking needs no password

    page = client.get("/confirm-password?next=/connections").get_data(as_text=True)
    assert "needs your password again" in page
    token = csrf_token(client, "/confirm-password?next=/connections")
    wrong = client.post("/confirm-password?next=/connections", data={"csrf_token": token, "password": "not it at all"})
    assert wrong.status_code == 200 and "That is not your password." in wrong.get_data(as_text=True)
    right = client.post("/confirm-password?next=/connections", data={"csrf_token": token, "password": PASSWORD})
    assert right.headers["Location"] == "/connections"
    client.post(secret_url, data={"csrf_token": token, "webhook_secret": "whsec_second_secret_99"})
    with app.app_context():
        assert db.session.get(StripeAccount, stripe_id).webhook_secret == "whsec_second_secret_99"  # saved this time


def test_the_confirm_page_never_sends_anyone_off_the_site(client, account):
    login(client, account.email)
    token = csrf_token(client, "/confirm-password")
    response = client.post("/confirm-password?next=https://evil.test/", data={"csrf_token": token, "password": PASSWORD})
    assert response.headers["Location"] == "/"
