"""Run an RQ worker for the portal's queue: `python worker.py`.

Start as many as you need, on as many machines as you like, against the same Redis and database.
SIGTERM (or Ctrl-C) lets the job in hand finish before the worker exits. Each worker also runs the
requeue pass every minute (REQUEUE_EVERY_SECONDS) (one worker at a time, by a lock in Redis): runs stored while Redis was
down, and runs whose worker was killed mid-run, are queued again.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from rq import SimpleWorker

from portal import create_app
from portal.extensions import db
from portal.processes import die_with_parent
from portal.queue import RedisNotConfigured, redis_connection, sync_queue
from portal.runs.recovery import sync_run_requeue_pending

log = logging.getLogger("worker")


class AppWorker(SimpleWorker):
    """Runs jobs in this process (no fork per job) with a fresh database session for each."""

    def perform_job(self, job, queue, *args, **kwargs):
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            db.session.remove()


def requeue_loop(app, stop: threading.Event) -> None:
    connection = redis_connection(app)
    lock_key = f"{app.config['REDIS_KEY_PREFIX']}:requeue-lock"
    every = app.config["REQUEUE_EVERY_SECONDS"]
    while not stop.wait(every):
        try:
            if not connection.set(lock_key, "1", nx=True, px=max(int(every * 900), 500)):
                continue
            with app.app_context():
                queued = sync_run_requeue_pending()
                db.session.remove()
            if queued:
                log.info("requeue pass: queued %d pending run(s)", queued)
        except Exception:  # Redis or the database away for a moment: try again next minute
            log.exception("requeue pass failed")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    app = create_app()
    try:
        connection = redis_connection(app)
    except RedisNotConfigured as error:
        print(error, file=sys.stderr)
        return 2
    # RQ forks its scheduler from the worker: should the worker be SIGKILLed (the OOM killer, kill -9),
    # the scheduler must not live on as an orphan holding the scheduler lock.
    os.register_at_fork(after_in_child=die_with_parent)
    stop = threading.Event()
    threading.Thread(target=requeue_loop, args=(app, stop), name="requeue", daemon=True).start()
    try:
        with app.app_context():
            worker = AppWorker([sync_queue(app)], connection=connection)
            worker.work(with_scheduler=True)
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
