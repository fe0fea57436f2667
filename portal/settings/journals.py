"""Journal entries: which money movements after the invoice (payments, refunds, payouts and Stripe's fees)
are entered in an e-conomic journal, on which accounts and with which texts, and whether Stripe credit
notes become e-conomic credit notes."""

from __future__ import annotations

from dataclasses import asdict

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..merchant_config import journal_settings_for, merchant_row
from ..models import JournalSettings
from ..sync.journal_choices import TEXT_PLACEHOLDERS, JournalChoices
from ..webhooks import journal_webhook_events, webhook_events_for
from . import bp
from .journals_form import NUMBERS, JournalSettingsForm
from ..stripe_accounts import stripe_accounts_of
from .stripe_endpoint import WebhookEndpointError, webhook_endpoint_update
from .sync_config import ChoicesUnavailable, economic_journal_lists

def journal_settings_save(merchant_id: int, choices: JournalChoices) -> None:
    """Store the merchant's journal entry settings (its one row, made on first save). The caller commits."""
    row = merchant_row(JournalSettings, merchant_id)
    for name, value in asdict(choices).items():
        setattr(row, name, value)


def _endpoint_events_in_step(choices: JournalChoices) -> None:
    """The webhook endpoints the portal made in Stripe (one per Stripe account) get the events the new
    settings need."""
    for account in stripe_accounts_of(current_user.merchant_id):
        if not account.webhook_endpoint_id:
            continue
        try:
            webhook_endpoint_update(account, webhook_events_for(choices), api_base=current_app.config["STRIPE_API_BASE"])
            flash(f"The webhook endpoint of “{account.label}” in Stripe now sends the events these settings need.", "success")
        except WebhookEndpointError as error:
            db.session.commit()  # a deleted endpoint is forgotten
            flash(f"The webhook endpoint's events of “{account.label}” in Stripe were not updated: {error} (Connections › "
                  "Update the endpoint's events).", "warning")


@bp.route("/settings/journals", methods=["GET", "POST"])
@login_required
def journals():
    merchant_id = current_user.merchant_id
    stored = journal_settings_for(merchant_id)
    try:
        lists, lists_error = economic_journal_lists(merchant_id, refresh=bool(request.args.get("refresh"))), None
    except ChoicesUnavailable as error:
        lists, lists_error = None, str(error)
    form = JournalSettingsForm(obj=stored)
    form.set_economic_lists(lists, stored)
    if form.validate_on_submit():
        choices = form.choices()
        journal_settings_save(merchant_id, choices)
        db.session.commit()
        flash("Journal entries saved.", "success")
        _endpoint_events_in_step(choices)
        if lists is None and any(getattr(choices, name) is not None for name in NUMBERS):
            flash("The journal and accounts were not checked in e-conomic, as its lists could not be read: "
                  "check that they exist there and take entries.", "warning")
        return redirect(url_for("settings.journals"))
    status = 422 if form.errors else 200
    return render_template(
        "settings/journals.html",
        form=form,
        lists_error=lists_error,
        placeholders=TEXT_PLACEHOLDERS,
        webhook_events=journal_webhook_events(stored),
    ), status
