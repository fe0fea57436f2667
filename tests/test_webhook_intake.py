"""The webhook endpoint verifies, stores and answers; every refusal is a 4xx that stores nothing."""

import json
import time
from pathlib import Path

import pytest

from portal.extensions import db
from portal.models import WebhookEvent

from .helpers import event_payload, stripe_signature, stripe_connect

SECRET = "whsec_test_secret_for_signatures"
DATA = Path(__file__).parent / "data"


@pytest.fixture
def merchant_with_secret(app, account):
    with app.app_context():
        stripe_connect(account.merchant_id, webhook_secret=SECRET)
        db.session.commit()
    return account


def paid_event() -> dict:
    return json.loads((DATA / "event_invoice_paid.json").read_text())


def deliver(client, account, payload: bytes, signature: str | None):
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return client.post(f"/webhooks/stripe/{account.webhook_key}", data=payload, headers=headers)


def stored_events(app) -> list[WebhookEvent]:
    with app.app_context():
        return list(db.session.scalars(db.select(WebhookEvent)))


def test_a_signed_event_is_stored_before_the_answer(app, client, merchant_with_secret):
    event = paid_event()
    payload = event_payload(event)
    response = deliver(client, merchant_with_secret, payload, stripe_signature(payload, SECRET))
    assert response.status_code == 200
    assert response.json == {"received": True}
    [stored] = stored_events(app)
    assert stored.stripe_event_id == event["id"]
    assert stored.type == "invoice.paid"
    assert stored.stripe_invoice_id == event["data"]["object"]["id"]
    assert stored.merchant_id == merchant_with_secret.merchant_id
    assert json.loads(stored.payload) == event
    assert stored.payload == payload.decode()  # byte for byte what Stripe signed
    with app.app_context():
        if db.engine.dialect.name == "postgresql":  # stored lz4-compressed (migration 0007), cheaper than pglz
            assert db.session.scalar(db.text("SELECT attcompression FROM pg_attribute "
                                             "WHERE attrelid = 'webhook_events'::regclass AND attname = 'payload'")) == "l"


def test_a_repeated_delivery_is_acknowledged_and_stored_once(app, client, merchant_with_secret):
    payload = event_payload(paid_event())
    for _ in range(3):
        response = deliver(client, merchant_with_secret, payload, stripe_signature(payload, SECRET))
        assert response.status_code == 200
    assert response.json == {"received": True, "duplicate": True}
    assert len(stored_events(app)) == 1


@pytest.mark.parametrize(
    "case, make_signature, status, reason",
    [
        ("missing", lambda p: None, 400, "Missing Stripe-Signature header."),
        ("wrong secret", lambda p: stripe_signature(p, "whsec_someone_else"), 400, "Signature verification failed"),
        ("stale", lambda p: stripe_signature(p, SECRET, int(time.time()) - 301), 400, "Signature verification failed"),
        ("garbage", lambda p: "t=abc,v1=zzz", 400, "Signature verification failed"),
    ],
)
def test_bad_signatures_are_refused_and_nothing_is_stored(app, client, merchant_with_secret, case, make_signature, status, reason):
    payload = event_payload(paid_event())
    response = deliver(client, merchant_with_secret, payload, make_signature(payload))
    assert response.status_code == status
    assert reason in response.json["error"]
    assert stored_events(app) == []


def test_a_tampered_body_is_refused(app, client, merchant_with_secret):
    payload = event_payload(paid_event())
    signature = stripe_signature(payload, SECRET)
    response = deliver(client, merchant_with_secret, payload.replace(b"invoice.paid", b"invoice.sent"), signature)
    assert response.status_code == 400
    assert stored_events(app) == []


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"{not json", "Body is not valid JSON."),
        (b"[1, 2, 3]", "Body is not a Stripe event"),
        (b'{"id": "evt_1", "type": "invoice.paid"}', "Body is not a Stripe event (no data.object)."),
        (b"\xff\xfe", "Body is not UTF-8."),
    ],
)
def test_signed_but_malformed_bodies_are_refused(app, client, merchant_with_secret, payload, reason):
    response = deliver(client, merchant_with_secret, payload, stripe_signature(payload, SECRET))
    assert response.status_code == 400
    assert reason in response.json["error"]
    assert stored_events(app) == []


def test_unknown_webhook_url_is_404(app, client, merchant_with_secret):
    payload = event_payload(paid_event())
    response = client.post("/webhooks/stripe/whk_nope", data=payload, headers={"Stripe-Signature": stripe_signature(payload, SECRET)})
    assert response.status_code == 404
    assert response.json == {"error": "Unknown webhook URL."}


def test_a_merchant_without_a_signing_secret_gets_a_clear_refusal(app, client, account):
    payload = event_payload(paid_event())
    response = deliver(client, account, payload, stripe_signature(payload, SECRET))
    assert response.status_code == 400
    assert "No webhook signing secret" in response.json["error"]


def test_an_oversized_body_is_refused(app, client, merchant_with_secret):
    payload = b'{"pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = deliver(client, merchant_with_secret, payload, stripe_signature(payload, SECRET))
    assert response.status_code == 413
    assert response.json == {"error": "Body too large."}
    assert stored_events(app) == []


def test_one_merchants_secret_does_not_open_anothers_url(app, client, merchant_with_secret, other_account):
    with app.app_context():
        stripe_connect(other_account.merchant_id, webhook_secret="whsec_other")
        db.session.commit()
    payload = event_payload(paid_event())
    response = deliver(client, other_account, payload, stripe_signature(payload, SECRET))
    assert response.status_code == 400
    assert stored_events(app) == []


def test_a_database_connection_that_died_while_idle_is_replaced_before_a_delivery_uses_it(app, client, merchant_with_secret):
    """After a database restart the pool holds dead connections: a delivery must still be stored."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    app.config["DATABASE_PING_AFTER_IDLE_SECONDS"] = 0  # every connection counts as idle
    pooled = []
    with app.app_context():
        event.listen(db.engine, "checkin", lambda dbapi_connection, record: pooled.append(dbapi_connection))
    first, second = paid_event(), paid_event()
    second["id"] = "evt_after_the_restart"
    for event_ in (first, second):
        with app.app_context():
            for dbapi_connection in pooled:  # what a restart does to connections idle in the pool
                if db.engine.dialect.name == "postgresql":
                    with create_engine(db.engine.url, poolclass=NullPool).connect() as outsider:
                        outsider.execute(db.text("SELECT pg_terminate_backend(:pid)"), {"pid": dbapi_connection.info.backend_pid})
                else:
                    dbapi_connection.close()
            pooled.clear()
        payload = event_payload(event_)
        assert deliver(client, merchant_with_secret, payload, stripe_signature(payload, SECRET)).status_code == 200
    assert {e.stripe_event_id for e in stored_events(app)} == {first["id"], second["id"]}


def test_a_new_signing_secret_works_at_once_and_the_old_one_stops(app, client, merchant_with_secret):
    """The merchant and secret are kept in memory for a short while; a signature that does not verify
    against the kept secret is checked against the one saved now, so a rotated secret never bounces."""
    first = paid_event()
    payload = event_payload(first)
    assert deliver(client, merchant_with_secret, payload, stripe_signature(payload, SECRET)).status_code == 200
    with app.app_context():
        stripe_connect(merchant_with_secret.merchant_id, webhook_secret="whsec_rotated")
        db.session.commit()
    second = {**paid_event(), "id": "evt_after_rotation"}
    payload = event_payload(second)
    assert deliver(client, merchant_with_secret, payload, stripe_signature(payload, "whsec_rotated")).status_code == 200
    third = {**paid_event(), "id": "evt_signed_with_the_old_secret"}
    payload = event_payload(third)
    response = deliver(client, merchant_with_secret, payload, stripe_signature(payload, SECRET))
    assert response.status_code == 400
    assert "Signature verification failed" in response.json["error"]
    assert [event.stripe_event_id for event in stored_events(app)] == [first["id"], "evt_after_rotation"]
