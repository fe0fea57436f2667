"""The Connections page: Stripe and e-conomic credentials, connection tests, the webhook URL."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..merchant_config import journal_settings_for
from ..webhooks import WEBHOOK_EVENTS
from . import bp
from .forms import ConnectionsForm
from .journals import journal_webhook_events
from .sync_config import economic_choices_forget
from .services import connection_check_economic, connection_check_stripe, connection_for, connection_update, mask_secret


@bp.route("/connections", methods=["GET", "POST"])
@login_required
def connections():
    merchant = current_user.merchant
    connection = connection_for(merchant)
    form = ConnectionsForm()
    if form.validate_on_submit():
        changed = connection_update(connection, form.data)
        db.session.commit()
        if any(name.startswith("economic_") for name in changed):
            economic_choices_forget(merchant.id)  # the lists came from the old agreement
        flash("Connections saved." if changed else "Nothing changed: blank fields keep what is stored.", "success")
        return redirect(url_for("settings.connections"))
    stored = {name: mask_secret(getattr(connection, name)) for name in connection.SECRET_FIELDS}
    webhook_url = url_for("webhooks.stripe_event", webhook_key=merchant.webhook_key, _external=True)
    if current_app.config["PUBLIC_BASE_URL"]:
        webhook_url = current_app.config["PUBLIC_BASE_URL"] + url_for("webhooks.stripe_event", webhook_key=merchant.webhook_key)
    return render_template(
        "settings/connections.html",
        form=form,
        stored=stored,
        webhook_url=webhook_url,
        webhook_events=WEBHOOK_EVENTS,
        journal_events=journal_webhook_events(journal_settings_for(merchant.id)),
    )


@bp.route("/connections/test/<service>", methods=["POST"])
@login_required
def connection_test(service: str):
    connection = connection_for(current_user.merchant)
    config = current_app.config
    if service == "stripe":
        result = connection_check_stripe(connection, config["STRIPE_API_BASE"])
    elif service == "economic":
        result = connection_check_economic(connection, config["ECONOMIC_API_URL"], config["HTTP_TIMEOUT_SECONDS"])
    else:
        return "Unknown service.", 404
    db.session.rollback()  # a check never changes stored settings
    return render_template("settings/_check_result.html", result=result, service=service)
