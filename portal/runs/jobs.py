"""The functions RQ runs. Plain functions taking ids; each runs inside the worker's app context."""

from __future__ import annotations

import logging

import stripe
from flask import current_app
from rq import get_current_job
from sqlalchemy import or_, select, update

from ..extensions import db
from ..merchant_config import engine_settings_for
from ..models import Connection, RunStatus, SyncRun, WebhookEvent, utcnow
from ..sync.economic import EconomicClient
from ..sync.engine import RunState, SyncEngine, stripe_failure
from ..sync.errors import SyncFailure, SyncHeld, SyncSkipped
from ..sync.stripe_source import fetch_invoice, stripe_client
from .queueing import events_enqueue, events_signal_clear
from .recording import DatabaseLinks, DatabaseRecorder
from .recovery import Heartbeat, lease_expired
from .rules import could_trigger
from .services import (
    events_dispatch_claim,
    replaced_numbers,
    sync_event_ignore,
    sync_run_failed,
    sync_run_finished,
    sync_run_from_event,
    sync_run_held,
    sync_run_succeeded,
)

log = logging.getLogger(__name__)


def _engine_for(run: SyncRun) -> SyncEngine:
    config = current_app.config
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == run.merchant_id))
    if connection is None or not connection.stripe_secret_key:
        raise SyncFailure("No Stripe secret key is saved (Connections).")
    if not (connection.economic_app_secret_token and connection.economic_agreement_grant_token):
        raise SyncFailure("The e-conomic tokens are not saved (Connections).")
    return SyncEngine(
        stripe_client(connection.stripe_secret_key, config["STRIPE_API_BASE"], max_network_retries=0,
                      timeout=(5.0, config["HTTP_TIMEOUT_SECONDS"])),
        EconomicClient(connection.economic_app_secret_token, connection.economic_agreement_grant_token,
                       base_url=config["ECONOMIC_API_URL"], timeout=(5.0, config["HTTP_TIMEOUT_SECONDS"])),
        engine_settings_for(run.merchant_id, run.document_type, run.write_back_to_stripe),
        DatabaseRecorder(run),
        DatabaseLinks(run.merchant_id),
    )


def sync_run_execute(run_id: int, job_id: str | None = None, invoice: dict | None = None) -> str:
    """One attempt of one run. Returns the run's status afterwards. `invoice`: the Stripe invoice as the
    caller fetched it a moment ago (the event job), so the engine need not fetch it again.

    A run is claimed in one UPDATE: only when it is waiting, or "running" but left by a worker that
    died (its lease was not renewed in time, or RQ retries the very job that was running it). While the
    attempt lasts, a heartbeat renews the lease.
    """
    abandoned = lease_expired()
    if job_id:
        abandoned = abandoned | ((SyncRun.status == RunStatus.RUNNING) & (SyncRun.job_id == job_id))
    claimed = db.session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, or_(SyncRun.status.in_((RunStatus.QUEUED, RunStatus.RETRYING)), abandoned))
        .values(status=RunStatus.RUNNING, attempts=SyncRun.attempts + 1, started_at=utcnow(), heartbeat_at=utcnow(),
                updated_at=utcnow(), next_retry_at=None,
                **({"job_id": job_id} if job_id else {}))
    ).rowcount
    db.session.commit()
    run = db.session.get(SyncRun, run_id)
    if not claimed or run is None:
        return run.status if run else "missing"
    state = RunState(
        run_id=run.id, stripe_invoice_id=run.stripe_invoice_id, attempt=run.attempts,
        economic_customer_number=run.economic_customer_number, economic_draft_number=run.economic_draft_number,
        economic_booked_number=run.economic_booked_number, economic_order_number=run.economic_order_number,
        document_create_started=run.document_create_started, generation=run.generation,
        replaced_numbers=frozenset(replaced_numbers(run)), discard_draft_number=run.discard_draft_number,
        override_reconciliation=run.override_reconciliation,
    )
    # The engine's reports are committed one by one; reloading the run after each commit (the session's
    # default) would cost a query each and tell us nothing: this job is the run's only writer.
    session = db.session()
    session.expire_on_commit = False
    try:
        return _attempt(run, state, invoice)
    finally:
        session.expire_on_commit = True
        session.expire_all()  # what callers read next comes from the database again


def _attempt(run: SyncRun, state: RunState, invoice: dict | None) -> str:
    try:
        with Heartbeat(SyncRun, run.id, RunStatus.RUNNING):
            outcome = _engine_for(run).run(state, invoice)
    except SyncFailure as failure:
        return sync_run_failed(run, failure)
    except SyncHeld as held:
        return sync_run_held(run, held)
    except SyncSkipped as skipped:
        return sync_run_finished(run, RunStatus.SKIPPED, last_error=skipped.reason)
    except Exception as error:  # a bug or an unforeseen answer: retried, and shown as it is
        log.exception("sync run %s crashed", run.id)
        return sync_run_failed(run, SyncFailure(f"Unexpected error: {error.__class__.__name__}: {error}", transient=True))
    return sync_run_succeeded(run, outcome)


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
    if run is None:
        return event.outcome
    return sync_run_execute(run.id, job_id, invoice)


DISPATCH_BATCH = 500


def events_dispatch_job(merchant_id: int) -> int:
    """The RQ job a delivery wakes: queue a job for each of the merchant's stored events still waiting, a
    batch per round trip. Returns how many were queued.

    The wake-up flag is cleared before the first claim, so an event stored while this runs either is
    claimed here or wakes the next dispatcher. Events claimed but not queued (Redis away) are queued by
    the requeue pass.
    """
    events_signal_clear(merchant_id)
    queued = 0
    while True:
        event_ids = events_dispatch_claim(merchant_id, DISPATCH_BATCH)
        if event_ids and events_enqueue(event_ids):
            queued += len(event_ids)
        if len(event_ids) < DISPATCH_BATCH:
            return queued


def _invoice_now(event: WebhookEvent) -> dict:
    """The event's invoice as Stripe has it now, every line read."""
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == event.merchant_id))
    if connection is None or not connection.stripe_secret_key:
        raise SyncFailure("No Stripe secret key is saved (Connections), so the invoice could not be read.")
    client = stripe_client(connection.stripe_secret_key, current_app.config["STRIPE_API_BASE"], max_network_retries=1,
                           timeout=(5.0, current_app.config["HTTP_TIMEOUT_SECONDS"]))
    try:
        return fetch_invoice(client, event.stripe_invoice_id)
    except stripe.StripeError as error:
        raise stripe_failure(error) from None
