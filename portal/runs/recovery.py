"""Recovery: runs whose job Redis lost, or whose worker died, are queued again."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from rq.job import Job
from sqlalchemy import or_, select

from ..extensions import db
from ..models import SyncRun, utcnow
from ..queue import redis_connection
from .queueing import sync_run_enqueue


def lease_expired_before() -> datetime:
    """Runs still "running" but untouched since this moment lost their worker."""
    return utcnow() - timedelta(seconds=current_app.config["RUN_LEASE_SECONDS"])


def sync_run_requeue_pending() -> int:
    """Queue every run that should have a job and has none (Redis was down), or whose worker died."""
    stale = lease_expired_before()
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
