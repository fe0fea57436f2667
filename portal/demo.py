"""`make demo`: the product as `make run` starts it, with a demo merchant whose connections point at
local doubles of Stripe and e-conomic, and a "Send a test invoice" button. No accounts needed.

The doubles run in this launcher process; the web app and the worker reach them through
STRIPE_API_BASE and ECONOMIC_API_URL, like they would reach staging servers.
"""

from __future__ import annotations

import os
import sys

import requests
from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-2026"
DEMO_WEBHOOK_SECRET = "whsec_demo_signing_secret"

bp = Blueprint("demo", __name__)


@bp.route("/demo/send-invoice", methods=["POST"])
@login_required
def send_invoice():
    """Ask the fake Stripe to make an invoice and deliver its signed event to this merchant's webhook."""
    event = request.form.get("event")
    if event not in ("invoice.sent", "invoice.paid"):
        flash("Choose invoice.sent or invoice.paid.", "error")
        return redirect(url_for("history.index"))
    merchant = current_user.merchant
    secret = merchant.connection.stripe_webhook_secret if merchant.connection else None
    if not secret:
        flash("Save a webhook signing secret on the Connections page first.", "error")
        return redirect(url_for("history.index"))
    variant = "exempt" if request.form.get("variant") == "exempt" else "standard"
    try:
        answer = requests.post(
            current_app.config["DEMO_STRIPE_CONTROL_URL"] + "/_demo/send-invoice", timeout=15,
            json={"event": event, "secret": secret, "variant": variant,
                  "webhook_url": url_for("webhooks.stripe_event", webhook_key=merchant.webhook_key, _external=True)},
        ).json()
    except (requests.RequestException, ValueError) as error:
        flash(f"The demo Stripe did not answer: {error}", "error")
        return redirect(url_for("history.index"))
    delivery = answer["delivery"]
    if delivery["status"] == 200:
        flash(f"Stripe sent {event} for invoice {answer['number']}; watch it sync below.", "success")
    else:
        flash(f"The webhook for {answer['number']} was refused: {delivery['status']} {delivery['body']}", "error")
    return redirect(url_for("history.index"))


def set_up_demo_merchant(app) -> None:
    """Point the first merchant at the doubles, with rules and settings that work out of the box."""
    from .extensions import db
    from .models import Connection, Merchant, SyncRule, SyncSettings

    with app.app_context():
        merchant = db.session.scalar(db.select(Merchant).order_by(Merchant.id))
        connection = merchant.connection or Connection(merchant_id=merchant.id)
        connection.stripe_secret_key = "sk_test_fake"
        connection.stripe_webhook_secret = DEMO_WEBHOOK_SECRET
        connection.economic_app_secret_token = "app"
        connection.economic_agreement_grant_token = "grant"
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
        db.session.commit()


def main() -> int:
    from doubles.economic import FakeEconomic
    from doubles.stripe import FakeStripe

    from . import devserver

    stripe_fake = FakeStripe().start()
    economic_fake = FakeEconomic().start()
    economic_fake.add_product("MISC", "Miscellaneous")
    economic_fake.add_product("DISCOUNT", "Discount")
    economic_fake.add_product("SHIP", "Shipping")
    economic_fake.add_product("ROUND", "VAT rounding", productGroup={"productGroupNumber": 3})
    os.environ.update({
        "STRIPE_API_BASE": stripe_fake.url,
        "ECONOMIC_API_URL": economic_fake.url,
        "DEMO_STRIPE_CONTROL_URL": stripe_fake.url,
        "INSTANCE_PATH": os.environ.get("INSTANCE_PATH") or str(devserver.PROJECT_ROOT / "instance" / "demo"),
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
