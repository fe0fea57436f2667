"""The Connections page: Stripe and e-conomic credentials, connection tests, the webhook URL and the
webhook endpoint the portal can make in Stripe."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..merchant_config import journal_settings_for
from ..models import Merchant
from ..webhooks import WEBHOOK_EVENTS, journal_webhook_events, webhook_events_for
from . import bp
from .forms import ConnectionsForm
from .sync_config import economic_choices_forget
from .services import connection_check_economic, connection_check_stripe, connection_for, connection_update, mask_secret
from .stripe_endpoint import WebhookEndpointError, webhook_endpoint_create, webhook_endpoint_delete, webhook_endpoint_update


def webhook_url_for(merchant: Merchant) -> str:
    """The merchant's webhook URL: on PUBLIC_BASE_URL when set, else on the address of this request."""
    path = url_for("webhooks.stripe_event", webhook_key=merchant.webhook_key)
    base = current_app.config["PUBLIC_BASE_URL"]
    return base + path if base else url_for("webhooks.stripe_event", webhook_key=merchant.webhook_key, _external=True)


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
    return render_template(
        "settings/connections.html",
        form=form,
        stored=stored,
        webhook_url=webhook_url_for(merchant),
        webhook_events=WEBHOOK_EVENTS,
        journal_events=journal_webhook_events(journal_settings_for(merchant.id)),
        endpoint_id=connection.stripe_webhook_endpoint_id,
    )


@bp.route("/connections/webhook-endpoint/create", methods=["POST"])
@login_required
def webhook_endpoint_create_view():
    merchant = current_user.merchant
    connection = connection_for(merchant)
    pasted_before = bool(connection.stripe_webhook_secret)
    return _endpoint_action(
        lambda api_base: webhook_endpoint_create(connection, webhook_url_for(merchant), webhook_events_for(journal_settings_for(merchant.id)), api_base=api_base),
        "Webhook endpoint created in Stripe; its signing secret is stored."
        + (" It replaces the signing secret stored before: delete the endpoint you added by hand in Stripe's dashboard."
           if pasted_before else ""),
    )


@bp.route("/connections/webhook-endpoint/update", methods=["POST"])
@login_required
def webhook_endpoint_update_view():
    merchant = current_user.merchant
    connection = connection_for(merchant)
    return _endpoint_action(lambda api_base: webhook_endpoint_update(connection, webhook_events_for(journal_settings_for(merchant.id)), api_base=api_base),
                            "The webhook endpoint's events now match what is synced.")


@bp.route("/connections/webhook-endpoint/delete", methods=["POST"])
@login_required
def webhook_endpoint_delete_view():
    connection = connection_for(current_user.merchant)
    return _endpoint_action(lambda api_base: webhook_endpoint_delete(connection, api_base=api_base),
                            "Webhook endpoint deleted in Stripe; its signing secret is forgotten.")


def _endpoint_action(action, done: str):
    """Run one webhook endpoint action; commit what it changed, or nothing when Stripe refused."""
    try:
        action(current_app.config["STRIPE_API_BASE"])
    except WebhookEndpointError as error:
        if error.forgotten:
            db.session.commit()
        else:
            db.session.rollback()
        flash(error.message, "warning" if error.forgotten else "error")
    else:
        db.session.commit()
        flash(done, "success")
    return redirect(url_for("settings.connections"))


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
