"""Sync run services: create a run, record how an attempt ended (succeeded, held, failed, skipped, retry),
and the manual actions (Sync again, Book anyway, Sync this invoice now). HackSoft style: views and jobs call
these; nothing here talks to Stripe or e-conomic.
"""

from __future__ import annotations

import enum
import json
import random
from datetime import timedelta

from flask import current_app
from sqlalchemy import Select, select, update

from ..extensions import db
from ..merchant_config import rule_for
from ..models import RunKind, RunStatus, SyncRule, SyncRun, WebhookEvent, insert_if_absent, utcnow
from ..sync.engine import Outcome
from ..sync.errors import SettingMissing, SyncFailure, SyncHeld
from ..sync.stripe_source import event_object, invoice_facts_of
from .queueing import job_discard, sync_run_enqueue
from .rules import RuleChoices, decide


# A run's unique key: one run per merchant, Stripe account, kind and Stripe object (runs superseded by the
# one-run rule excepted).
SYNC_RUN_KEY = ["merchant_id", "stripe_account_id", "kind", "stripe_object_id"]
CURRENT_RUN = "superseded_by IS NULL"
DOCUMENT_LABELS = {"draft_invoice": "draft invoice", "booked_invoice": "booked invoice", "draft_order": "draft order"}


def sync_run_key(merchant_id: int, stripe_account_id: int, stripe_invoice_id: str) -> tuple:
    """The WHERE clause of an invoice run's unique key (`SYNC_RUN_KEY`)."""
    return (SyncRun.merchant_id == merchant_id, SyncRun.stripe_account_id == stripe_account_id,
            SyncRun.kind == RunKind.INVOICE, SyncRun.stripe_object_id == stripe_invoice_id, SyncRun.superseded_by.is_(None))


def sync_run_values(merchant_id: int, stripe_account_id: int, stripe_invoice_id: str, rule: RuleChoices,
                    job_id: str | None = None) -> dict:
    """A new run's row for (merchant, Stripe account, invoice), queued to make the rule's document type.

    The rule's choices are copied in: saving new rules never changes a run already queued.
    """
    return {
        "merchant_id": merchant_id, "stripe_account_id": stripe_account_id, "kind": RunKind.INVOICE,
        "stripe_object_id": stripe_invoice_id,
        "stripe_invoice_id": stripe_invoice_id, "document_type": rule.document_type,
        "trigger": rule.trigger, "write_back_to_stripe": rule.write_back_to_stripe, "status": "queued",
        "job_id": job_id,
    }


def sync_run_insert(merchant_id: int, stripe_account_id: int, stripe_invoice_id: str, rule: RuleChoices,
                    job_id: str | None = None) -> int | None:
    """Insert the invoice's run: its id, or None when the invoice has one.

    The database's unique index decides, so concurrent jobs agree.
    """
    values = sync_run_values(merchant_id, stripe_account_id, stripe_invoice_id, rule, job_id)
    return insert_if_absent(SyncRun, values, SYNC_RUN_KEY, where=CURRENT_RUN)


def sync_run_describe(run: SyncRun, invoice: dict) -> None:
    """What the history shows of a run before its first fetch (number, customer, amount), from the Stripe
    invoice it was made for; the columns the fetch filled are left as they are. Not committed here."""
    facts = invoice_facts_of(invoice)
    for name, value in (("stripe_invoice_number", facts.number), ("customer_name", facts.customer_name),
                        ("customer_email", facts.customer_email), ("currency", facts.currency),
                        ("total_minor", facts.total_minor)):
        if value is not None and getattr(run, name) is None:
            setattr(run, name, value[:255] if isinstance(value, str) else value)


def sync_run_of_invoice(merchant_id: int, stripe_account_id: int, stripe_invoice_id: str) -> SyncRun | None:
    return db.session.scalar(select(SyncRun).where(*sync_run_key(merchant_id, stripe_account_id, stripe_invoice_id)))


def sync_run_create(merchant_id: int, stripe_account_id: int, stripe_invoice_id: str,
                    rule: RuleChoices) -> tuple[SyncRun, bool]:
    """The invoice's run (made under `rule` if it had none), and whether this call created it."""
    new_run_id = sync_run_insert(merchant_id, stripe_account_id, stripe_invoice_id, rule)
    return sync_run_of_invoice(merchant_id, stripe_account_id, stripe_invoice_id), new_run_id is not None


class Trigger(str, enum.Enum):
    """What a rule that fired did to the invoice's run."""

    CREATED = "created"  # the invoice had no run: one is queued
    ADVANCED = "advanced"  # its draft invoice is now to be booked
    UNCHANGED = "unchanged"  # it has the document the rule asks for, or one the rule cannot turn into it


def sync_run_trigger(merchant_id: int, stripe_account_id: int, stripe_invoice_id: str, rule: RuleChoices,
                     job_id: str | None) -> tuple[SyncRun, Trigger, str | None]:
    """The rule fired for the invoice: make its one run, or advance the run it has (a draft invoice made
    on Sent is booked on Paid when the rule now says Booked Invoice). Never a second document.
    Returns the run, what happened, and for an unchanged run why, in the merchant's words."""
    if sync_run_insert(merchant_id, stripe_account_id, stripe_invoice_id, rule, job_id) is not None:
        return sync_run_of_invoice(merchant_id, stripe_account_id, stripe_invoice_id), Trigger.CREATED, None
    run = sync_run_of_invoice(merchant_id, stripe_account_id, stripe_invoice_id)
    wanted, has = rule.document_type, run.document_type
    if (has, wanted) == ("draft_invoice", "booked_invoice"):
        advanced = db.session.execute(
            update(SyncRun).where(SyncRun.id == run.id, SyncRun.document_type == "draft_invoice",
                                  SyncRun.status == RunStatus.SUCCEEDED)
            .values(document_type="booked_invoice", trigger=rule.trigger, write_back_to_stripe=rule.write_back_to_stripe,
                    status=RunStatus.QUEUED, job_id=job_id, will_retry=False, next_retry_at=None, updated_at=utcnow())
        ).rowcount
        db.session.refresh(run)
        if advanced:
            return run, Trigger.ADVANCED, None
        return run, Trigger.UNCHANGED, (f"This invoice's draft invoice is {run.status} now; it is booked when that "
                                        "run has made it (or press Sync again on it).")
    number = f" {run.document_number}" if run.document_number else ""
    if has == wanted:
        reason = f"A sync of this invoice into a {SyncRule.DOCUMENT_TYPES[has].lower()} exists already."
    elif has == "booked_invoice":
        reason = f"This invoice is booked in e-conomic already (booked invoice{number}); nothing more is made."
    elif has == "draft_order":
        reason = (f"This invoice is in e-conomic as draft order{number}; the rule now makes invoices. An order is not "
                  "turned into an invoice automatically: convert it in e-conomic.")
    else:
        reason = (f"This invoice is in e-conomic as {DOCUMENT_LABELS[has]}{number} already; no "
                  f"{DOCUMENT_LABELS[wanted]} is made beside it.")
    return run, Trigger.UNCHANGED, reason


def sync_run_from_event(event: WebhookEvent, invoice: dict, job_id: str | None) -> SyncRun | None:
    """Decide a stored event on the invoice as it is now, under the merchant's rule as it is now: the run
    to execute (created or advanced), or None, with the event's outcome and reason recorded either way."""
    rule = rule_for(event.merchant_id)
    decision = decide(event.type, invoice, rule)
    if not decision.sync:
        reason = decision.reason
        if event.type == "invoice.voided" and _flag_credit_note_due(event.merchant_id, event.stripe_account_id, event.stripe_invoice_id):
            reason = "The invoice was voided after its document was booked in e-conomic: a credit note is due."
        _event_decided(event, "ignored", reason)
        return None
    run, what, reason = sync_run_trigger(event.merchant_id, event.stripe_account_id, event.stripe_invoice_id, rule, job_id)
    if what is Trigger.UNCHANGED:
        _event_decided(event, "duplicate", reason, run.id)
        return None
    sync_run_describe(run, invoice)
    _event_decided(event, "queued", None, run.id)
    return run


def _events_waiting() -> Select:
    """The ids of stored events no job was queued for yet (ix_webhook_events_undispatched holds just these)."""
    table = WebhookEvent.__table__
    return select(table.c.id).where(table.c.outcome == "received", table.c.dispatched_at.is_(None))


def events_waiting() -> bool:
    """Whether any stored event waits for its job to be queued (a read through a small partial index: the
    dispatch pass asks this several times a second, and claims only when there is something to claim)."""
    return db.session.execute(_events_waiting().limit(1)).first() is not None


def events_dispatch_claim(limit: int) -> list[int]:
    """Claim up to `limit` stored events that no job was queued for yet, oldest first, whichever merchant's,
    and commit the claim: two dispatch passes running at once never claim the same event."""
    table = WebhookEvent.__table__
    waiting = _events_waiting().order_by(table.c.id).limit(limit)
    claimed = db.session.execute(
        update(table).where(table.c.id.in_(waiting), table.c.dispatched_at.is_(None))
        .values(dispatched_at=utcnow()).returning(table.c.id)
    ).scalars().all()
    db.session.commit()
    return sorted(claimed)


def events_dispatch_unclaim(event_ids: list[int]) -> None:
    """Give claimed events back (their jobs could not be queued): the next dispatch pass claims them again."""
    table = WebhookEvent.__table__
    db.session.execute(update(table).where(table.c.id.in_(event_ids), table.c.outcome == "received")
                       .values(dispatched_at=None))
    db.session.commit()


def sync_event_ignore(event: WebhookEvent, reason: str) -> None:
    _event_decided(event, "ignored", reason)


def sync_event_queued(event: WebhookEvent, run_id: int) -> None:
    _event_decided(event, "queued", None, run_id)


def _event_decided(event: WebhookEvent, outcome: str, reason: str | None, run_id: int | None = None) -> None:
    event.outcome, event.ignored_reason, event.sync_run_id = outcome, (reason or None) and reason[:500], run_id
    db.session.commit()


def _flag_credit_note_due(merchant_id: int, stripe_account_id: int, invoice_id: str) -> bool:
    """Mark the invoice's booked run: a booked invoice can only be undone by a credit note."""
    flagged = db.session.execute(
        update(SyncRun).where(SyncRun.merchant_id == merchant_id, SyncRun.stripe_account_id == stripe_account_id,
                              SyncRun.stripe_invoice_id == invoice_id,
                              SyncRun.economic_booked_number.is_not(None)).values(needs_credit_note=True)
    ).rowcount
    return bool(flagged)


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (between half and all of the step), never sooner than Retry-After."""
    config = current_app.config
    ceiling = min(config["RETRY_MAX_SECONDS"], config["RETRY_BASE_SECONDS"] * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0)


def replaced_numbers(run: SyncRun) -> list[int]:
    return [int(part.rsplit(" ", 1)[-1]) for part in (run.replaced_documents or "").split(",") if part.strip()]


def sync_run_finished(run: SyncRun, status: RunStatus, last_error: str | None = None) -> str:
    run.status = status
    run.last_error = last_error
    run.will_retry = False
    run.override_reconciliation = False
    run.finished_at = utcnow()
    db.session.commit()
    return run.status


def sync_run_succeeded(run: SyncRun, outcome: Outcome) -> str:
    run.reconciled = outcome.reconciled
    run.reconciliation = outcome.reconciliation + "".join(f"\n{note}" for note in outcome.notes)
    run.totals = json.dumps(outcome.totals) if outcome.totals else None
    run.held_reason = run.held_setting = None
    run.needs_credit_note = run.needs_credit_note or outcome.needs_credit_note
    return sync_run_finished(run, RunStatus.SUCCEEDED)


def sync_run_held(run: SyncRun, held: SyncHeld) -> str:
    """The run stops for a person: the draft (if any) stays in e-conomic, the reason and figures are kept."""
    db.session.rollback()
    run = db.session.get(SyncRun, run.id)
    run.held_reason = held.reason
    run.held_setting = held.setting
    run.totals = json.dumps(held.totals) if held.totals else None
    run.reconciled = False if held.totals else None
    run.reconciliation = held.summary
    return sync_run_finished(run, RunStatus.HELD)


def sync_run_failed(run: SyncRun, failure: SyncFailure) -> str:
    db.session.rollback()
    run = db.session.get(SyncRun, run.id)
    run.last_error = failure.message
    if isinstance(failure, SettingMissing):
        run.last_error = f"{failure.message} [setting:{failure.anchor}]"
    run.finished_at = utcnow()
    if failure.transient and run.attempts < current_app.config["RETRY_MAX_ATTEMPTS"]:
        delay = retry_delay(run.attempts, failure.retry_after)
        run.status = "retrying"
        run.will_retry = True
        run.next_retry_at = utcnow() + timedelta(seconds=delay)
        run.job_id = None
        db.session.commit()
        sync_run_enqueue(run, delay_seconds=delay)
    else:
        run.status = "failed"
        run.will_retry = False
        db.session.commit()
    return run.status


class RunActionRefused(ValueError):
    """A manual action that would break a promise (such as a second document), with the reason."""


def _new_generation(run: SyncRun) -> None:
    """Forget the run's document so the engine makes a new one, under keys of a new generation; the old
    one is remembered so that no look-up mistakes it for this generation's."""
    labels = {"economic_draft_number": "draft", "economic_booked_number": "booked", "economic_order_number": "order"}
    replaced = [f"{label} {getattr(run, name)}" for name, label in labels.items() if getattr(run, name)]
    if replaced:
        run.replaced_documents = ", ".join(filter(None, [run.replaced_documents, *replaced]))[-500:]
    run.economic_draft_number = run.economic_booked_number = run.economic_order_number = None
    run.document_create_started = False
    run.generation += 1


def sync_run_again(run: SyncRun, force_new_document: bool = False) -> None:
    """"Sync again": run it now. A queued or retrying run is queued at once (its scheduled retry dropped); a
    run that succeeded makes a new document only when asked to; a held run's draft is deleted and made anew
    under the current settings. Only a run being synced this moment is refused."""
    if run.status == RunStatus.RUNNING:
        raise RunActionRefused("This invoice is being synced right now.")
    if run.status == RunStatus.SUCCEEDED and run.economic_voucher_number:
        raise RunActionRefused(
            f"This is entered in e-conomic's journal {run.economic_journal_number} as voucher {run.economic_voucher_number} "
            "already; a second entry would count the money twice. Delete that entry in e-conomic's journal first if it "
            "is wrong, then enter it again there.")
    if run.status == RunStatus.SUCCEEDED and not force_new_document:
        raise RunActionRefused(
            f"This invoice is already in e-conomic as {run.document_number}. Syncing again would make a second "
            "document: tick “Create a new document” to do that on purpose."
        )
    if run.status == RunStatus.SUCCEEDED:
        _new_generation(run)
    elif run.status == RunStatus.HELD and not run.economic_booked_number:
        held_draft = run.economic_order_number if run.document_type == "draft_order" else run.economic_draft_number
        _new_generation(run)
        run.discard_draft_number = held_draft
    run.held_reason = run.held_setting = None
    run.override_reconciliation = False
    run.status = RunStatus.QUEUED
    run.will_retry = False
    run.next_retry_at = None
    waiting_job, run.job_id = run.job_id, None
    db.session.commit()
    job_discard(waiting_job)
    sync_run_enqueue(run)


def sync_run_book_anyway(run: SyncRun) -> None:
    """"Book anyway" on a held run, after a person reviewed its draft: a Booked Invoice rule books the draft
    as it is; a Draft Invoice or Draft Order rule keeps the draft as it is (the run succeeds, unreconciled)."""
    if run.status != RunStatus.HELD:
        raise RunActionRefused("Only a run held for review can be booked anyway.")
    if run.document_number is None and not (run.document_type == "booked_invoice" and run.economic_draft_number):
        raise RunActionRefused("Nothing was made in e-conomic for this run, so there is nothing to book: fix what the "
                               "reason names, then press Sync again.")
    if run.document_type != "booked_invoice":
        run.reconciliation = (run.reconciliation or "") + "\nKept as reviewed although the totals differ."
        sync_run_finished(run, RunStatus.SUCCEEDED)
        return
    run.override_reconciliation = True
    run.status = RunStatus.QUEUED
    run.will_retry = False
    run.next_retry_at = None
    run.job_id = None
    db.session.commit()
    sync_run_enqueue(run)


def event_sync_now(event: WebhookEvent, rule: SyncRule) -> SyncRun:
    """"Sync this invoice now" for an ignored event: a run under the current rule, queued at once."""
    if not event.stripe_invoice_id:
        raise RunActionRefused("This event names no invoice.")
    run, created = sync_run_create(event.merchant_id, event.stripe_account_id, event.stripe_invoice_id, rule)
    if not created:
        raise RunActionRefused(f"This invoice has a {SyncRule.DOCUMENT_TYPES[run.document_type].lower()} sync already; use Sync again on it.")
    sync_run_describe(run, event_object(event.payload))  # pruned: nothing, and the run's first fetch fills them
    event.outcome = "queued"
    event.sync_run_id = run.id
    db.session.commit()
    sync_run_enqueue(run)
    return run
