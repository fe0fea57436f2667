"""Data migrations, run on a database of their own (a fresh SQLite file) from the revision before them."""

from __future__ import annotations

import sqlalchemy as sa
from flask_migrate import upgrade

from portal import create_app
from portal.extensions import db


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
