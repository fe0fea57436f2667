"""The Sync history as a ledger: one row per invoice (or entry), whether a run made something or the rules
left the invoice alone, with what a merchant reads at a glance — number, customer, amount, what was created
(linked to e-conomic), the status in words with an icon, and a one-line note.

Pure functions: no queries, nothing written. `economic_document_url` is shared with the invoice page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..models import RunKind, SyncRule
from ..sync.stripe_source import InvoiceFacts, event_object, invoice_facts_of
from .review import row_note, run_what


@dataclass(frozen=True)
class StatusLook:
    icon: str  # decorative: shown aria-hidden next to the word
    word: str  # what a person reads (and a screen reader says)
    css: str  # the status-… class: its colour


STATUS_LOOKS = {
    "succeeded": StatusLook("✓", "Succeeded", "succeeded"),
    "queued": StatusLook("◷", "Queued", "queued"),
    "running": StatusLook("↻", "Syncing", "running"),
    "retrying": StatusLook("↻", "Retrying", "retrying"),
    "waiting": StatusLook("◷", "Waiting", "waiting"),
    "held": StatusLook("⚠", "Held for review", "held"),
    "failed": StatusLook("✕", "Failed", "failed"),
    "skipped": StatusLook("–", "Skipped", "skipped"),
    "ignored": StatusLook("–", "Not synced", "ignored"),
}


def status_look(status: str) -> StatusLook:
    return STATUS_LOOKS.get(status, StatusLook("•", status.capitalize(), status))


# e-conomic's web app (https://secure.e-conomic.com) has no documented link to one document: its pages of a
# single draft use an internal id that the REST API does not give, and a booked invoice's page needs a session
# value. What is observed stable are the lists of each kind, so a document links to its kind's list (and its
# number is shown beside the link). Draft and booked lists as observed in e-conomic's UI; the orders list by
# the same pattern (not confirmed).
ECONOMIC_PATHS = {
    "booked_invoice": "/sales/invoicing/archive",
    "draft_invoice": "/sales/invoicing/invoices",
    "draft_order": "/sales/invoicing/orders",
}


def economic_document_url(app_url: str, document_type: str, number: int | str | None) -> str | None:
    """Where a document the sync made is found in e-conomic's web app, or None when nothing was made.

    `app_url` is config ECONOMIC_APP_URL (https://secure.e-conomic.com); `document_type` a rule's
    "booked_invoice", "draft_invoice" or "draft_order"; `number` the document's number in e-conomic (None or
    "" while nothing is made). The link opens the list of that kind of document (see ECONOMIC_PATHS): show the
    number with it.
    """
    if number in (None, "") or document_type not in ECONOMIC_PATHS:
        return None
    return f"{app_url.rstrip('/')}{ECONOMIC_PATHS[document_type]}"


def invoice_facts(payload: str | None) -> InvoiceFacts:
    """The invoice's number, customer and total from an event's payload ("" once pruned: nothing known)."""
    return invoice_facts_of(event_object(payload))


@dataclass(frozen=True)
class LedgerRow:
    """One line of the history: a run, or an invoice the rules did not sync (an ignored event)."""

    kind: str  # "run" or "event"
    id: int
    moment: datetime
    status: str
    look: StatusLook
    stripe_invoice_id: str | None
    label: str  # the invoice's number, else its Stripe id; a payout: "Payout of 28 Nov" (its po_… on its page)
    link: str | None  # the history page to open (set by the route: it knows url_for)
    customer_name: str | None
    customer_email: str | None
    total_minor: int | None
    currency: str | None
    stripe_account_id: int | None
    what: str  # what is (or would be) made: "Booked invoice", "Customer payment"
    created: str  # what was made, with its number: "Booked invoice 20003", "voucher 12"; "" if nothing yet
    document_url: str | None  # that document in e-conomic's web app
    note: str  # one line: why held/failed/skipped/not synced, when a retry comes
    run: object | None = None  # the SyncRun, for its actions and flags
    event_id: int | None = None

    @property
    def cursor_key(self) -> tuple[datetime, str, int]:
        return self.moment, self.kind, self.id


def created_words(run) -> str:
    """What the run made in e-conomic, with its number, in words; "" while nothing is."""
    if run.economic_voucher_number:
        return f"Voucher {run.economic_voucher_number}"
    number = run.document_number
    if not number:
        return ""
    if run.kind == RunKind.CREDIT_NOTE:
        return f"Credit note {number}"
    return f"{SyncRule.DOCUMENT_TYPES.get(run.document_type, run.document_type)} {number}"


def one_line(text: str | None, limit: int = 110) -> str:
    """An error's first sentence-ish line, shortened at a word: the full text is on the invoice page."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:.") + "…"


def row_from_run(run, app_url: str) -> LedgerRow:
    document_url = None
    if not run.economic_voucher_number and run.kind in (RunKind.INVOICE, RunKind.CREDIT_NOTE):
        document_url = economic_document_url(app_url, run.document_type, run.document_number)
    note = ""
    if run.status in ("held", "failed", "skipped", "waiting"):
        note = one_line(row_note(run))
    elif run.status == "retrying":
        note = one_line(f"Failed for now: {run.last_error}") if run.last_error else ""
    return LedgerRow(
        kind="run", id=run.id, moment=run.updated_at, status=run.status, look=status_look(run.status),
        stripe_invoice_id=run.stripe_invoice_id,
        label=run.stripe_invoice_number or run.stripe_invoice_id or _payout_label(run), link=None,
        customer_name=run.customer_name, customer_email=run.customer_email, total_minor=run.total_minor,
        currency=run.currency, stripe_account_id=run.stripe_account_id, what=run_what(run),
        created=created_words(run), document_url=document_url, note=note, run=run,
    )


def row_from_event(event) -> LedgerRow:
    facts = invoice_facts(event.payload)
    return LedgerRow(
        kind="event", id=event.id, moment=event.received_at, status="ignored", look=status_look("ignored"),
        stripe_invoice_id=event.stripe_invoice_id, label=facts.number or event.stripe_invoice_id or event.stripe_event_id,
        link=None, customer_name=facts.customer_name, customer_email=facts.customer_email,
        total_minor=facts.total_minor, currency=facts.currency, stripe_account_id=event.stripe_account_id,
        what="", created="", document_url=None, note=one_line(event.ignored_reason or "The rules did not sync it."),
        event_id=event.id,
    )


def _payout_label(run) -> str:
    """A payout has no invoice number: it is named by the day it was made (its po_… id is on the Payouts page)."""
    if run.kind == "payout" and run.created_at is not None:
        return f"Payout of {run.created_at:%-d %b %Y}"
    return run.stripe_object_id
