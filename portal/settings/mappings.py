"""Invoice/Order field mappings: the table, its inline (HTMX) row editor, Save Mappings, and Preview."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import groupby

import stripe
from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from ..extensions import db
from ..models import SyncRun, WebhookEvent
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
from ..sync.stripe_source import fetch_invoice, stripe_client, stripe_error_words
from ..stripe_accounts import stripe_accounts_of
from . import bp
from ..merchant_config import mappings_for, sync_settings_for
from .sync_config import mappings_save

FREE_TEXT_CHOICES = {
    METADATA: "Invoice metadata (type the key)",
    CUSTOM_FIELD: "Invoice custom field (type its name)",
    FIXED: "Fixed text (type it)",
}
# What the text box beside the dropdown is called, for the choices that take one (no other choice shows it).
TEXT_LABELS = {METADATA: "Metadata key", CUSTOM_FIELD: "Custom field name", FIXED: "Text"}
INVOICE_ID = re.compile(r"^in_[A-Za-z0-9]{1,250}$")
# Stripe's invoice numbers: a prefix of capitals and digits, a dash, a sequence ("NB-2026-0042"); no quotes,
# so the number can go into a search query as it is.
INVOICE_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9._/\-]{0,99}$")


@dataclass(frozen=True)
class SourceChoice:
    value: str  # what the dropdown posts
    text: str  # in words, with its group, so the closed dropdown says it all ("Shipping address › City")
    key: str = ""  # where Stripe keeps it, for the tooltip
    text_label: str = ""  # the text box's label, for the choices that take a text


def source_choices():
    """The dropdown: Stripe invoice fields grouped for people, then metadata, custom field, fixed text, not mapped."""
    groups = [
        (group, [SourceChoice(f"{FIELD}:{field.path}", field.title, field.path) for field in fields])
        for group, fields in groupby(STRIPE_FIELDS, key=lambda field: field.group)
    ]
    other = [SourceChoice(value, text, "", TEXT_LABELS[value]) for value, text in FREE_TEXT_CHOICES.items()]
    groups.append(("Other", [*other, SourceChoice(NOT_MAPPED, "Not mapped")]))
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


def recent_invoices_of(merchant_id: int) -> list[tuple[str, str]]:
    """The Preview's suggestions: (what to type, what it is) for the invoices synced or received lately, by number
    where the history knows it, else by id."""
    synced = db.session.execute(
        select(SyncRun.stripe_invoice_number, func.max(SyncRun.customer_name))
        .where(SyncRun.merchant_id == merchant_id, SyncRun.stripe_invoice_number.is_not(None))
        .group_by(SyncRun.stripe_invoice_number)
        .order_by(func.max(SyncRun.updated_at).desc())
        .limit(10)
    ).all()
    received = db.session.scalars(
        select(WebhookEvent.stripe_invoice_id)
        .where(WebhookEvent.merchant_id == merchant_id, WebhookEvent.stripe_invoice_id.is_not(None))
        .group_by(WebhookEvent.stripe_invoice_id)
        .order_by(func.max(WebhookEvent.received_at).desc())
        .limit(10)
    ).all()
    return [(number, customer or "") for number, customer in synced] + [(invoice_id, "") for invoice_id in received]


def render_table(mappings: dict[str, Mapping], errors: dict[str, str] | None = None, editing=(), status: int = 200):
    recent_invoices = recent_invoices_of(current_user.merchant_id)
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
    return {"source_choices": source_choices(), "choice_of": choice_of, "choice_allowed": choice_allowed, "text_labels": TEXT_LABELS}


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


class PreviewRefused(Exception):
    """Why there is no preview, in the merchant's words."""


def _invoice_numbered(client, number: str) -> str | None:
    """The id of the invoice with this number in one Stripe account (Stripe's invoice search), or None."""
    answer = client.raw_request("get", "/v1/invoices/search", query=f'number:"{number}"', limit=1)
    found = json.loads(answer.body).get("data") or []
    return found[0]["id"] if found else None


def invoice_for_preview(accounts: list, reference: str) -> dict:
    """The invoice `reference` names (its id, in_…, or its number), read from whichever of the merchant's Stripe
    accounts has it. Raises PreviewRefused when none has it, or stripe.StripeError when one could not be asked."""
    by_id = bool(INVOICE_ID.match(reference))
    failure: stripe.StripeError | None = None
    for account in accounts:
        client = stripe_client(account.secret_key, current_app.config["STRIPE_API_BASE"], max_network_retries=1, timeout=(5.0, 30.0))
        try:
            invoice_id = reference if by_id else _invoice_numbered(client, reference)
            if invoice_id:
                return fetch_invoice(client, invoice_id)
        except stripe.InvalidRequestError as error:
            if error.http_status != 404:
                failure = failure or error
        except stripe.StripeError as error:
            failure = failure or error
    if failure is not None:
        raise failure
    where = "your Stripe account" if len(accounts) == 1 else f"any of your {len(accounts)} Stripe accounts"
    if by_id:
        raise PreviewRefused(f"There is no invoice {reference} in {where}.")
    raise PreviewRefused(f"There is no invoice numbered {reference} in {where}. Stripe finds an invoice by its number "
                         "about a minute after it is finalized; a draft has no number yet: use its id (in_…) instead.")


def _preview_refused(message: str, problems: dict[str, str] | None = None):
    """The preview's error, answered with 200 so that HTMX swaps it in (the message says what to do)."""
    return render_template("settings/_preview.html", error=message, problems=problems or {}, targets=TARGETS_BY_KEY)


@bp.route("/mappings/preview", methods=["POST"])
@login_required
def mapping_preview():
    """The value each e-conomic field would get from one Stripe invoice, with the mappings as the table shows
    them now (edits not saved yet included), storing nothing."""
    merchant_id = current_user.merchant_id
    reference = " ".join((request.form.get("invoice") or request.form.get("invoice_id") or "").split())
    if not INVOICE_ID.match(reference):
        reference = reference.upper()
    if not reference:
        return _preview_refused("Enter the Stripe invoice's number (such as NB-2026-0042) or its id (in_…).")
    if not (INVOICE_ID.match(reference) or INVOICE_NUMBER.match(reference)):
        return _preview_refused(f"“{reference[:100]}” is neither a Stripe invoice number (such as NB-2026-0042) nor an invoice id (in_…).")
    saved = mappings_for(merchant_id)
    pending = pending_from_form(request.form)
    problems = mapping_errors(pending)
    if problems:
        named = {key: problem.removeprefix(f"{TARGETS_BY_KEY[key].label}: ") for key, problem in problems.items()}
        return _preview_refused("No preview: fix these rows first.", named)
    accounts = [account for account in stripe_accounts_of(merchant_id) if account.secret_key]
    if not accounts:
        return _preview_refused("Save a Stripe secret key on the Connections page first.")
    try:
        invoice = invoice_for_preview(accounts, reference)
    except PreviewRefused as refused:
        return _preview_refused(str(refused))
    except stripe.APIConnectionError:
        return _preview_refused("Stripe could not be reached. Try again in a moment.")
    except stripe.StripeError as error:
        return _preview_refused(f"Stripe answered: {stripe_error_words(error)}")
    settings = sync_settings_for(merchant_id)
    unsaved = any(saved.get(key) != mapping for key, mapping in pending.items())
    resolved = resolve(invoice, {**saved, **pending}, settings.time_zone)
    db.session.commit()
    return render_template("settings/_preview.html", invoice=invoice, resolved=resolved, unsaved=unsaved, error=None)
