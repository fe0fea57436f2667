"""The audit log: who changed which setting, connection or user, and when; old and new values, never a secret."""

from __future__ import annotations

import json

from portal.audit import acting_as
from portal.extensions import db
from portal.models import AuditEvent, Connection, SyncRule

from .helpers import csrf_token, first_stripe_account, login, page_text


def _events(app) -> list[AuditEvent]:
    with app.app_context():
        events = list(db.session.scalars(db.select(AuditEvent).order_by(AuditEvent.id)))
        db.session.expunge_all()
        return events


def test_a_rule_change_is_recorded_with_who_and_old_and_new_values(app, client, account):
    login(client, account.email)
    token = csrf_token(client, "/rules")
    assert _events(app) == []  # the defaults made on the first visit are nobody's change
    client.post("/rules", data={"csrf_token": token, "trigger": "sent", "document_type": "booked_invoice",
                                "sent_on_finalized_for_automatic": "y", "write_back_to_stripe": "y"})
    [event] = _events(app)
    assert (event.area, event.action, event.subject, event.actor_email, event.user_id) == (
        "settings", "changed", "Invoice Sync Rules", account.email, account.user_id)
    changes = {item["field"]: (item["old"], item["new"]) for item in json.loads(event.changes)}
    assert changes == {"Trigger": ("paid", "sent"), "Document type": ("draft_invoice", "booked_invoice")}

    page = page_text(client, "/audit")
    assert "Invoice Sync Rules" in page and "Trigger: paid → sent" in page and account.email in page
    assert "Europe/Copenhagen" in page or "UTC" in page
    assert "Trigger" not in page_text(client, "/audit?area=user")


def test_a_connection_secret_is_recorded_without_its_value(app, client, account):
    login(client, account.email)
    with app.app_context():
        stripe_id = first_stripe_account(account.merchant_id)
    token = csrf_token(client, "/connections")
    client.post(f"/connections/stripe/{stripe_id}/signing-secret", data={"csrf_token": token, "webhook_secret": "whsec_topsecret_value_1"})
    client.post(f"/connections/stripe/{stripe_id}/signing-secret", data={"csrf_token": token, "webhook_secret": "whsec_topsecret_value_2"})
    events = [event for event in _events(app) if event.area == "connection"]
    assert [json.loads(event.changes) for event in events] == [
        [{"field": "Webhook secret", "secret": "set"}], [{"field": "Webhook secret", "secret": "changed"}]]
    page = page_text(client, "/audit")
    assert "Webhook secret: changed (not shown)" in page
    assert "topsecret" not in page
    with app.app_context():
        assert not any("topsecret" in event.changes for event in db.session.scalars(db.select(AuditEvent)))


def test_invitations_and_role_changes_are_recorded_without_tokens(app, client, account):
    login(client, account.email)
    token = csrf_token(client, "/team")
    client.post("/team/invite", data={"csrf_token": token, "email": "new@acme.test", "role": "admin"})
    [invited] = _events(app)
    assert (invited.area, invited.action, invited.subject) == ("user", "invited", "Invitation for new@acme.test")
    assert {"field": "Link", "secret": "set"} in json.loads(invited.changes)
    assert {"field": "Role", "old": None, "new": "admin"} in json.loads(invited.changes)


def test_changes_outside_a_request_or_the_cli_are_not_recorded_but_the_cli_is(app, account):
    with app.app_context():
        db.session.add(SyncRule(merchant_id=account.merchant_id, trigger="sent"))  # e.g. the worker, a launcher
        db.session.commit()
        assert db.session.scalar(db.select(db.func.count()).select_from(AuditEvent)) == 0
        with acting_as("command line"):
            db.session.add(Connection(merchant_id=account.merchant_id, economic_agreement_grant_token="grant-secret"))
            db.session.commit()
        [event] = db.session.scalars(db.select(AuditEvent))
        assert (event.actor_email, event.area, event.action) == ("command line", "connection", "created")
        assert "grant-secret" not in event.changes


def test_the_audit_log_pages_by_id_newest_first(app, client, account):
    with app.app_context(), acting_as("command line"):
        for n in range(55):
            db.session.add(AuditEvent(merchant_id=account.merchant_id, actor_email="someone@acme.test", area="settings",
                                      action="changed", subject=f"Change {n:02d}", changes="[]"))
        db.session.commit()
    login(client, account.email)
    first = page_text(client, "/audit")
    assert first.index("Change 54") < first.index("Change 05") and "Change 04" not in first
    older = client.get("/audit").get_data(as_text=True).split('href="/audit?before=')[1].split('"')[0]
    second = page_text(client, f"/audit?before={older}")
    assert "Change 04" in second and "Change 05" not in second and "Change 00" in second
