"""Sync runs: created from matching Stripe events, queued on RQ, executed by the worker.

Service functions in the HackSoft style (`sync_run_create`, `sync_run_enqueue`, `sync_run_execute`);
views and the worker only call these.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from rq.job import Job
from rq.exceptions import DuplicateJobError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import AuditRow, Connection, CustomerLink, ProductLink, RunStatus, SyncRule, SyncRun, insert_if_absent, utcnow
from .queue import redis_connection, sync_queue
from .settings.sync_config import mappings_for, sync_settings_for, vat_mappings_for
from .sync.economic import EconomicClient
from .sync.engine import EngineSettings, RunState, SyncEngine
from .sync.errors import SettingMissing, SyncFailure, SyncHeld, SyncSkipped
from .sync.stripe_source import stripe_client

if TYPE_CHECKING:
    from .webhooks.rules import RuleChoices

log = logging.getLogger(__name__)

JOB_TIMEOUT_SECONDS = 600


def _lease_expired_before() -> datetime:
    """Runs still "running" but untouched since this moment lost their worker."""
    return utcnow() - timedelta(seconds=current_app.config["RUN_LEASE_SECONDS"])


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


def job_id_for(run_id: int, attempt: int) -> str:
    return f"{current_app.config['REDIS_KEY_PREFIX']}-sync-run-{run_id}-attempt-{attempt}"


def job_id_for_new_run() -> str:
    """The first job's id for a run not inserted yet, so it is stored by the same INSERT."""
    return f"{current_app.config['REDIS_KEY_PREFIX']}-sync-new-run-{uuid.uuid4().hex}"


def _job_options(job_id: str) -> dict[str, Any]:
    return dict(job_id=job_id, retry=Retry(max=3), job_timeout=JOB_TIMEOUT_SECONDS, failure_ttl=7 * 86400)


def sync_run_enqueue(run: SyncRun, delay_seconds: float = 0) -> bool:
    """Queue the run's next attempt (call only after the run is committed). False when Redis is down:
    the run stays pending without a job, and the requeue pass picks it up later."""
    return sync_run_enqueue_id(run.id, run.attempts + 1, delay_seconds)


def sync_run_enqueue_id(run_id: int, attempt: int, delay_seconds: float = 0) -> bool:
    """`sync_run_enqueue` by id. The job id names the attempt, so queuing it twice queues it once."""
    job_id = job_id_for(run_id, attempt)
    try:
        queue = sync_queue()
        if delay_seconds > 0:
            queue.enqueue_in(timedelta(seconds=delay_seconds), "portal.runs.sync_run_job", run_id, **_job_options(job_id))
        else:
            queue.enqueue("portal.runs.sync_run_job", run_id, unique=True, **_job_options(job_id))
    except DuplicateJobError:
        pass  # that attempt is queued already
    except (RedisError, OSError) as error:
        log.warning("could not queue sync run %s (it stays pending): %s", run_id, error)
        return False
    db.session.execute(update(SyncRun.__table__).where(SyncRun.id == run_id).values(job_id=job_id))
    db.session.commit()
    return True


def sync_run_enqueue_new(run_id: int, job_id: str) -> bool:
    """Queue the first attempt of a run that was just committed with `job_id` (webhook intake).

    Only the delivery that inserted the run gets here, so no uniqueness check is needed and the job
    reaches Redis in one round trip. False when Redis is down: the job id is cleared so the requeue
    pass queues the run later.
    """
    try:
        queue = sync_queue()
        with queue.connection.pipeline() as pipe:
            queue.enqueue("portal.runs.sync_run_job", run_id, pipeline=pipe, **_job_options(job_id))
            pipe.execute()
    except (RedisError, OSError) as error:
        log.warning("could not queue sync run %s (it stays pending): %s", run_id, error)
        db.session.execute(update(SyncRun.__table__).where(SyncRun.id == run_id, SyncRun.job_id == job_id).values(job_id=None))
        db.session.commit()
        return False
    return True


def sync_run_requeue_pending() -> int:
    """Queue every run that should have a job and has none (Redis was down), or whose worker died."""
    stale = _lease_expired_before()
    a_while_ago = utcnow() - timedelta(minutes=2)
    runs = db.session.scalars(
        select(SyncRun).where(
            or_(
                (SyncRun.status.in_(("queued", "retrying"))) & SyncRun.job_id.is_(None),
                (SyncRun.status == "queued") & (SyncRun.updated_at < a_while_ago),
                (SyncRun.status == "running") & (SyncRun.updated_at < stale),
                (SyncRun.status == "retrying") & (SyncRun.next_retry_at < utcnow() - timedelta(minutes=10)),
            )
        )
    ).all()
    queued = 0
    redis = redis_connection()
    for run in runs:
        # A queued run whose job Redis still holds is just waiting its turn.
        if run.status == "queued" and run.job_id and Job.exists(run.job_id, connection=redis):
            continue
        if sync_run_enqueue(run):
            queued += 1
    return queued


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter (between half and all of the step), never sooner than Retry-After."""
    config = current_app.config
    ceiling = min(config["RETRY_MAX_SECONDS"], config["RETRY_BASE_SECONDS"] * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0)


class DatabaseRecorder:
    """Persists the engine's progress and audit rows at once, so a killed worker loses nothing."""

    def __init__(self, run: SyncRun) -> None:
        self.run = run

    def progress(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self.run, name, value)
        db.session.commit()

    def step(self, step: str, outcome: str, *, numbers=None, summary=None, error=None, duration_ms: int = 0) -> None:
        db.session.add(AuditRow(
            run_id=self.run.id, merchant_id=self.run.merchant_id, attempt=self.run.attempts, step=step,
            outcome=outcome, numbers=numbers, summary=json.dumps(summary, ensure_ascii=False, default=str) if summary else None,
            error=error, duration_ms=duration_ms,
        ))
        db.session.commit()


class DatabaseLinks:
    def __init__(self, merchant_id: int) -> None:
        self.merchant_id = merchant_id

    def customer_number(self, stripe_customer_id: str) -> int | None:
        return db.session.scalar(select(CustomerLink.economic_customer_number).where(
            CustomerLink.merchant_id == self.merchant_id, CustomerLink.stripe_customer_id == stripe_customer_id))

    def remember_customer(self, stripe_customer_id: str, number: int) -> None:
        self._remember(CustomerLink, "stripe_customer_id", stripe_customer_id, "economic_customer_number", number)

    def product_number(self, stripe_product_id: str) -> str | None:
        return db.session.scalar(select(ProductLink.economic_product_number).where(
            ProductLink.merchant_id == self.merchant_id, ProductLink.stripe_product_id == stripe_product_id))

    def remember_product(self, stripe_product_id: str, number: str) -> None:
        self._remember(ProductLink, "stripe_product_id", stripe_product_id, "economic_product_number", number)

    def _remember(self, model, key_name: str, key: str, value_name: str, value) -> None:
        row = db.session.scalar(select(model).where(model.merchant_id == self.merchant_id, getattr(model, key_name) == key))
        if row is None:
            try:
                with db.session.begin_nested():
                    db.session.add(model(merchant_id=self.merchant_id, **{key_name: key, value_name: value}))
            except IntegrityError:
                return
        else:
            setattr(row, value_name, value)
        db.session.commit()


def engine_settings_for(run: SyncRun) -> EngineSettings:
    stored = sync_settings_for(run.merchant_id)
    values = {name: getattr(stored, name) for name in EngineSettings.__dataclass_fields__ if hasattr(stored, name)}
    return EngineSettings(
        **values,
        document_type=run.document_type,
        write_back_to_stripe=run.write_back_to_stripe,
        mappings=mappings_for(run.merchant_id),
        vat_mapping=vat_mappings_for(run.merchant_id),
    )


def _engine_for(run: SyncRun) -> SyncEngine:
    config = current_app.config
    connection = db.session.scalar(select(Connection).where(Connection.merchant_id == run.merchant_id))
    if connection is None or not connection.stripe_secret_key:
        raise SyncFailure("No Stripe secret key is saved (Connections).")
    if not (connection.economic_app_secret_token and connection.economic_agreement_grant_token):
        raise SyncFailure("The e-conomic tokens are not saved (Connections).")
    return SyncEngine(
        stripe_client(connection.stripe_secret_key, config["STRIPE_API_BASE"], max_network_retries=0),
        EconomicClient(connection.economic_app_secret_token, connection.economic_agreement_grant_token,
                       base_url=config["ECONOMIC_API_URL"], timeout=(5.0, config["HTTP_TIMEOUT_SECONDS"])),
        engine_settings_for(run),
        DatabaseRecorder(run),
        DatabaseLinks(run.merchant_id),
    )


def sync_run_execute(run_id: int, job_id: str | None = None) -> str:
    """One attempt of one run. Returns the run's status afterwards.

    A run is claimed in one UPDATE: only when it is waiting, or "running" but left by a worker that
    died (its lease ran out, or RQ retries the very job that was running it).
    """
    stale = _lease_expired_before()
    abandoned = (SyncRun.status == "running") & (SyncRun.updated_at < stale)
    if job_id:
        abandoned = abandoned | ((SyncRun.status == "running") & (SyncRun.job_id == job_id))
    claimed = db.session.execute(
        update(SyncRun)
        .where(SyncRun.id == run_id, or_(SyncRun.status.in_(("queued", "retrying")), abandoned))
        .values(status="running", attempts=SyncRun.attempts + 1, started_at=utcnow(), updated_at=utcnow(), next_retry_at=None)
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
        replaced_numbers=frozenset(_replaced_numbers(run)), discard_draft_number=run.discard_draft_number,
        override_reconciliation=run.override_reconciliation,
    )
    try:
        outcome = _engine_for(run).run(state)
    except SyncFailure as failure:
        return _failed(run, failure)
    except SyncHeld as held:
        return _held(run, held)
    except SyncSkipped as skipped:
        return _finished(run, RunStatus.SKIPPED, last_error=skipped.reason)
    except Exception as error:  # a bug or an unforeseen answer: retried, and shown as it is
        log.exception("sync run %s crashed", run_id)
        return _failed(run, SyncFailure(f"Unexpected error: {error.__class__.__name__}: {error}", transient=True))
    run.reconciled = outcome.reconciled
    run.reconciliation = outcome.reconciliation + ("".join(f"\n{note}" for note in outcome.notes))
    run.totals = json.dumps(outcome.totals) if outcome.totals else None
    run.held_reason = run.held_setting = None
    run.needs_credit_note = run.needs_credit_note or outcome.needs_credit_note
    return _finished(run, RunStatus.SUCCEEDED)


def _replaced_numbers(run: SyncRun) -> list[int]:
    return [int(part.rsplit(" ", 1)[-1]) for part in (run.replaced_documents or "").split(",") if part.strip()]


def _finished(run: SyncRun, status: RunStatus, last_error: str | None = None) -> str:
    run.status = status
    run.last_error = last_error
    run.will_retry = False
    run.override_reconciliation = False
    run.finished_at = utcnow()
    db.session.commit()
    return run.status


def _held(run: SyncRun, held: SyncHeld) -> str:
    """The run stops for a person: the draft (if any) stays in e-conomic, the reason and figures are kept."""
    db.session.rollback()
    run = db.session.get(SyncRun, run.id)
    run.held_reason = held.reason
    run.held_setting = held.setting
    run.totals = json.dumps(held.totals) if held.totals else None
    run.reconciled = False if held.totals else None
    run.reconciliation = held.summary
    return _finished(run, RunStatus.HELD)


def _failed(run: SyncRun, failure: SyncFailure) -> str:
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


def sync_run_job(run_id: int) -> str:
    """The RQ job: a plain function taking an id. Runs inside the worker's app context."""
    from rq import get_current_job

    job = get_current_job()
    return sync_run_execute(run_id, job.id if job else None)


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
        _finished(run, RunStatus.SUCCEEDED)
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
