from flask import Blueprint

from ..sync.journal_choices import JournalChoices

bp = Blueprint("webhooks", __name__)

# The Stripe events a merchant enables on the webhook endpoint.
WEBHOOK_EVENTS = ("invoice.sent", "invoice.paid", "invoice.finalized", "invoice.voided")
# The events each kind of journal entry needs besides them.
JOURNAL_WEBHOOK_EVENTS = {
    "payments_enabled": ("invoice_payment.paid",),
    "refunds_enabled": ("charge.refunded", "refund.created"),
    "credit_notes_enabled": ("credit_note.created",),
    "payouts_enabled": ("payout.paid",),
}


def journal_webhook_events(choices: JournalChoices) -> list[str]:
    """The events to enable in Stripe for the journal entries turned on, each once."""
    events = [event for kind, kind_events in JOURNAL_WEBHOOK_EVENTS.items() if getattr(choices, kind) for event in kind_events]
    return list(dict.fromkeys(events))


def webhook_events_for(choices: JournalChoices) -> list[str]:
    """Every event the merchant's webhook endpoint needs: the invoice events and the journal entries'."""
    return [*WEBHOOK_EVENTS, *journal_webhook_events(choices)]

from . import routes  # noqa: E402,F401  (registers the views)
