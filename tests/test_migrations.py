"""Data migrations, run on a database of their own (a fresh SQLite file) from the revision before them."""

from __future__ import annotations

import sqlalchemy as sa
from flask_migrate import upgrade

from portal import create_app
from portal.crypto import secret_box
from portal.extensions import db
from portal.models import Connection, StripeAccount


def test_links_that_only_recorded_the_default_product_are_forgotten(base_config, tmp_path):
    app = create_app({**base_config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}"})
    with app.app_context():
        upgrade(revision="0007_event_payload_lz4")
        with db.engine.begin() as connection:
            connection.execute(sa.text("INSERT INTO merchants (id, name, webhook_key, created_at) VALUES (1, 'Acme', 'whk_1', '2026-11-01')"))
            connection.execute(sa.text(
                "INSERT INTO sync_settings (merchant_id, match_customers_on, customer_number_mode, customer_number_metadata_key, "
                "home_country, currency_mode, time_zone, product_matching, simple_search_on, product_number_metadata_key, "
                "product_not_found, default_product_number, apply_invoice_discounts, updated_at) VALUES "
                "(1, 'email', 'economic', 'k', 'DK', 'invoice', 'Europe/Copenhagen', 'direct', 'product_number', 'k', 'default', "
                "'MISC', 1, '2026-11-01')"))
            for product, number in (("prod_real", "P-100"), ("prod_was_missing", "MISC")):
                connection.execute(sa.text(
                    "INSERT INTO product_links (merchant_id, stripe_product_id, economic_product_number, created_at) "
                    "VALUES (1, :product, :number, '2026-11-01')"), {"product": product, "number": number})
        upgrade()
        with db.engine.connect() as connection:
            links = connection.execute(sa.text("SELECT stripe_product_id FROM product_links")).scalars().all()
        db.engine.dispose()
    assert links == ["prod_real"]


def test_the_stripe_connection_moves_to_the_first_stripe_account_and_nothing_else_is_lost(base_config, tmp_path):
    """0014: the key, signing secret, endpoint and webhook URL move to the merchant's first Stripe account (its URL
    keeps working), runs, events and backfills name it, and rebuilding the tables on SQLite deletes nothing."""
    app = create_app({**base_config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}"})
    with app.app_context():
        upgrade(revision="0013_webhook_endpoint")
        box = secret_box()
        with db.engine.begin() as connection:
            run = sa.text
            connection.execute(run("INSERT INTO merchants (id, name, webhook_key, created_at) VALUES (1, 'Acme', 'whk_kept', '2026-11-01')"))
            connection.execute(run("INSERT INTO users (id, merchant_id, email, password_hash, is_admin, created_at, session_version) "
                                   "VALUES (1, 1, 'owner@acme.test', 'x', 1, '2026-11-01', 1)"))
            connection.execute(run("INSERT INTO connections (merchant_id, stripe_secret_key, stripe_webhook_secret, "
                                   "stripe_webhook_endpoint_id, economic_app_secret_token, updated_at) VALUES "
                                   "(1, :key, :secret, 'we_123', :app, '2026-11-01')"),
                               {"key": box.encrypt("sk_test_moved"), "secret": box.encrypt("whsec_moved"), "app": box.encrypt("app")})
            connection.execute(run("INSERT INTO sync_runs (id, merchant_id, kind, stripe_object_id, stripe_invoice_id, document_type, "
                                   "\"trigger\", write_back_to_stripe, status, attempts, will_retry, document_create_started, "
                                   "generation, override_reconciliation, needs_credit_note, created_at, updated_at) VALUES "
                                   "(7, 1, 'invoice', 'in_1', 'in_1', 'draft_invoice', 'paid', 1, 'succeeded', 1, 0, 1, 1, 0, 0, "
                                   "'2026-11-01', '2026-11-01')"))
            connection.execute(run("INSERT INTO audit_rows (run_id, merchant_id, attempt, step, outcome, duration_ms, created_at) "
                                   "VALUES (7, 1, 1, 'customer', 'found', 3, '2026-11-01')"))
            connection.execute(run("INSERT INTO webhook_events (merchant_id, stripe_event_id, type, livemode, received_at, payload, "
                                   "outcome, sync_run_id) VALUES (1, 'evt_1', 'invoice.paid', 0, '2026-11-01', '{}', 'queued', 7)"))
        upgrade()
        with db.engine.connect() as connection:
            account = connection.execute(sa.text("SELECT id, webhook_key, webhook_endpoint_id FROM stripe_accounts")).one()
            named = {table: connection.execute(sa.text(f"SELECT stripe_account_id FROM {table}")).scalars().all()
                     for table in ("sync_runs", "webhook_events")}
            kept = {table: connection.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()
                    for table in ("users", "audit_rows", "connections")}
        moved = db.session.get(StripeAccount, account.id)
        secrets_now = (moved.secret_key, moved.webhook_secret, db.session.scalar(sa.select(Connection)).economic_app_secret_token)
        db.session.remove()
        db.engine.dispose()
    assert (account.webhook_key, account.webhook_endpoint_id) == ("whk_kept", "we_123")
    assert secrets_now == ("sk_test_moved", "whsec_moved", "app")
    assert named == {"sync_runs": [account.id], "webhook_events": [account.id]}
    assert kept == {"users": 1, "audit_rows": 1, "connections": 1}
