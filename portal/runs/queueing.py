"""Queueing on RQ: job ids, options and enqueueing. Redis is only the messenger: every job names a row
in the database, and a job that Redis loses is queued again by `recovery`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.queue import Queue
from sqlalchemy import update

from ..extensions import db
from ..models import SyncRun
from ..queue import sync_queue

log = logging.getLogger(__name__)

JOB_TIMEOUT_SECONDS = 600
RETRY_INTERVALS = [5, 30, 120]  # seconds before RQ's retries of a job that raised
SYNC_RUN_JOB = "portal.runs.jobs.sync_run_job"
EVENT_JOB = "portal.runs.jobs.event_job"
BACKFILL_JOB = "portal.runs.backfill.backfill_job"
BACKFILL_TIMEOUT_SECONDS = 3600


def job_id_for(run_id: int, attempt: int) -> str:
    return f"{current_app.config['REDIS_KEY_PREFIX']}-sync-run-{run_id}-attempt-{attempt}"


def event_job_id(event_id: int) -> str:
    return f"{current_app.config['REDIS_KEY_PREFIX']}-event-{event_id}"


def _job_options(job_id: str) -> dict[str, Any]:
    # RQ's own retries cover an exception in the job (the database away while claiming, say), spaced out;
    # what they cannot cover, the requeue pass does from the database.
    return dict(job_id=job_id, retry=Retry(max=3, interval=RETRY_INTERVALS), job_timeout=JOB_TIMEOUT_SECONDS,
                failure_ttl=7 * 86400)


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
            queue.enqueue_in(timedelta(seconds=delay_seconds), SYNC_RUN_JOB, run_id, **_job_options(job_id))
        else:
            queue.enqueue(SYNC_RUN_JOB, run_id, unique=True, **_job_options(job_id))
    except DuplicateJobError:
        pass  # that attempt is queued already
    except (RedisError, OSError) as error:
        log.warning("could not queue sync run %s (it stays pending): %s", run_id, error)
        return False
    db.session.execute(update(SyncRun.__table__).where(SyncRun.id == run_id).values(job_id=job_id))
    db.session.commit()
    return True


def event_enqueue(event_id: int) -> bool:
    """Queue the job that decides one stored event (the requeue pass). False when Redis is down."""
    try:
        events_queue([event_id])
    except (RedisError, OSError) as error:
        log.warning("could not queue event %s (it waits, stored): %s", event_id, error)
        return False
    return True


def events_queue(event_ids: Sequence[int]) -> None:
    """Queue the jobs that decide these stored events, in one round trip to Redis (a transaction: all or
    none). Raises RedisError or OSError when Redis is away; the caller decides what the events do then."""
    queue = sync_queue()
    with queue.connection.pipeline() as pipe:
        queue.enqueue_many([Queue.prepare_data(EVENT_JOB, (event_id,), **_prepared_options(event_job_id(event_id)))
                            for event_id in event_ids], pipeline=pipe)
        pipe.execute()


def _prepared_options(job_id: str) -> dict[str, Any]:
    options = _job_options(job_id)
    options["timeout"] = options.pop("job_timeout")  # Queue.prepare_data's name for it
    return options


ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def job_alive(job_id: str | None, started_counts: bool = True, scheduled_counts: bool = True) -> bool:
    """Whether Redis holds the job waiting, scheduled (unless `scheduled_counts` is off: a retry overdue in the
    scheduled registry) or running (unless `started_counts` is off); not failed, finished or forgotten."""
    if not job_id:
        return False
    try:
        status = Job.fetch(job_id, connection=sync_queue().connection).get_status(refresh=False)
    except NoSuchJobError:
        return False
    return (status in ALIVE and (started_counts or status != JobStatus.STARTED)
            and (scheduled_counts or status != JobStatus.SCHEDULED))


def backfill_job_id(backfill_id: int) -> str:
    return f"{current_app.config['REDIS_KEY_PREFIX']}-backfill-{backfill_id}"


def backfill_enqueue(backfill_id: int) -> bool:
    """Queue a backfill's listing job. False when Redis is down (the requeue pass queues it later)."""
    try:
        sync_queue().enqueue(BACKFILL_JOB, backfill_id, job_id=backfill_job_id(backfill_id), retry=Retry(max=3, interval=RETRY_INTERVALS),
                             job_timeout=BACKFILL_TIMEOUT_SECONDS, failure_ttl=7 * 86400)
    except (RedisError, OSError) as error:
        log.warning("could not queue backfill %s (it waits): %s", backfill_id, error)
        return False
    return True


def job_discard(job_id: str | None) -> None:
    """Forget a job (a scheduled retry that "Sync again" replaces): Redis down, nothing to forget."""
    if not job_id:
        return
    try:
        Job.fetch(job_id, connection=sync_queue().connection).delete()
    except (NoSuchJobError, RedisError, OSError):
        pass
