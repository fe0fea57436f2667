"""Recovery: the database is the truth, Redis only the messenger. Runs and events whose job Redis lost,
failed for good, or whose worker died, are queued again."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import or_, select

from ..extensions import db
from ..models import RunStatus, SyncRun, WebhookEvent, utcnow
from .queueing import event_enqueue, event_job_id, job_alive, job_discard, sync_run_enqueue


def lease_expired_before() -> datetime:
    """Runs still "running" but untouched since this moment lost their worker."""
    return utcnow() - timedelta(seconds=current_app.config["RUN_LEASE_SECONDS"])


WAITING = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.RETRYING)
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
                (SyncRun.status == RunStatus.RUNNING) & (SyncRun.updated_at < lease_expired_before()),
                (SyncRun.status == RunStatus.RETRYING) & (SyncRun.next_retry_at < now - timedelta(minutes=10)),
            ),
        ).order_by(SyncRun.updated_at).limit(BATCH)
    ).all()
    queued = 0
    for run in runs:
        if run.status != RunStatus.RUNNING and job_alive(run.job_id):
            continue  # waiting its turn (or its scheduled retry) in Redis
        job_discard(run.job_id)
        if run.status == RunStatus.RUNNING:
            run.status = RunStatus.QUEUED  # its worker died: shown as waiting, not running, from now on
            db.session.commit()
        if sync_run_enqueue(run):
            queued += 1
    events = db.session.scalars(
        select(WebhookEvent).where(WebhookEvent.outcome == "received", WebhookEvent.received_at < a_while_ago)
        .order_by(WebhookEvent.received_at).limit(BATCH)
    ).all()
    for event in events:
        job_id = event_job_id(event.id)
        if job_alive(job_id):
            continue
        job_discard(job_id)
        if event_enqueue(event.id):
            queued += 1
    return queued
