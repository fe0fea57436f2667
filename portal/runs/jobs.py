"""The functions RQ runs. Plain functions taking ids; each runs inside the worker's app context."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import stripe
from flask import current_app
from rq import get_current_job
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..merchant_config import engine_settings_for, journal_settings_for, rule_for, sync_settings_for
from ..models import Connection, RunKind, RunStatus, StripeAccount, SyncRun, WebhookEvent, utcnow
from ..sync.economic import EconomicClient
from ..sync.engine import Outcome, RunState, SyncEngine, stripe_failure
from ..sync.errors import SyncFailure, SyncHeld, SyncSkipped, SyncWaiting
from ..sync.ledger import EntryOutcome, EntryState, LedgerEngine
from ..sync.stripe_source import fetch_invoice, stripe_client
from .entries import ENTRY_ONLY_EVENTS, entry_runs_after, entry_runs_for_event, sync_run_entered, sync_run_waiting
from .queueing import sync_run_enqueue
from .recording import DatabaseBooks, DatabaseLinks, DatabaseRecorder
from .recovery import Heartbeat, lease_expired, lease_expired_before
from .rules import could_trigger
from .services import (
    replaced_numbers,
    sync_event_ignore,
    sync_event_queued,
    sync_run_failed,
    sync_run_finished,
    sync_run_from_event,
    sync_run_held,
    sync_run_of_invoice,
    sync_run_succeeded,
)

log = logging.getLogger(__name__)


def _checked_account(account: StripeAccount | None) -> StripeAccount:
    """The account, when it has a key to read Stripe with; else the run fails saying so."""
    if account is None or not account.secret_key:
        name = f"“{account.label}”" if account is not None else "this"
        raise SyncFailure(f"No secret key is saved for the Stripe account {name} (Connections), so Stripe could not be read.")
    return account


def _stripe_for(stripe_account_id: int, max_network_retries: int = 1, account: StripeAccount | None = None,
                before_request: Callable[[], None] | None = None) -> stripe.StripeClient:
    """A Stripe client with the key of the account an event or run belongs to."""
    config = current_app.config
    account = _checked_account(account or db.session.get(StripeAccount, stripe_account_id))
    return stripe_client(account.secret_key, config["STRIPE_API_BASE"], max_network_retries=max_network_retries,
                         timeout=(5.0, config["HTTP_TIMEOUT_SECONDS"]), before_request=before_request)


def _clients_for(run: SyncRun, what: str, recorder: DatabaseRecorder,
                 account: StripeAccount | None = None) -> tuple[stripe.StripeClient, EconomicClient]:
    """The run's Stripe account's client (`account`, when the caller has read it) and the merchant's e-conomic
    client, for a worker's calls (no retries inside: the run retries). Each saves the run's reports before
    it calls out."""
    config = current_app.config
    stripe_api = _stripe_for(run.stripe_account_id, max_network_retries=0, account=account, before_request=recorder.save)
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == run.merchant_id))
    if connection is None or not (connection.economic_app_secret_token and connection.economic_agreement_grant_token):
        raise SyncFailure(f"e-conomic is not connected (Connections), so {what} cannot be made.")
    return stripe_api, EconomicClient(connection.economic_app_secret_token, connection.economic_agreement_grant_token,
                                      base_url=config["ECONOMIC_API_URL"], timeout=(5.0, config["HTTP_TIMEOUT_SECONDS"]),
                                      before_request=recorder.save)


def _invoice_engine(run: SyncRun, recorder: DatabaseRecorder) -> SyncEngine:
    account = db.session.get(StripeAccount, run.stripe_account_id)
    stripe_api, economic = _clients_for(run, "the document", recorder, account)
    settings = engine_settings_for(run.merchant_id, run.document_type, run.write_back_to_stripe, account)
    return SyncEngine(stripe_api, economic, settings, recorder, DatabaseLinks(run.merchant_id))


def _invoice_state(run: SyncRun) -> RunState:
    return RunState(
        run_id=run.id, stripe_invoice_id=run.stripe_object_id, attempt=run.attempts,
        economic_customer_number=run.economic_customer_number, economic_draft_number=run.economic_draft_number,
        economic_booked_number=run.economic_booked_number, economic_order_number=run.economic_order_number,
        document_create_started=run.document_create_started, generation=run.generation,
        replaced_numbers=frozenset(replaced_numbers(run)), discard_draft_number=run.discard_draft_number,
        override_reconciliation=run.override_reconciliation,
    )


def _credit_note(run: SyncRun, recorder: DatabaseRecorder) -> Outcome:
    """A Stripe credit note as an e-conomic invoice with negative lines, once its invoice is in e-conomic (the
    engine reads the credit note itself: its run's Stripe object is the `cn_…`)."""
    original = (sync_run_of_invoice(run.merchant_id, run.stripe_account_id, run.stripe_invoice_id)
                if run.stripe_invoice_id else None)
    if original is None:
        raise SyncHeld(f"This credit note is for invoice {run.stripe_invoice_id}, which was never synced to e-conomic, "
                       "so there is nothing to credit there. Sync that invoice first (its page in the Sync history › "
                       "Sync this invoice now), then press Sync again here.")
    number = original.stripe_invoice_number or original.stripe_invoice_id
    if original.status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING, RunStatus.WAITING):
        raise SyncWaiting(f"Waits for invoice {number} to be made in e-conomic first.")
    if original.status != RunStatus.SUCCEEDED:
        raise SyncHeld(f"The invoice this credit note is for ({number}) is {RunStatus(original.status).label} in the Sync "
                       "history, so nothing was credited. Sort that invoice out first, then press Sync again here.")
    return _invoice_engine(run, recorder).run(_invoice_state(run), None)


def _ledger_engine(run: SyncRun, recorder: DatabaseRecorder) -> LedgerEngine:
    stripe_api, economic = _clients_for(run, "the journal entry", recorder)
    return LedgerEngine(stripe_api, economic, journal_settings_for(run.merchant_id), recorder,
                        DatabaseBooks(run.merchant_id, run.stripe_account_id),
                        timezone=sync_settings_for(run.merchant_id).time_zone)


def _entry_state(run: SyncRun) -> EntryState:
    return EntryState(
        run_id=run.id, kind=run.kind, stripe_object_id=run.stripe_object_id, stripe_invoice_id=run.stripe_invoice_id,
        attempt=run.attempts, voucher_create_started=run.document_create_started,
        journal_number=run.economic_journal_number, accounting_year=run.economic_accounting_year,
        voucher_number=run.economic_voucher_number, first_attempt_at=run.created_at,
    )


# A run's claim for an attempt (sync_run_execute), built once; a plain UPDATE … RETURNING read into the
# run's object (the ORM's own UPDATE with RETURNING cost three times as much).
_CLAIM = select(SyncRun).from_statement(
    update(SyncRun.__table__)
    .where(SyncRun.id == bindparam("run_id"), or_(
        SyncRun.status.in_((RunStatus.QUEUED, RunStatus.RETRYING)),
        lease_expired(bindparam("lease_expired_before")),
        (SyncRun.status == RunStatus.RUNNING) & (SyncRun.job_id == bindparam("job_id"))))
    .values(status=RunStatus.RUNNING, attempts=SyncRun.attempts + 1, started_at=bindparam("now"),
            heartbeat_at=bindparam("now"), updated_at=bindparam("now"), next_retry_at=None,
            job_id=func.coalesce(bindparam("job_id", type_=SyncRun.job_id.type), SyncRun.job_id))
    .returning(*SyncRun.__table__.columns)
)


def sync_run_execute(run_id: int, job_id: str | None = None, invoice: dict | None = None) -> str:
    """One attempt of one run. Returns the run's status afterwards. `invoice`: the Stripe invoice as the
    caller fetched it a moment ago (the event job), so the engine need not fetch it again.

    A run is claimed in one UPDATE, which returns it: only when it is waiting, or "running" but left by a
    worker that died (its lease was not renewed in time, or RQ retries the very job that was running it).
    While the attempt lasts, a heartbeat renews the lease.
    """
    # The attempt commits as it goes; reloading the run after each commit (the session's default) would
    # cost a query each and tell us nothing: this job is the run's only writer.
    session = db.session()
    session.expire_on_commit = False
    try:
        run = session.scalars(_CLAIM, {"run_id": run_id, "job_id": job_id, "now": utcnow(),
                                       "lease_expired_before": lease_expired_before()},
                              execution_options={"populate_existing": True}).one_or_none()
        session.commit()
        if run is None:  # not claimed: another worker has it, or it has finished
            run = session.get(SyncRun, run_id)
            return run.status if run else "missing"
        status = _attempt(run, invoice)
        entry_runs_after(run)
    finally:
        session.expire_on_commit = True
        session.expire_all()  # what callers read next comes from the database again
    return status


def _perform(run: SyncRun, invoice: dict | None, recorder: DatabaseRecorder) -> Outcome | EntryOutcome:
    """The run's work, by its kind."""
    if run.kind == RunKind.INVOICE:
        return _invoice_engine(run, recorder).run(_invoice_state(run), invoice)
    if run.kind == RunKind.CREDIT_NOTE:
        return _credit_note(run, recorder)
    ledger = _ledger_engine(run, recorder)
    enter = {RunKind.PAYMENT: ledger.payment, RunKind.REFUND: ledger.refund, RunKind.PAYOUT: ledger.payout}[RunKind(run.kind)]
    return enter(_entry_state(run))


def _attempt(run: SyncRun, invoice: dict | None) -> str:
    recorder = DatabaseRecorder(run)
    try:
        with Heartbeat(SyncRun, run.id, RunStatus.RUNNING):
            outcome = _perform(run, invoice, recorder)
    except Exception as error:
        _reports_saved(recorder)  # the step that stopped it among them
        return _stopped(run, error)
    recorder.save(commit=False)  # committed with the run's status
    if isinstance(outcome, EntryOutcome):
        return sync_run_entered(run, outcome)
    return sync_run_succeeded(run, outcome)


def _reports_saved(recorder: DatabaseRecorder) -> None:
    """What the engine reported before it stopped, saved (unless the database is away: then the attempt ends
    with the error, and RQ retries the job)."""
    try:
        recorder.save()
    except SQLAlchemyError:
        db.session.rollback()


def _stopped(run: SyncRun, error: Exception) -> str:
    """The run's status after its attempt stopped on `error`."""
    if isinstance(error, SyncFailure):
        return sync_run_failed(run, error)
    if isinstance(error, SyncHeld):
        return sync_run_held(run, error)
    if isinstance(error, SyncSkipped):
        return sync_run_finished(run, RunStatus.SKIPPED, last_error=error.reason)
    if isinstance(error, SyncWaiting):
        return sync_run_waiting(run, error.reason)
    # A bug or an unforeseen answer: retried, and shown as it is.
    log.error("sync run %s crashed", run.id, exc_info=error)
    return sync_run_failed(run, SyncFailure(f"Unexpected error: {error.__class__.__name__}: {error}", transient=True))


def sync_run_job(run_id: int) -> str:
    """The RQ job that runs a run's attempt (a retry, Sync again, the requeue pass)."""
    job = get_current_job()
    return sync_run_execute(run_id, job.id if job else None)


def event_job(event_id: int) -> str:
    """The RQ job for a stored Stripe event: fetch the invoice as it is now, decide under the merchant's rule
    as it is now, make or advance the invoice's run, and run it here and now.

    Idempotent: an event already decided is not decided again, but if this very job made its run and died
    before finishing it, RQ's retry of the job finishes the run.
    """
    job = get_current_job()
    job_id = job.id if job else None
    event = db.session.get(WebhookEvent, event_id)
    if event is None:
        return "missing"
    if event.outcome != "received":
        run = db.session.get(SyncRun, event.sync_run_id) if event.sync_run_id else None
        if run is not None and job_id and run.job_id == job_id and run.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            return sync_run_execute(run.id, job_id)
        return event.outcome
    if event.type in ENTRY_ONLY_EVENTS:
        return _entry_event(event, job_id)
    if not event.stripe_invoice_id:
        sync_event_ignore(event, "The event names no invoice.")
        return event.outcome
    if not could_trigger(event.type):
        sync_event_ignore(event, f"{event.type} is not an event the Invoice Sync Rules use.")
        return event.outcome
    try:
        invoice = _invoice_now(event)
    except SyncFailure as failure:
        if failure.transient:
            raise  # RQ retries the job; after that the requeue pass does
        sync_event_ignore(event, failure.message)
        return event.outcome
    run = sync_run_from_event(event, invoice, job_id)
    status = sync_run_execute(run.id, job_id, invoice) if run is not None else event.outcome
    if event.type == "invoice.paid":
        _entry_runs_queue(event, invoice)  # its payments, entered once the invoice is booked
    return status


def _entry_runs_queue(event: WebhookEvent, obj: dict) -> tuple[list[SyncRun], str | None]:
    """Make and queue the journal-entry runs an event asks for (none when the merchant turned that kind off)."""
    try:
        client = _stripe_for(event.stripe_account_id)
        runs, reason = entry_runs_for_event(event.merchant_id, event.stripe_account_id, event.type, obj, client,
                                            rule_for(event.merchant_id).document_type)
    except stripe.StripeError as error:
        raise stripe_failure(error) from None
    for run in runs:
        sync_run_enqueue(run)
    return runs, reason


def _entry_event(event: WebhookEvent, job_id: str | None) -> str:
    """A payment, refund, credit note or payout event: its runs are made and queued; the event points at the
    first."""
    obj = json.loads(event.payload)["data"]["object"]
    try:
        runs, reason = _entry_runs_queue(event, obj)
    except SyncFailure as failure:
        if failure.transient:
            raise
        sync_event_ignore(event, failure.message)
        return event.outcome
    if not runs:
        sync_event_ignore(event, reason or "Nothing to enter.")
        return event.outcome
    sync_event_queued(event, runs[0].id)
    return event.outcome


def _invoice_now(event: WebhookEvent) -> dict:
    """The event's invoice as Stripe has it now, every line read."""
    client = _stripe_for(event.stripe_account_id)
    try:
        return fetch_invoice(client, event.stripe_invoice_id)
    except stripe.StripeError as error:
        raise stripe_failure(error) from None
