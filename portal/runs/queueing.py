"""Queueing on RQ: job ids, options and enqueueing. Redis is only the messenger: every job names a row
in the database, and a job that Redis loses is queued again by `recovery`."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from rq.exceptions import DuplicateJobError
from sqlalchemy import update

from ..extensions import db
from ..models import SyncRun
from ..queue import sync_queue

log = logging.getLogger(__name__)

JOB_TIMEOUT_SECONDS = 600
SYNC_RUN_JOB = "portal.runs.jobs.sync_run_job"


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


def sync_run_enqueue_new(run_id: int, job_id: str) -> bool:
    """Queue the first attempt of a run that was just committed with `job_id` (webhook intake).

    Only the delivery that inserted the run gets here, so no uniqueness check is needed and the job
    reaches Redis in one round trip. False when Redis is down: the job id is cleared so the requeue
    pass queues the run later.
    """
    try:
        queue = sync_queue()
        with queue.connection.pipeline() as pipe:
            queue.enqueue(SYNC_RUN_JOB, run_id, pipeline=pipe, **_job_options(job_id))
            pipe.execute()
    except (RedisError, OSError) as error:
        log.warning("could not queue sync run %s (it stays pending): %s", run_id, error)
        db.session.execute(update(SyncRun.__table__).where(SyncRun.id == run_id, SyncRun.job_id == job_id).values(job_id=None))
        db.session.commit()
        return False
    return True
