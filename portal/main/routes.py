"""The start page: what a merchant still has to set up."""

from flask import render_template
from flask_login import current_user, login_required

from ..models import Connection
from . import bp


@bp.route("/")
@login_required
def home():
    connection: Connection | None = current_user.merchant.connection
    steps = [
        ("Stripe secret key", bool(connection and connection.stripe_secret_key)),
        ("Stripe webhook signing secret", bool(connection and connection.stripe_webhook_secret)),
        ("e-conomic tokens", bool(connection and connection.economic_app_secret_token and connection.economic_agreement_grant_token)),
    ]
    return render_template("main/home.html", steps=steps)
