"""Sync run services: create a run, record how an attempt ended (succeeded, held, failed, skipped, retry),
and the manual actions (Sync again, Book anyway, Sync this invoice now). HackSoft style: views and jobs call
these; nothing here talks to Stripe or e-conomic.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..models import RunStatus, SyncRule, SyncRun, insert_if_absent, utcnow
from ..sync.errors import SettingMissing, SyncFailure, SyncHeld
from .queueing import sync_run_enqueue
from .rules import RuleChoices


# A run's unique key: one run per merchant, Stripe invoice and document type.
SYNC_RUN_KEY = ["merchant_id", "stripe_invoice_id", "document_type"]


def sync_run_key(merchant_id: int, stripe_invoice_id: str, document_type: str) -> tuple:
    """The WHERE clause of a run's unique key (`SYNC_RUN_KEY`)."""
    return (SyncRun.merchant_id == merchant_id, SyncRun.stripe_invoice_id == stripe_invoice_id,
            SyncRun.document_type == document_type)


def sync_run_values(merchant_id: int, stripe_invoice_id: str, rule: RuleChoices, job_id: str | None = None) -> dict:
    """A new run's row for (merchant, invoice, the rule's document type), queued.

    The rule's choices are copied in: saving new rules never changes a run already queued.
    """
    return {
        "merchant_id": merchant_id, "stripe_invoice_id": stripe_invoice_id, "document_type": rule.document_type,
        "trigger": rule.trigger, "write_back_to_stripe": rule.write_back_to_stripe, "status": "queued",
        "job_id": job_id,
    }


def sync_run_insert(merchant_id: int, stripe_invoice_id: str, rule: RuleChoices, job_id: str | None = None) -> int | None:
    """Insert the run for (merchant, invoice, the rule's document type): its id, or None when it exists.

    The database's unique constraint decides, so concurrent requests agree.
    """
    return insert_if_absent(SyncRun, sync_run_values(merchant_id, stripe_invoice_id, rule, job_id), SYNC_RUN_KEY)


def sync_run_create(merchant_id: int, stripe_invoice_id: str, rule: SyncRule) -> tuple[SyncRun, bool]:
    """The run for (merchant, invoice, the rule's document type), and whether this call created it."""
    new_run_id = sync_run_insert(merchant_id, stripe_invoice_id, rule)
    run = db.session.scalar(select(SyncRun).where(*sync_run_key(merchant_id, stripe_invoice_id, rule.document_type)))
    return run, new_run_id is not None


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
    """"Sync again": retry a run now. A run that succeeded makes a new document only when asked to; a held
    run's draft is deleted and made anew under the current settings."""
    if run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
        raise RunActionRefused("This invoice is being synced right now.")
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
    run.status = "queued"
    run.will_retry = False
    run.next_retry_at = None
    run.job_id = None
    db.session.commit()
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


def event_sync_now(event, rule: SyncRule) -> SyncRun:
    """"Sync this invoice now" for an ignored event: a run under the current rule, queued at once."""
    if not event.stripe_invoice_id:
        raise RunActionRefused("This event names no invoice.")
    run, created = sync_run_create(event.merchant_id, event.stripe_invoice_id, rule)
    if not created:
        raise RunActionRefused(f"This invoice has a {SyncRule.DOCUMENT_TYPES[run.document_type]} sync already; use Sync again on it.")
    event.outcome = "queued"
    event.sync_run_id = run.id
    db.session.commit()
    sync_run_enqueue(run)
    return run
