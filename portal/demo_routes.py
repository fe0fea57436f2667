"""The demo's "Send a test invoice" button, registered only when DEMO_STRIPE_CONTROL_URL is set (`make demo`).

It asks the demo's fake Stripe, over HTTP at DEMO_STRIPE_CONTROL_URL, to make an invoice and deliver its
signed event to this merchant's webhook, as the real Stripe would. The fake itself, and the demo merchant's
setup, belong to the launcher (launch/demo.py): nothing here imports them.
"""

from __future__ import annotations

import requests
from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required

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
