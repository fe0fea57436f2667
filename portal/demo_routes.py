"""The demo's "Send a test invoice" and "Pay out" buttons, registered only when DEMO_STRIPE_CONTROL_URL is set
(`make demo`).

It asks the demo's fake Stripe, over HTTP at DEMO_STRIPE_CONTROL_URL, to make an invoice and deliver its
signed event to this merchant's webhook, as the real Stripe would. The fake itself, and the demo merchant's
setup, belong to the launcher (launch/demo.py): nothing here imports them.
"""

from __future__ import annotations

import requests
from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required

bp = Blueprint("demo", __name__)


def _webhook_target() -> tuple[str, str] | None:
    """The webhook URL and signing secret of this merchant's first Stripe account with one, as Stripe would use
    them (None: no secret saved)."""
    for account in current_user.merchant.stripe_accounts:
        if account.webhook_secret:
            return url_for("webhooks.stripe_event", webhook_key=account.webhook_key, _external=True), account.webhook_secret
    return None


@bp.route("/demo/payout", methods=["POST"])
@login_required
def payout():
    """Ask the fake Stripe to pay out its balance and deliver payout.paid to this merchant's webhook."""
    target = _webhook_target()
    if target is None:
        flash("Save a webhook signing secret on the Connections page first.", "error")
        return redirect(url_for("history.payouts"))
    try:
        answer = requests.post(current_app.config["DEMO_STRIPE_CONTROL_URL"] + "/_demo/payout", timeout=15,
                               json={"webhook_url": target[0], "secret": target[1]}).json()
    except (requests.RequestException, ValueError) as error:
        flash(f"The demo Stripe did not answer: {error}", "error")
        return redirect(url_for("history.payouts"))
    if answer["payout"] is None:
        flash("Nothing to pay out yet: send and pay a test invoice first.", "error")
    elif answer["delivery"]["status"] == 200:
        flash(f"Stripe paid out {answer['amount'] / 100:,.2f} {answer['currency'].upper()} ({answer['payout']}); "
              "watch its entries appear below.", "success")
    else:
        flash(f"The webhook for {answer['payout']} was refused: {answer['delivery']['status']} {answer['delivery']['body']}", "error")
    return redirect(url_for("history.payouts"))


@bp.route("/demo/send-invoice", methods=["POST"])
@login_required
def send_invoice():
    """Ask the fake Stripe to make an invoice and deliver its signed event to this merchant's webhook."""
    event = request.form.get("event")
    if event not in ("invoice.sent", "invoice.paid"):
        flash("Choose invoice.sent or invoice.paid.", "error")
        return redirect(url_for("history.index"))
    target = _webhook_target()
    if target is None:
        flash("Save a webhook signing secret on the Connections page first.", "error")
        return redirect(url_for("history.index"))
    variant = "exempt" if request.form.get("variant") == "exempt" else "standard"
    try:
        answer = requests.post(
            current_app.config["DEMO_STRIPE_CONTROL_URL"] + "/_demo/send-invoice", timeout=15,
            json={"event": event, "secret": target[1], "variant": variant, "webhook_url": target[0]},
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
