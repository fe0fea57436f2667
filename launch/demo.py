"""`make demo`: the product as `make run` starts it, with a demo merchant whose connections point at
local doubles of Stripe and e-conomic, and a "Send a test invoice" button. No accounts needed.

The doubles run in this launcher process; the web app and the worker reach them through
STRIPE_API_BASE and ECONOMIC_API_URL, like they would reach staging servers, and the button
(portal/demo_routes.py) reaches the fake Stripe through DEMO_STRIPE_CONTROL_URL.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from doubles.economic import GRANT_PAGE, FakeEconomic
from doubles.stripe import FakeStripe

from . import devserver

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-2026"
DEMO_WEBHOOK_SECRET = "whsec_demo_signing_secret"
# The demo's app in the fake e-conomic: "Connect e-conomic" goes to the fake's grant page and back.
DEMO_ECONOMIC_APP_PUBLIC_TOKEN = "demo-app-public-token"
DEMO_ECONOMIC_APP_SECRET_TOKEN = "app"
ECONOMIC_DATA_FILE = "fake-economic.pickle"  # in the demo's instance folder, beside the portal's database
STRIPE_DATA_FILE = "fake-stripe.pickle"


def set_up_demo_merchant(app) -> None:
    """Point the first merchant at the doubles, with rules and settings that work out of the box."""
    from portal.extensions import db
    from portal.models import Connection, JournalSettings, Merchant, StripeAccount, SyncRule, SyncSettings, utcnow

    with app.app_context():
        merchant = db.session.scalar(db.select(Merchant).order_by(Merchant.id))
        stripe_account = merchant.stripe_accounts[0] if merchant.stripe_accounts else StripeAccount(merchant=merchant)
        stripe_account.label = "Demo Shop (Denmark)"
        stripe_account.secret_key = "sk_test_fake"
        stripe_account.webhook_secret = DEMO_WEBHOOK_SECRET
        db.session.add(stripe_account)
        connection = merchant.connection or Connection(merchant_id=merchant.id)
        connection.economic_app_secret_token = DEMO_ECONOMIC_APP_SECRET_TOKEN
        connection.economic_agreement_grant_token = "grant"  # the demo agreement's own grant, whatever was connected before
        connection.economic_company_name, connection.economic_agreement_number = "Fake ApS", 123456
        connection.economic_connected_at = connection.economic_connected_at or utcnow()
        db.session.add(connection)
        if db.session.scalar(db.select(SyncRule).where(SyncRule.merchant_id == merchant.id)) is None:
            db.session.add(SyncRule(merchant_id=merchant.id, trigger="paid", document_type="booked_invoice"))
        if db.session.scalar(db.select(SyncSettings).where(SyncSettings.merchant_id == merchant.id)) is None:
            db.session.add(SyncSettings(
                merchant_id=merchant.id, payment_terms_number=1, customer_group_number=1, vat_zone_domestic=1,
                vat_zone_eu_with_vat_id=2, vat_zone_eu_without_vat_id=2, vat_zone_outside_eu=3, layout_number=19,
                new_product_group_number=1, default_product_number="MISC", discount_product_number="DISCOUNT",
                shipping_product_number="SHIP", rounding_product_number="ROUND",
            ))
        if db.session.scalar(db.select(JournalSettings).where(JournalSettings.merchant_id == merchant.id)) is None:
            # The fake e-conomic's chart: journal 1, 5830 Stripe balance, 5820 bank, 7220 fees.
            db.session.add(JournalSettings(
                merchant_id=merchant.id, payments_enabled=True, refunds_enabled=True, credit_notes_enabled=True,
                payouts_enabled=True, journal_number=1, stripe_balance_account=5830, bank_account=5820, fees_account=7220,
            ))
        db.session.commit()


def main() -> int:
    instance_path = os.environ.get("INSTANCE_PATH") or str(devserver.PROJECT_ROOT / "instance" / "demo")
    stripe_fake = FakeStripe(available_after_days=0).start()  # the demo pays out at once, not after 7 days
    economic_fake = FakeEconomic(app_secret_token=DEMO_ECONOMIC_APP_SECRET_TOKEN,
                                 app_public_token=DEMO_ECONOMIC_APP_PUBLIC_TOKEN, app_name="Invoice Sync (demo)").start()
    # The doubles keep their data beside the portal's database, so a second `make demo` finds the customers
    # and products the portal remembers in e-conomic, and the invoices, payments and payouts its history names
    # in Stripe (Sync again, Pay out and the links work as before the restart).
    for name, double, data_file in (("Stripe", stripe_fake, STRIPE_DATA_FILE), ("e-conomic", economic_fake, ECONOMIC_DATA_FILE)):
        if double.keep_data_in(Path(instance_path) / data_file):
            print(f"Demo {name}: the data of the previous run, from {Path(instance_path) / data_file} "
                  "(delete that folder to start afresh)")
    economic_fake.add_product("MISC", "Miscellaneous")
    economic_fake.add_product("DISCOUNT", "Discount")
    economic_fake.add_product("SHIP", "Shipping")
    economic_fake.add_product("ROUND", "VAT rounding", productGroup={"productGroupNumber": 3})
    os.environ.update({
        "STRIPE_API_BASE": stripe_fake.url,
        "ECONOMIC_API_URL": economic_fake.url,
        "ECONOMIC_INSTALL_URL": economic_fake.url + GRANT_PAGE,
        "ECONOMIC_APP_PUBLIC_TOKEN": DEMO_ECONOMIC_APP_PUBLIC_TOKEN,
        "ECONOMIC_APP_SECRET_TOKEN": DEMO_ECONOMIC_APP_SECRET_TOKEN,
        "DEMO_STRIPE_CONTROL_URL": stripe_fake.url,
        "INSTANCE_PATH": instance_path,
        "PORTAL_ADMIN_EMAIL": DEMO_EMAIL,
        "PORTAL_ADMIN_PASSWORD": DEMO_PASSWORD,
        "PORTAL_MERCHANT_NAME": "Demo Shop ApS",
    })
    print(f"Demo doubles: Stripe on {stripe_fake.url}, e-conomic on {economic_fake.url}")
    print(f"Sign in as {DEMO_EMAIL} with the password {DEMO_PASSWORD}, then open Sync history › Send a test invoice.")
    try:
        return devserver.main(after_prepare=set_up_demo_merchant)
    finally:
        stripe_fake.stop()
        economic_fake.stop()


if __name__ == "__main__":
    sys.exit(main())
