"""Runs of the money after an invoice: a Stripe payment, refund, credit note or payout becomes a run of its kind,
entered in e-conomic once, with the same pipeline as invoices (stored event, job, lease, requeue, Sync again).

Which events make which runs is decided here; a payment waits for its invoice to be booked, a credit note
for its invoice's run, a payout for the payments in it, and each is queued again when what it waits for
is done (and, in case that news is missed, by the requeue pass a while later).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import stripe
from sqlalchemy import bindparam, select, update

from ..extensions import db
from ..merchant_config import journal_settings_for, rule_for
from ..models import RunKind, RunStatus, SyncRun, insert_if_absent, utcnow
from ..sync.journal_choices import JournalChoices
from ..sync.credit_notes import REVERSAL_ID_PREFIX
from ..sync.ledger import EntryOutcome
from ..sync.stripe_source import charge_refunds, invoice_payments_paid
from .queueing import sync_run_enqueue
from .services import CURRENT_RUN, SYNC_RUN_KEY, RunActionRefused, sync_run_finished

# The events that make journal-entry runs, and of which kind. invoice.paid makes the invoice's run too.
ENTRY_EVENTS = {
    "invoice_payment.paid": RunKind.PAYMENT,
    "invoice.paid": RunKind.PAYMENT,
    "refund.created": RunKind.REFUND,
    "charge.refunded": RunKind.REFUND,
    "credit_note.created": RunKind.CREDIT_NOTE,
    "payout.paid": RunKind.PAYOUT,
}
ENTRY_ONLY_EVENTS = frozenset(ENTRY_EVENTS) - {"invoice.paid"}
SETTING_OF_KIND = {
    RunKind.PAYMENT: ("payments_enabled", "Customer payments"),
    RunKind.REFUND: ("refunds_enabled", "Refunds"),
    RunKind.CREDIT_NOTE: ("credit_notes_enabled", "Credit notes"),
    RunKind.PAYOUT: ("payouts_enabled", "Payouts and Stripe's fees"),
}
DOCUMENT_OF_KIND = {RunKind.PAYMENT: "customer_payment", RunKind.REFUND: "refund", RunKind.PAYOUT: "payout"}


@dataclass(frozen=True)
class EntryTarget:
    """A Stripe object an event asks us to enter, and the invoice it belongs to (if known yet)."""

    kind: RunKind
    stripe_object_id: str
    stripe_invoice_id: str | None = None
    stripe_payment_ref: str | None = None  # a payment's pi_… or ch_…, which its payout's transactions name


def entry_kind_off(choices: JournalChoices, kind: RunKind) -> str | None:
    """Why runs of this kind are not made for the merchant (the setting is off), or None."""
    field, label = SETTING_OF_KIND[kind]
    if getattr(choices, field):
        return None
    return f"{label} are not entered in e-conomic (Journal entries settings)."


def _payment_ref(invoice_payment: dict) -> str | None:
    payment = invoice_payment.get("payment") or {}
    reference = payment.get(payment.get("type") or "")
    if isinstance(reference, dict):
        reference = reference.get("id")
    return reference if isinstance(reference, str) else None


def entry_targets(event_type: str, obj: dict, client: stripe.StripeClient) -> list[EntryTarget]:
    """What the event's object asks us to enter. invoice.paid and charge.refunded list their invoice's
    payments or their charge's refunds from Stripe (the other events carry the object itself)."""
    kind = ENTRY_EVENTS[event_type]
    if event_type == "invoice_payment.paid":
        return [EntryTarget(kind, obj["id"], obj.get("invoice"), _payment_ref(obj))]
    if event_type == "invoice.paid":
        return [EntryTarget(kind, payment["id"], obj["id"], _payment_ref(payment))
                for payment in invoice_payments_paid(client, obj["id"])]
    if event_type == "charge.refunded":
        return [EntryTarget(kind, refund["id"]) for refund in charge_refunds(client, obj["id"])]
    if event_type == "credit_note.created":
        invoice = obj.get("invoice")
        return [EntryTarget(kind, obj["id"], invoice.get("id") if isinstance(invoice, dict) else invoice)]
    return [EntryTarget(kind, obj["id"])]


def entry_run_create(merchant_id: int, stripe_account_id: int, target: EntryTarget,
                     document_type: str) -> tuple[SyncRun, bool]:
    """The target's run (made if it had none; the unique key decides between concurrent jobs), and whether
    this call made it."""
    values = {
        "merchant_id": merchant_id, "stripe_account_id": stripe_account_id, "kind": target.kind, "stripe_object_id": target.stripe_object_id,
        "stripe_invoice_id": target.stripe_invoice_id, "stripe_payment_ref": target.stripe_payment_ref,
        "document_type": document_type, "trigger": target.kind.value, "write_back_to_stripe": False,
        "status": RunStatus.QUEUED,
    }
    new_id = insert_if_absent(SyncRun, values, SYNC_RUN_KEY, where=CURRENT_RUN)
    db.session.commit()
    run = db.session.scalar(select(SyncRun).where(
        SyncRun.merchant_id == merchant_id, SyncRun.stripe_account_id == stripe_account_id, SyncRun.kind == target.kind,
        SyncRun.stripe_object_id == target.stripe_object_id, SyncRun.superseded_by.is_(None)))
    return run, new_id is not None


def entry_runs_for_event(merchant_id: int, stripe_account_id: int, event_type: str, obj: dict,
                         client: stripe.StripeClient, invoice_document_type: str | None) -> tuple[list[SyncRun], str | None]:
    """The runs the event makes (new ones only), or none and the reason. `invoice_document_type`: what the
    merchant's rule makes of invoices, which a credit note follows (a draft order's credit is a draft
    invoice)."""
    kind = ENTRY_EVENTS[event_type]
    off = entry_kind_off(journal_settings_for(merchant_id), kind)
    if off:
        return [], off
    if kind is RunKind.CREDIT_NOTE:
        document_type = credit_note_document_type(invoice_document_type or "")
    else:
        document_type = DOCUMENT_OF_KIND[kind]
    made = []
    for target in entry_targets(event_type, obj, client):
        run, created = entry_run_create(merchant_id, stripe_account_id, target, document_type)
        if created:
            made.append(run)
    if not made:
        return [], "Already entered or on its way (a run exists for it)."
    return made, None


def credit_note_document_type(invoice_document_type: str) -> str:
    """A credit note is booked when the rule books invoices, else a draft (a draft order's credit is a draft
    invoice: e-conomic's orders are never negative)."""
    return "booked_invoice" if invoice_document_type == "booked_invoice" else "draft_invoice"


def reversal_create(run: SyncRun) -> SyncRun:
    """"Make the credit note" for an invoice voided in Stripe after it was booked in e-conomic: a credit-note run
    for all of it (Stripe makes no credit note when it voids), queued at once."""
    if not (run.kind == RunKind.INVOICE and run.needs_credit_note and run.economic_booked_number):
        raise RunActionRefused("Only a booked invoice that was voided in Stripe afterwards is credited here.")
    target = EntryTarget(RunKind.CREDIT_NOTE, REVERSAL_ID_PREFIX + run.stripe_object_id, run.stripe_object_id)
    reversal, created = entry_run_create(run.merchant_id, run.stripe_account_id, target,
                                         credit_note_document_type(rule_for(run.merchant_id).document_type))
    if not created:
        raise RunActionRefused("The credit note for this invoice is made already, or on its way: see it on this page.")
    sync_run_enqueue(reversal)
    return reversal


def sync_run_waiting(run: SyncRun, reason: str) -> str:
    """Nothing is made yet: the run waits for another (`reason` says which), and is queued again when that
    one is done."""
    db.session.rollback()
    run = db.session.get(SyncRun, run.id)
    run.waiting_for = reason[:500]
    run.status = RunStatus.WAITING
    run.will_retry = False
    run.job_id = None
    db.session.commit()
    return run.status


# Built once (entry_runs_after runs one for every run the worker finishes).
_WAITING = select(SyncRun.id).where(
    SyncRun.merchant_id == bindparam("merchant_id"), SyncRun.stripe_account_id == bindparam("stripe_account_id"),
    SyncRun.status == RunStatus.WAITING, SyncRun.kind.in_(bindparam("kinds", expanding=True)))
_WAITING_OF_INVOICE = _WAITING.where(SyncRun.stripe_invoice_id == bindparam("invoice_id"))


def entry_runs_release(merchant_id: int, stripe_account_id: int, *, invoice_id: str | None = None,
                       kinds: tuple[RunKind, ...]) -> int:
    """Queue the Stripe account's runs of these kinds (of this invoice) that wait: what they waited for is
    done. Returns how many."""
    waiting = db.session.scalars(_WAITING_OF_INVOICE if invoice_id is not None else _WAITING, {
        "merchant_id": merchant_id, "stripe_account_id": stripe_account_id, "kinds": list(kinds), "invoice_id": invoice_id}).all()
    if not waiting:
        return 0
    db.session.execute(update(SyncRun).where(SyncRun.id.in_(waiting), SyncRun.status == RunStatus.WAITING)
                       .values(status=RunStatus.QUEUED, waiting_for=None, updated_at=utcnow()))
    db.session.commit()
    for run in db.session.scalars(select(SyncRun).where(SyncRun.id.in_(waiting), SyncRun.status == RunStatus.QUEUED)):
        sync_run_enqueue(run)
    return len(waiting)


def entry_runs_after(run: SyncRun) -> int:
    """What a finished run lets go on: a booked invoice its payments, refunds and credit notes; an invoice
    made as a draft its credit notes; an entered payment the payouts that wait."""
    if run.status != RunStatus.SUCCEEDED:
        return 0
    if run.kind == RunKind.INVOICE:
        kinds = (RunKind.PAYMENT, RunKind.REFUND, RunKind.CREDIT_NOTE) if run.economic_booked_number else (RunKind.CREDIT_NOTE,)
        return entry_runs_release(run.merchant_id, run.stripe_account_id, invoice_id=run.stripe_invoice_id, kinds=kinds)
    if run.kind == RunKind.PAYMENT:
        return entry_runs_release(run.merchant_id, run.stripe_account_id, kinds=(RunKind.PAYOUT,))
    if run.kind == RunKind.CREDIT_NOTE and run.stripe_object_id.startswith(REVERSAL_ID_PREFIX):
        db.session.execute(update(SyncRun).where(  # the voided invoice is credited: no longer "credit note due"
            SyncRun.merchant_id == run.merchant_id, SyncRun.stripe_account_id == run.stripe_account_id,
            SyncRun.kind == RunKind.INVOICE, SyncRun.stripe_object_id == run.stripe_invoice_id).values(needs_credit_note=False))
        db.session.commit()
    return 0


def sync_run_entered(run: SyncRun, outcome: EntryOutcome) -> str:
    """A journal entry made: its voucher, what was entered and (for a payout) the reconciliation and its
    transactions, for the Payouts view."""
    run.economic_journal_number = outcome.journal_number
    run.economic_accounting_year = outcome.accounting_year
    run.economic_voucher_number = outcome.voucher_number
    run.reconciliation = "\n".join([f"Entered as {outcome.summary()}.", *outcome.notes])
    run.reconciled = True
    run.totals = json.dumps({"totals": outcome.totals, "entries": outcome.entries,
                             "transactions": outcome.transactions}, default=str)
    run.waiting_for = run.held_reason = run.held_setting = None
    return sync_run_finished(run, RunStatus.SUCCEEDED)
