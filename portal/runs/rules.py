"""Which Stripe events start a sync, under a merchant's Invoice Sync Rules. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..models import SyncRule

TRIGGER_EVENTS = {"invoice.sent": "sent", "invoice.paid": "paid"}


class RuleChoices(Protocol):
    """What intake reads of a merchant's Invoice Sync Rules: a `SyncRule`, or a row of its columns."""

    trigger: str
    document_type: str
    write_back_to_stripe: bool
    sent_on_finalized_for_automatic: bool
    sync_voided_invoices: bool
    sync_zero_amount_invoices: bool


@dataclass(frozen=True)
class Decision:
    sync: bool
    reason: str = ""


def could_trigger(event_type: str) -> bool:
    """Whether an event of this type can start a sync under some rule (else it is ignored unread)."""
    return event_type in TRIGGER_EVENTS or event_type in ("invoice.finalized", "invoice.voided")


def decide(event_type: str, invoice: dict, rule: RuleChoices) -> Decision:
    """Whether this event makes the merchant's rule fire for its invoice, and if not, why not."""
    when = SyncRule.TRIGGERS[rule.trigger]
    if invoice.get("object") != "invoice":
        return Decision(False, f"{event_type} is not about an invoice.")
    total = invoice.get("total")
    if total == 0 and not rule.sync_zero_amount_invoices:
        return Decision(False, "The invoice's total is 0; invoices of 0 are not synced (Invoice Sync Rules › More options).")
    if event_type == "invoice.voided" or invoice.get("status") == "void":
        if not rule.sync_voided_invoices:
            return Decision(False, "The invoice is voided; voided invoices are not synced (Invoice Sync Rules › More options).")
        if event_type == "invoice.voided":
            return Decision(True)
    trigger = TRIGGER_EVENTS.get(event_type)
    if event_type == "invoice.finalized":
        automatic = invoice.get("collection_method") == "charge_automatically"
        if rule.trigger == "sent" and automatic and rule.sent_on_finalized_for_automatic:
            return Decision(True)
        if rule.trigger == "sent" and automatic:
            return Decision(False, "Sent on invoice.finalized for automatically charged invoices is turned off.")
        return Decision(False, f"invoice.finalized does not start a sync when the rule is “{when}”.")
    if trigger is None:
        return Decision(False, f"{event_type} is not an event the Invoice Sync Rules use.")
    if trigger != rule.trigger:
        return Decision(False, f"The rule creates documents when the invoice is {when}; this event says it was {SyncRule.TRIGGERS[trigger]}.")
    return Decision(True)
