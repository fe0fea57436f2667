"""Tenant isolation: every route that takes an id answers 404 for another merchant's id, and changes nothing."""

import pytest

from portal.extensions import db
from datetime import date, datetime, timedelta, timezone

from portal.models import Backfill, Invitation, StripeAccount, SyncRun, User, WebhookEvent

from .helpers import csrf_token, first_stripe_account, login, stripe_connect

# Every URL rule with a parameter, and how to fill it with the *other* merchant's object.
# A new route with a parameter fails `test_every_route_with_a_parameter_is_covered` until it is added here.
TENANT_ROUTES = {
    "history.invoice": ("GET", lambda foreign: {"stripe_invoice_id": foreign["invoice_id"]}),
    "history.sync_again": ("POST", lambda foreign: {"run_id": foreign["run_id"]}),
    "history.book_anyway": ("POST", lambda foreign: {"run_id": foreign["run_id"]}),
    "history.credit_note": ("POST", lambda foreign: {"run_id": foreign["run_id"]}),
    "history.sync_now": ("POST", lambda foreign: {"event_id": foreign["event_id"]}),
    "history.backfill_status": ("GET", lambda foreign: {"backfill_id": foreign["backfill_id"]}),
    "team.role_change": ("POST", lambda foreign: {"user_id": foreign["user_id"]}),
    "team.ownership_transfer": ("POST", lambda foreign: {"user_id": foreign["user_id"]}),
    "team.user_remove": ("POST", lambda foreign: {"user_id": foreign["user_id"]}),
    "team.invitation_revoke": ("POST", lambda foreign: {"invitation_id": foreign["invitation_id"]}),
    "settings.stripe_account_key": ("POST", lambda foreign: {"account_id": foreign["stripe_account_id"]}),
    "settings.stripe_account_signing_secret": ("POST", lambda foreign: {"account_id": foreign["stripe_account_id"]}),
    "settings.stripe_account_settings": ("POST", lambda foreign: {"account_id": foreign["stripe_account_id"]}),
    "settings.stripe_account_disconnect_view": ("POST", lambda foreign: {"account_id": foreign["stripe_account_id"]}),
    "settings.stripe_account_check": ("POST", lambda foreign: {"account_id": foreign["stripe_account_id"]}),
    "settings.stripe_key_test": ("POST", lambda foreign: {"account_id": foreign["stripe_account_id"]}),
    "settings.stripe_webhook_endpoint": ("POST", lambda foreign: {"account_id": foreign["stripe_account_id"], "action": "delete"}),
}
NOT_TENANT_OWNED = {
    "static",  # files
    "settings.mapping_row_edit",  # the e-conomic field's name: the row shown is the signed-in merchant's
    "settings.connection_test",  # the service's name: tests the signed-in merchant's connection
    "webhooks.stripe_event",  # the merchant's secret webhook key; the signature is checked with its secret
    "team.invitation",  # the invitation link's token, which is the credential
}


def test_every_route_with_a_parameter_is_covered(app):
    parameterised = {rule.endpoint for rule in app.url_map.iter_rules() if rule.arguments}
    assert parameterised == set(TENANT_ROUTES) | NOT_TENANT_OWNED


@pytest.fixture
def foreign(app, other_account):
    with app.app_context():
        run = SyncRun(merchant_id=other_account.merchant_id, stripe_account_id=first_stripe_account(other_account.merchant_id), stripe_invoice_id="in_theirs", document_type="draft_invoice",
                      trigger="paid", status="failed", last_error="theirs")
        db.session.add(run)
        db.session.flush()
        event = WebhookEvent(merchant_id=other_account.merchant_id, stripe_account_id=first_stripe_account(other_account.merchant_id), stripe_event_id="evt_theirs", type="invoice.sent",
                             stripe_invoice_id="in_theirs", payload="{}", outcome="ignored", ignored_reason="theirs")
        db.session.add(event)
        backfill = Backfill(merchant_id=other_account.merchant_id, stripe_account_id=first_stripe_account(other_account.merchant_id), date_from=date(2026, 1, 1), date_to=date(2026, 1, 31), status="done", error="theirs")
        db.session.add(backfill)
        invitation = Invitation(merchant_id=other_account.merchant_id, email="theirs@other.test", role="member",
                                token_hash="0" * 64, expires_at=datetime.now(timezone.utc) + timedelta(hours=1))
        db.session.add(invitation)
        db.session.commit()
        stripe_connect(other_account.merchant_id, "sk_test_theirs0000", "whsec_theirs0000", label="theirs")
        db.session.commit()
        return {"run_id": run.id, "event_id": event.id, "invoice_id": "in_theirs", "backfill_id": backfill.id,
                "user_id": other_account.user_id, "invitation_id": invitation.id,
                "stripe_account_id": other_account.stripe_account_id}


@pytest.mark.parametrize("endpoint", sorted(TENANT_ROUTES))
def test_another_merchants_id_is_404_and_nothing_changes(app, client, account, foreign, endpoint):
    login(client, account.email)
    method, values = TENANT_ROUTES[endpoint]
    with app.test_request_context():
        from flask import url_for

        url = url_for(endpoint, **values(foreign))
    token = csrf_token(client, "/")
    response = client.get(url) if method == "GET" else client.post(url, data={"csrf_token": token, "new_document": "1", "reviewed": "1"})
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "theirs" not in body and "in_theirs" not in body
    with app.app_context():
        run = db.session.get(SyncRun, foreign["run_id"])
        assert (run.status, run.last_error) == ("failed", "theirs")
        assert db.session.scalar(db.select(db.func.count()).select_from(SyncRun)) == 1
        assert db.session.get(WebhookEvent, foreign["event_id"]).outcome == "ignored"
        assert db.session.get(User, foreign["user_id"]).role == "owner"
        assert db.session.get(Invitation, foreign["invitation_id"]) is not None
        theirs = db.session.get(StripeAccount, foreign["stripe_account_id"])
        assert (theirs.label, theirs.secret_key, theirs.webhook_secret, theirs.checked_at) == (
            "theirs", "sk_test_theirs0000", "whsec_theirs0000", None)


def test_the_history_list_and_csv_show_only_the_merchants_own_runs(app, client, account, foreign):
    login(client, account.email)
    assert "in_theirs" not in client.get("/history").get_data(as_text=True)
    assert "in_theirs" not in client.get("/history?status=ignored").get_data(as_text=True)
    assert "in_theirs" not in client.get("/history.csv").get_data(as_text=True)
    assert "in_theirs" not in client.get("/history/rows").get_data(as_text=True)
