"""Journal entries: which money movements after the invoice (payments, refunds, payouts and Stripe's fees)
are entered in an e-conomic journal, on which accounts and with which texts, and whether Stripe credit
notes become e-conomic credit notes."""

from __future__ import annotations

from dataclasses import asdict

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from ..merchant_config import journal_settings_for, merchant_row
from ..models import JournalSettings
from ..sync.journal_choices import TEXT_PLACEHOLDERS, JournalChoices
from . import bp
from .journals_form import NUMBERS, JournalSettingsForm
from .sync_config import ChoicesUnavailable, economic_journal_lists

# The Stripe webhook events each kind needs, besides the invoice events the Connections page lists.
JOURNAL_WEBHOOK_EVENTS = {
    "payments_enabled": ("invoice_payment.paid",),
    "refunds_enabled": ("charge.refunded", "refund.created"),
    "credit_notes_enabled": ("credit_note.created",),
    "payouts_enabled": ("payout.paid",),
}


def journal_webhook_events(choices: JournalChoices) -> list[str]:
    """The events to enable in Stripe for what is turned on, each once."""
    events = [event for kind, kind_events in JOURNAL_WEBHOOK_EVENTS.items() if getattr(choices, kind) for event in kind_events]
    return list(dict.fromkeys(events))


def journal_settings_save(merchant_id: int, choices: JournalChoices) -> None:
    """Store the merchant's journal entry settings (its one row, made on first save). The caller commits."""
    row = merchant_row(JournalSettings, merchant_id)
    for name, value in asdict(choices).items():
        setattr(row, name, value)


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
