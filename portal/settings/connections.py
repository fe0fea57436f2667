"""The Connections page: the merchant's Stripe accounts (each with its key, webhook URL, signing secret and
webhook endpoint, and its live state) and its e-conomic agreement (portal/settings/economic_connect.py)."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..merchant_config import journal_settings_for
from ..models import StripeAccount
from ..public_urls import public_url_for
from ..stripe_accounts import stripe_account_of, stripe_accounts_of
from ..webhooks import WEBHOOK_EVENTS, journal_webhook_events, webhook_events_for
from . import bp
from .economic_connect import economic_connection_view
from .services import connection_check_economic, connection_for
from .stripe_connect import (
    StripeConnectError,
    account_states,
    stripe_account_add,
    stripe_account_disconnect,
    stripe_account_settings_save,
    stripe_account_test,
    stripe_key_save,
    stripe_key_try,
    stripe_signing_secret_save,
)
from .stripe_endpoint import WebhookEndpointError, webhook_endpoint_create, webhook_endpoint_delete, webhook_endpoint_update


def webhook_url_for(account: StripeAccount) -> str:
    """The account's webhook URL, as Stripe is to call it."""
    return public_url_for("webhooks.stripe_event", webhook_key=account.webhook_key)


@bp.route("/connections")
@login_required
def connections():
    merchant = current_user.merchant
    accounts = stripe_accounts_of(merchant.id)
    return render_template(
        "settings/connections.html",
        states=account_states(merchant.id, accounts),
        webhook_urls={account.id: webhook_url_for(account) for account in accounts},
        webhook_events=WEBHOOK_EVENTS,
        journal_events=journal_webhook_events(journal_settings_for(merchant.id)),
        economic=economic_connection_view(merchant.connection, current_app.config),  # None before e-conomic is connected
    )


def _account() -> StripeAccount:
    """The signed-in merchant's account named in the URL; 404 for anyone else's."""
    account = stripe_account_of(current_user.merchant_id, request.view_args.get("account_id"))
    if account is None:
        abort(404)
    return account


def _done(message: str, category: str = "success", account: StripeAccount | None = None):
    flash(message, category)
    return redirect(url_for("settings.connections") + (f"#stripe-account-{account.id}" if account else ""))


@bp.route("/connections/stripe", methods=["POST"])
@login_required
def stripe_account_create():
    """"Add a Stripe account": a name, and (optionally at once) its key."""
    try:
        account = stripe_account_add(current_user.merchant_id, request.form.get("label", ""))
        key = (request.form.get("secret_key") or "").strip()
        if key:
            stripe_key_save(account, key, current_app.config["STRIPE_API_BASE"], journal_settings_for(current_user.merchant_id))
    except StripeConnectError as error:
        db.session.rollback()
        return _done(f"The Stripe account was not added: {error}", "error")
    db.session.commit()
    return _done(f"Stripe account “{account.label}” added." + ("" if account.secret_key else " Enter its secret key next."),
                 account=account)


def _account_change(change, refused: str, done: str):
    """Apply one change to the URL's account: committed with `done` said, or rolled back with `refused` and
    the reason. `done` may name the account's fields as they are after the change ({account.label})."""
    account = _account()
    try:
        change(account)
    except StripeConnectError as error:
        db.session.rollback()
        return _done(f"{refused}: {error}", "error", account)
    db.session.commit()
    return _done(done.format(account=account), account=account)


@bp.route("/connections/stripe/<int:account_id>/key", methods=["POST"])
@login_required
def stripe_account_key(account_id: int):
    return _account_change(
        lambda account: stripe_key_save(account, request.form.get("secret_key", ""), current_app.config["STRIPE_API_BASE"],
                                        journal_settings_for(current_user.merchant_id)),
        "The key was not saved", "Key saved for “{account.label}”. {account.check_message}")


@bp.route("/connections/stripe/<int:account_id>/signing-secret", methods=["POST"])
@login_required
def stripe_account_signing_secret(account_id: int):
    return _account_change(
        lambda account: stripe_signing_secret_save(account, request.form.get("webhook_secret", "")),
        "The signing secret was not saved", "Signing secret saved for “{account.label}”: its events are accepted from now on.")


@bp.route("/connections/stripe/<int:account_id>/settings", methods=["POST"])
@login_required
def stripe_account_settings(account_id: int):
    form = request.form
    return _account_change(
        lambda account: stripe_account_settings_save(account, form.get("label", ""), form.get("fixed_currency", ""),
                                                     form.get("layout_number", "")),
        "Nothing was changed", "“{account.label}” saved.")


@bp.route("/connections/stripe/<int:account_id>/disconnect", methods=["POST"])
@login_required
def stripe_account_disconnect_view(account_id: int):
    account = _account()
    warning = stripe_account_disconnect(account, current_app.config["STRIPE_API_BASE"])
    db.session.commit()
    if warning:
        flash(warning, "warning")
    return _done(f"“{account.label}” is disconnected: its key and signing secret are forgotten, and its events are refused "
                 "until it is connected again. Its history stays.", account=account)


@bp.route("/connections/stripe/<int:account_id>/test", methods=["POST"])
@login_required
def stripe_account_check(account_id: int):
    account = _account()
    access = stripe_account_test(account, current_app.config["STRIPE_API_BASE"], journal_settings_for(current_user.merchant_id))
    db.session.commit()  # the check's answer is the account's live state
    return render_template("settings/_check_result.html", result={"ok": access.ok, "message": account.check_message},
                           service=f"stripe-{account.id}")


@bp.route("/connections/stripe/<int:account_id>/key/test", methods=["POST"])
@login_required
def stripe_key_test(account_id: int):
    """"Test this key": checks the key typed into the account's form with Stripe, storing nothing."""
    account = _account()
    ok, message = stripe_key_try(account, request.form.get("secret_key", ""), current_app.config["STRIPE_API_BASE"],
                                 journal_settings_for(current_user.merchant_id))
    db.session.rollback()
    return render_template("settings/_check_result.html", result={"ok": ok, "message": message})


@bp.route("/connections/stripe/<int:account_id>/webhook-endpoint/<action>", methods=["POST"])
@login_required
def stripe_webhook_endpoint(account_id: int, action: str):
    """Create, update or delete the account's webhook endpoint in Stripe."""
    account = _account()
    api_base = current_app.config["STRIPE_API_BASE"]
    events = webhook_events_for(journal_settings_for(current_user.merchant_id))
    pasted_before = bool(account.webhook_secret) and not account.webhook_endpoint_id
    actions = {
        "create": (lambda: webhook_endpoint_create(account, webhook_url_for(account), events, api_base=api_base),
                   "Webhook endpoint created in Stripe; its signing secret is stored."
                   + (" It replaces the signing secret pasted before: delete the endpoint you added by hand in Stripe's "
                      "dashboard." if pasted_before else "")),
        "update": (lambda: webhook_endpoint_update(account, events, api_base=api_base),
                   "The webhook endpoint's events now match what is synced."),
        "delete": (lambda: webhook_endpoint_delete(account, api_base=api_base),
                   "Webhook endpoint deleted in Stripe; its signing secret is forgotten."),
    }
    if action not in actions:
        abort(404)
    act, done = actions[action]
    try:
        act()
    except WebhookEndpointError as error:
        if error.forgotten:
            db.session.commit()
        else:
            db.session.rollback()
        return _done(error.message, "warning" if error.forgotten else "error", account)
    db.session.commit()
    return _done(done, account=account)


@bp.route("/connections/test/<service>", methods=["POST"])
@login_required
def connection_test(service: str):
    """"Test connection" of e-conomic (each Stripe account has its own: stripe_account_check)."""
    if service != "economic":
        abort(404)
    connection = connection_for(current_user.merchant)
    config = current_app.config
    result = connection_check_economic(connection, config["ECONOMIC_API_URL"], config["HTTP_TIMEOUT_SECONDS"])
    if connection.id is None:
        db.session.rollback()  # nothing connected: no empty row is stored for a check
    else:
        db.session.commit()  # the check's answer is the connection's live state
    return render_template("settings/_check_result.html", result=result, service="economic")
