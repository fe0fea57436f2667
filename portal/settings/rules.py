"""Invoice Sync Rules: when to sync and what to create."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from ..extensions import db
from . import bp
from .forms import RulesForm
from ..merchant_config import rule_for

RULE_FIELDS = (
    "trigger",
    "document_type",
    "sent_on_finalized_for_automatic",
    "sync_voided_invoices",
    "sync_zero_amount_invoices",
    "write_back_to_stripe",
)


@bp.route("/rules", methods=["GET", "POST"])
@login_required
def rules():
    rule = rule_for(current_user.merchant_id)
    form = RulesForm(obj=rule)
    if form.validate_on_submit():
        for name in RULE_FIELDS:
            setattr(rule, name, getattr(form, name).data)
        db.session.commit()
        flash("Invoice Sync Rules saved. Runs already queued keep the rule they were queued under.", "success")
        return redirect(url_for("settings.rules"))
    db.session.commit()  # keeps the defaults created on first visit
    return render_template("settings/rules.html", form=form, rule=rule)
