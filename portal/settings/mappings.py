"""Invoice/Order field mappings: the table, its inline (HTMX) row editor, Save Mappings, and Preview."""

from __future__ import annotations

import re
from itertools import groupby

import stripe
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from ..extensions import db
from ..models import WebhookEvent
from ..sync.mapping import (
    CUSTOM_FIELD,
    FIELD,
    FIXED,
    METADATA,
    NOT_MAPPED,
    STRIPE_FIELDS,
    TARGETS,
    TARGETS_BY_KEY,
    Mapping,
    MappingError,
    Source,
    mapping_errors,
    resolve,
    source_allowed,
    source_from_choice,
)
from ..sync.stripe_source import fetch_invoice, stripe_client
from ..stripe_accounts import stripe_accounts_of
from . import bp
from ..merchant_config import mappings_for, sync_settings_for
from .sync_config import mappings_save

FREE_TEXT_CHOICES = {
    METADATA: "Invoice metadata › metadata.<key> (type the key)",
    CUSTOM_FIELD: "Invoice custom field › (type the field's name)",
    FIXED: "A fixed text (type it)",
}
INVOICE_ID = re.compile(r"^in_[A-Za-z0-9]{1,250}$")


def source_choices():
    """The dropdown: Stripe invoice fields grouped for people, then metadata, custom field, fixed text, not mapped."""
    groups = [
        (group, [(f"{FIELD}:{field.path}", f"{field.label} ({field.path})") for field in fields])
        for group, fields in groupby(STRIPE_FIELDS, key=lambda field: field.group)
    ]
    groups.append(("Other", [*FREE_TEXT_CHOICES.items(), (NOT_MAPPED, "Not mapped")]))
    return groups


def choice_of(source: Source) -> tuple[str, str]:
    """The dropdown value and the free text for a stored source."""
    if source.type in FREE_TEXT_CHOICES:
        return source.type, source.value
    return source.spec, ""


def choice_allowed(target, choice: str) -> bool:
    return source_allowed(target, source_from_choice(choice, "x"))


def editable_targets():
    return [target for target in TARGETS if not target.locked]


def pending_from_form(form) -> dict[str, Mapping]:
    """The rows as the page posted them (every editable row carries its pending values)."""
    pending = {}
    for target in editable_targets():
        choice = form.get(f"source-{target.key}")
        if choice is None:
            continue
        fallback = form.get(f"fallback-{target.key}", NOT_MAPPED)
        pending[target.key] = Mapping(
            source_from_choice(choice, form.get(f"source_text-{target.key}", "")),
            source_from_choice(fallback, form.get(f"fallback_text-{target.key}", "")),
        )
    return pending


def render_table(mappings: dict[str, Mapping], errors: dict[str, str] | None = None, editing=(), status: int = 200):
    merchant_id = current_user.merchant_id
    recent_invoices = db.session.scalars(
        select(WebhookEvent.stripe_invoice_id)
        .where(WebhookEvent.merchant_id == merchant_id, WebhookEvent.stripe_invoice_id.is_not(None))
        .group_by(WebhookEvent.stripe_invoice_id)
        .order_by(func.max(WebhookEvent.received_at).desc())
        .limit(10)
    ).all()
    return (
        render_template(
            "settings/mappings.html",
            targets=TARGETS,
            mappings=mappings,
            errors=errors or {},
            editing=set(editing),
            recent_invoices=recent_invoices,
            **row_helpers(),
        ),
        status,
    )


def row_helpers():
    return {"source_choices": source_choices(), "choice_of": choice_of, "choice_allowed": choice_allowed}


@bp.route("/mappings", methods=["GET", "POST"])
@login_required
def mappings():
    merchant_id = current_user.merchant_id
    if request.method == "GET":
        return render_table(mappings_for(merchant_id))
    # POST: Save Mappings. CSRF is checked for every POST by CSRFProtect.
    pending = pending_from_form(request.form)
    errors = mapping_errors(pending)
    if not pending:
        flash("Nothing to save.", "info")
        return redirect(url_for("settings.mappings"))
    if errors:
        shown = {**mappings_for(merchant_id), **pending}
        return render_table(shown, errors, editing=errors.keys(), status=422)
    try:
        mappings_save(merchant_id, pending)
    except MappingError as error:  # mapping_errors said yes above; this is a guard, not a path
        db.session.rollback()
        flash(str(error), "error")
        return redirect(url_for("settings.mappings"))
    db.session.commit()
    flash("Mappings saved.", "success")
    return redirect(url_for("settings.mappings"))


@bp.route("/mappings/<target_key>/edit")
@login_required
def mapping_row_edit(target_key: str):
    target = TARGETS_BY_KEY.get(target_key)
    if target is None or target.locked:
        return "This field cannot be edited.", 404
    current = mappings_for(current_user.merchant_id)[target.key]
    pending = pending_from_form(request.args).get(target.key, current)
    response = current_app.make_response(
        render_template("settings/_mapping_row_edit.html", target=target, mapping=pending, error=None, **row_helpers())
    )
    response.headers["Vary"] = "HX-Request"
    return response


def _invoice_in_any(accounts: list, invoice_id: str) -> dict:
    """The invoice, read from whichever of the merchant's Stripe accounts has it (Stripe answers 404 in the others)."""
    for position, account in enumerate(accounts):
        client = stripe_client(account.secret_key, current_app.config["STRIPE_API_BASE"], max_network_retries=1)
        try:
            return fetch_invoice(client, invoice_id)
        except stripe.InvalidRequestError as error:
            if error.http_status != 404 or position == len(accounts) - 1:
                raise
    raise AssertionError("unreachable: accounts is never empty")


@bp.route("/mappings/preview", methods=["POST"])
@login_required
def mapping_preview():
    invoice_id = (request.form.get("invoice_id") or "").strip()
    if not INVOICE_ID.match(invoice_id):
        return render_template("settings/_preview.html", error="Enter a Stripe invoice id, such as in_1QxYz…"), 422
    accounts = [account for account in stripe_accounts_of(current_user.merchant_id) if account.secret_key]
    if not accounts:
        return render_template("settings/_preview.html", error="Save a Stripe secret key on the Connections page first."), 422
    try:
        invoice = _invoice_in_any(accounts, invoice_id)
    except stripe.StripeError as error:
        message = error.user_message or str(error) or error.__class__.__name__
        return render_template("settings/_preview.html", error=f"Stripe answered: {message}"), 422
    settings = sync_settings_for(current_user.merchant_id)
    resolved = resolve(invoice, mappings_for(current_user.merchant_id), settings.time_zone)
    db.session.commit()
    return render_template("settings/_preview.html", invoice=invoice, resolved=resolved, error=None)
