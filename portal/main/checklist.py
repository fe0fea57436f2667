"""The start page's setup checklist: what a merchant has set up, read from the tables as they are.

Reads only: no row is created (so not `merchant_config.rule_for` and friends, which make a merchant's
rows on first read), and nothing is asked of Stripe or e-conomic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from ..extensions import db
from ..models import Connection, RunKind, RunStatus, StripeAccount, SyncRule, SyncRun, SyncSettings
from ..stripe_accounts import last_event_of
from ..templating import when


@dataclass(frozen=True)
class ChecklistStep:
    title: str
    done: bool
    detail: str  # one line of plain words
    endpoint: str  # where the step is set up (or, once done, seen)
    url_values: dict = field(default_factory=dict)
    note: str | None = None  # a sub-state under the step's line


def setup_checklist(merchant_id: int) -> list[ChecklistStep]:
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == merchant_id))
    return [
        _stripe_step(merchant_id),
        _economic_step(connection),
        _rules_step(merchant_id),
        _settings_step(merchant_id),
        _first_invoice_step(merchant_id),
    ]


def _stripe_step(merchant_id: int) -> ChecklistStep:
    """Done when an account has a key whose last check did not fail (keys are checked when saved)."""
    accounts = db.session.execute(select(  # not the keys themselves: they would be decrypted for nothing
        StripeAccount.id, StripeAccount.label, StripeAccount.check_ok, StripeAccount.secret_key.is_not(None).label("keyed"))
        .where(StripeAccount.merchant_id == merchant_id)).all()
    keyed = [row for row in accounts if row.keyed]
    working = [row for row in keyed if row.check_ok is not False]
    failing = [row.label for row in keyed if row.check_ok is False]
    done = bool(working)
    last_event = max((last[0] for row in accounts if (last := last_event_of(merchant_id, row.id))), default=None)
    note = (f"Last event received {when(last_event)}." if last_event
            else "No event received yet: create the webhook endpoint on the Connections page.")
    if failing:
        note = f"The last check of {', '.join(f'“{label}”' for label in failing)} failed: see Connections. " + note
    if done:
        detail = "Stripe secret key saved and checked." if len(working) == 1 else f"{len(working)} Stripe accounts connected."
    elif failing:
        detail = "Stripe refused the saved key at the last check: save a working key on the Connections page."
    else:
        detail = "Save your Stripe secret key on the Connections page."
    return ChecklistStep("Stripe connected", done, detail, "settings.connections", note=note)


def _economic_step(connection: Connection | None) -> ChecklistStep:
    """Done when both tokens are stored and the last check of them did not fail."""
    stored = bool(connection and connection.economic_app_secret_token and connection.economic_agreement_grant_token)
    failed = stored and connection.economic_check_ok is False
    done = stored and not failed
    if not stored:
        detail = "Connect e-conomic on the Connections page."
    elif failed:
        detail = "e-conomic refused the stored tokens at the last check: connect e-conomic again on the Connections page."
    elif connection.economic_company_name or connection.economic_agreement_number:
        number = f" (agreement {connection.economic_agreement_number})" if connection.economic_agreement_number else ""
        detail = f"Connected as {connection.economic_company_name or 'your company'}{number}."
    else:
        detail = "Tokens saved; use Test connection on the Connections page to check them."
    note = None
    if failed and connection.economic_checked_at:
        note = f"The last check, {when(connection.economic_checked_at)}, failed: {connection.economic_check_message}"
    return ChecklistStep("e-conomic connected", done, detail, "settings.connections", note=note)


def _rules_step(merchant_id: int) -> ChecklistStep:
    done = db.session.scalar(select(SyncRule.id).where(SyncRule.merchant_id == merchant_id)) is not None
    detail = ("Saved: when an invoice is synced and what it becomes in e-conomic." if done
              else "Choose when an invoice is synced (Sent or Paid) and what it becomes in e-conomic.")
    return ChecklistStep("Invoice Sync Rules saved", done, detail, "settings.rules")


def settings_missing(settings: SyncSettings | None) -> list[str]:
    """The customer & product settings a sync cannot do without that are still empty, in the page's words
    (the engine's `SettingMissing` names them the same)."""
    if settings is None:
        return ["Payment terms", "Customer group", "VAT zone for domestic customers", "Invoice layout"]
    required = [
        (settings.payment_terms_number, "Payment terms"),
        (settings.customer_group_number, "Customer group"),
        (settings.vat_zone_domestic, "VAT zone for domestic customers"),
        (settings.layout_number, "Invoice layout"),
    ]
    if settings.currency_mode == "fixed":
        required.append((settings.fixed_currency, "Fixed currency"))
    if settings.match_customers_on == "custom":
        required.append((settings.custom_match_stripe_key, "Custom field: the Stripe metadata key"))
        required.append((settings.custom_match_economic_field, "Custom field: the e-conomic field"))
    if settings.product_not_found == "default":
        required.append((settings.default_product_number, "Default product number"))
    return [name for value, name in required if value in (None, "")]


def _settings_step(merchant_id: int) -> ChecklistStep:
    settings = db.session.scalar(select(SyncSettings).where(SyncSettings.merchant_id == merchant_id))
    missing = settings_missing(settings)
    detail = ("Everything a sync needs is chosen." if not missing
              else "Still to choose: " + ", ".join(missing) + ".")
    return ChecklistStep("Customer & product settings complete", not missing, detail, "settings.customer_product")


_IN_PROGRESS = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING, RunStatus.WAITING)


def _first_invoice_step(merchant_id: int) -> ChecklistStep:
    invoice_runs = (SyncRun.merchant_id == merchant_id, SyncRun.kind == RunKind.INVOICE.value, SyncRun.superseded_by.is_(None))
    synced = db.session.scalars(
        select(SyncRun).where(*invoice_runs, SyncRun.status == RunStatus.SUCCEEDED.value)
        .order_by(SyncRun.finished_at, SyncRun.id).limit(1)
    ).first()
    title = "First invoice synced"
    if synced is not None:
        name = synced.stripe_invoice_number or synced.stripe_invoice_id
        return ChecklistStep(title, True, f"Invoice {name} was synced into e-conomic.", "history.invoice",
                             {"stripe_invoice_id": synced.stripe_invoice_id})
    counts = dict(db.session.execute(
        select(SyncRun.status, func.count()).where(*invoice_runs).group_by(SyncRun.status)).all())
    waiting = sum(counts.get(status.value, 0) for status in _IN_PROGRESS)
    parts = [f"{count} {label}" for count, label in (
        (waiting, "waiting"), (counts.get(RunStatus.FAILED.value, 0), "failed"),
        (counts.get(RunStatus.HELD.value, 0), "held for review")) if count]
    detail = ("No invoice synced yet: " + ", ".join(parts) + " (see the Sync history)." if parts
              else "No invoice synced yet: one is synced when Stripe sends an invoice event your rules take.")
    return ChecklistStep(title, False, detail, "history.index")
