"""Recovery: the database is the truth, Redis only the messenger. Runs and events whose job Redis lost,
failed for good, or whose worker died, are queued again."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db
from ..models import Backfill, RunStatus, SyncRun, WebhookEvent, utcnow
from .queueing import backfill_enqueue, backfill_job_id, event_enqueue, event_job_id, job_alive, job_discard, sync_run_enqueue


def lease_expired_before() -> datetime:
    """Runs still "running" whose lease was last renewed before this moment lost their worker."""
    return utcnow() - timedelta(seconds=current_app.config["RUN_LEASE_SECONDS"])


def lease_expired(before: datetime | ColumnElement[datetime] | None = None) -> ColumnElement[bool]:
    """A running run whose worker stopped renewing its lease (killed, OOM, a deploy): last renewed `before`
    (a moment, or a bound parameter; by default `lease_expired_before()`)."""
    return (SyncRun.status == RunStatus.RUNNING) & (
        func.coalesce(SyncRun.heartbeat_at, SyncRun.started_at, SyncRun.updated_at)
        < (lease_expired_before() if before is None else before))


class Heartbeat:
    """Renews a lease (a run's while it runs, a backfill's while it lists) every RUN_HEARTBEAT_SECONDS from a
    thread of its own, so live work is never taken back however long its calls take."""

    def __init__(self, model: type[SyncRun] | type[Backfill], row_id: int, while_status: str) -> None:
        self.table = model.__table__
        self.row_id = row_id
        self.while_status = while_status
        self.every = current_app.config["RUN_HEARTBEAT_SECONDS"]
        self.engine = db.engine
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.table.name}-{row_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        table = self.table
        while not self.stop.wait(self.every):
            try:
                with self.engine.begin() as connection:
                    connection.execute(update(table).where(table.c.id == self.row_id, table.c.status == self.while_status)
                                       .values(heartbeat_at=utcnow()))
            except SQLAlchemyError as error:  # the database away for a moment: the next beat tries again
                log.warning("could not renew the lease of %s %s: %s", table.name, self.row_id, error)


WAITING = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING, RunStatus.WAITING)
WAITING_RECHECK_SECONDS = 600
log = logging.getLogger(__name__)
BATCH = 500  # a pass handles at most this many runs and as many events; the next pass takes the rest


def sync_run_requeue_pending() -> int:
    """Queue again, from the database's truth, every run and every stored event whose job Redis lost
    (restarted empty, down when it was queued), failed for good, or left stale (its worker died). A job
    still waiting or running in Redis is left alone. Returns how many were queued."""
    now = utcnow()
    a_while_ago = now - timedelta(seconds=current_app.config["REQUEUE_AFTER_SECONDS"])
    runs = db.session.scalars(
        select(SyncRun).where(
            SyncRun.status.in_(WAITING),
            or_(
                SyncRun.job_id.is_(None) & (SyncRun.status != RunStatus.RUNNING),
                (SyncRun.status == RunStatus.QUEUED) & (SyncRun.updated_at < a_while_ago),
                lease_expired(),
                # A retry overdue: its scheduled job was not moved to the queue (the scheduler died with its
                # worker, and another worker's scheduler has not taken over yet).
                (SyncRun.status == RunStatus.RETRYING) & (SyncRun.next_retry_at < a_while_ago),
                # A journal entry waiting for another run is looked at again now and then, in case the news
                # that the other finished was missed (a booking made in e-conomic by hand, say).
                (SyncRun.status == RunStatus.WAITING) & (SyncRun.updated_at < now - timedelta(seconds=WAITING_RECHECK_SECONDS)),
            ),
        ).order_by(SyncRun.updated_at).limit(BATCH)
    ).all()
    queued = 0
    for run in runs:
        # Waiting its turn (or its scheduled retry) in Redis. A job "started" whose run is still queued
        # this long after died before claiming it: a live job claims its run at once.
        overdue = run.status == RunStatus.RETRYING
        if run.status != RunStatus.RUNNING and job_alive(run.job_id, started_counts=False, scheduled_counts=not overdue):
            continue
        job_discard(run.job_id)
        if run.status in (RunStatus.RUNNING, RunStatus.WAITING):
            run.status = RunStatus.QUEUED  # its worker died (or it waited long enough): queued from now on
            db.session.commit()
        if sync_run_enqueue(run):
            queued += 1
    events = db.session.scalars(
        select(WebhookEvent).where(WebhookEvent.outcome == "received", WebhookEvent.received_at < a_while_ago)
        .order_by(WebhookEvent.received_at).limit(BATCH)
    ).all()
    for event in events:
        job_id = event_job_id(event.id)
        if job_alive(job_id, started_counts=False):
            continue
        job_discard(job_id)
        event.dispatched_at = now
        db.session.commit()
        if event_enqueue(event.id):
            queued += 1
    for backfill in db.session.scalars(select(Backfill).where(
            Backfill.status == "listing", func.coalesce(Backfill.heartbeat_at, Backfill.created_at) < lease_expired_before())):
        job_discard(backfill_job_id(backfill.id))
        if backfill_enqueue(backfill.id):  # its job died while listing: list again (what it made is kept)
            queued += 1
    event_payloads_prune()
    return queued


def event_payloads_prune(limit: int = BATCH) -> int:
    """Empty the bodies of decided events older than EVENT_PAYLOAD_RETENTION_DAYS, oldest first (at most
    `limit` a call); the event's row, type, invoice and outcome stay for the history. Returns how many."""
    cutoff = utcnow() - timedelta(days=current_app.config["EVENT_PAYLOAD_RETENTION_DAYS"])
    table = WebhookEvent.__table__
    due = (select(table.c.id).where(table.c.payload != "", table.c.received_at < cutoff, table.c.outcome != "received")
           .order_by(table.c.received_at).limit(limit))
    pruned = db.session.execute(update(table).where(table.c.id.in_(due)).values(payload="")).rowcount
    db.session.commit()
    return pruned
