"""Run an RQ worker for the portal's queue: `python worker.py`.

Start as many as you need, on as many machines as you like, against the same Redis and database.
SIGTERM (or Ctrl-C) lets the job in hand finish before the worker exits. Each worker also runs the
dispatch pass every DISPATCH_EVERY_SECONDS (the events the webhook stored are queued as jobs), and the
requeue pass every REQUEUE_EVERY_SECONDS (one worker at a time, by a lock in Redis): runs stored while
Redis was down, and runs whose worker was killed mid-run, are queued again.

Only a signal stops a worker. When Redis goes away (down, restarted, unreachable), RQ's work loop ends
and the worker waits — 1 s, doubling to 30 s, with jitter — then registers anew with a fresh RQ worker
and scheduler and goes on taking jobs; whatever Redis lost meanwhile, the requeue pass queues again from
the database. A job that fails because the database is away is retried by RQ (see runs/queueing.py).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager, suppress

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError
from rq import SimpleWorker
from rq.exceptions import StopRequested
from sqlalchemy.exc import SQLAlchemyError

from portal import create_app
from portal.extensions import db
from portal.processes import die_with_parent
from portal.queue import RedisNotConfigured, redis_connection, sync_queue
from portal.runs.dispatch import events_dispatch
from portal.runs.recovery import sync_run_requeue_pending

log = logging.getLogger("worker")

REDIS_AWAY = (RedisConnectionError, RedisTimeoutError, OSError)
FIRST_WAIT_SECONDS = 1.0
LONGEST_WAIT_SECONDS = 30.0
SCHEDULER_STOP_SECONDS = 10.0


class RedisLost(StopRequested):
    """Redis went away under RQ's work loop. A StopRequested, so that RQ ends the loop quietly (it would
    otherwise log "found an unhandled exception, quitting") and `work_until_stopped` can start again."""

    def __init__(self, reason: str, unreachable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable  # else it answers, but lost this worker's registration


class AppWorker(SimpleWorker):
    """Runs jobs in this process (no fork per job) with a fresh database session for each.

    Every step of RQ's loop that talks to Redis raises RedisLost when Redis is away, as does a heartbeat
    that finds the worker's registration gone (Redis restarted empty). Teardown never raises, and always
    stops the scheduler process."""

    def __init__(self, *args, stopping: threading.Event, **kwargs) -> None:
        self.stopping = stopping  # set by SIGTERM or SIGINT, whoever's handler caught it
        self.bootstrapped = False
        self.ending = False  # RQ's loop is over: a signal now only sets `stopping`
        self.lost: RedisLost | None = None  # why the work loop ended, when Redis went away
        super().__init__(*args, **kwargs)

    def lose_redis(self, reason: str, unreachable: bool = True) -> RedisLost:
        self.lost = RedisLost(reason, unreachable)
        return self.lost

    @contextmanager
    def redis_away_is_lost(self):
        try:
            yield
        except REDIS_AWAY as error:
            raise self.lose_redis(str(error) or error.__class__.__name__) from error

    def bootstrap(self, *args, **kwargs):
        with self.redis_away_is_lost():
            super().bootstrap(*args, **kwargs)
        self.bootstrapped = True

    def request_stop(self, signum, frame):
        self.stopping.set()
        if not (self.ending or self.lost):  # else RQ's handler would raise StopRequested into the teardown
            super().request_stop(signum, frame)

    def check_for_suspension(self, burst: bool):
        if self.stopping.is_set():  # the signal came before RQ's handlers were installed
            raise StopRequested()
        with self.redis_away_is_lost():
            super().check_for_suspension(burst)

    def run_maintenance_tasks(self):
        with self.redis_away_is_lost():
            super().run_maintenance_tasks()

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        with self.redis_away_is_lost():
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def execute_job(self, job, queue):
        # The job itself never raises here (RQ records its failure); RQ's bookkeeping around it may.
        with self.redis_away_is_lost():
            super().execute_job(job, queue)

    def perform_job(self, job, queue, *args, **kwargs):
        try:
            return super().perform_job(job, queue, *args, **kwargs)
        finally:
            db.session.remove()

    def heartbeat(self, timeout=None, pipeline=None):
        if pipeline is not None:
            return super().heartbeat(timeout, pipeline)
        with self.redis_away_is_lost(), self.connection.pipeline() as beat:
            super().heartbeat(timeout, beat)
            fields_added = beat.execute()[0]
        if fields_added:  # a registered worker's hash has `last_heartbeat` already
            raise self.lose_redis("lost this worker's registration (restarted without its data?)", unreachable=False)

    def teardown(self):
        """RQ's teardown, step by step, for Redis may be away: the scheduler process stops whatever happens;
        a death that cannot be recorded is left to expire with the worker's keys. Each step may be repeated."""
        self.ending = True
        if self.scheduler:
            self.stop_scheduler()
            with suppress(*REDIS_AWAY):
                self.scheduler.release_locks()
        with suppress(*REDIS_AWAY):
            self.register_death()
        self.unsubscribe()

    def stop_scheduler(self):
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.is_alive():  # is_alive() also reaps one that died by itself
            return
        process.terminate()
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()

    def unsubscribe(self):
        if not self.pubsub_thread:
            return
        with suppress(*REDIS_AWAY):
            self.pubsub.unsubscribe()
        self.pubsub_thread.stop()
        self.pubsub_thread.join(timeout=1)
        with suppress(*REDIS_AWAY):
            self.pubsub.close()
        self.pubsub_thread = None


def redis_address(connection: Redis) -> str:
    """Where Redis is expected, without its password."""
    options = connection.connection_pool.connection_kwargs
    where = options.get("path") or f"{options.get('host')}:{options.get('port')}"
    return f"{where}/{options.get('db', 0)}"


def wait_before_attempt(attempt: int) -> float:
    """Seconds to wait before the `attempt`th try in a row: 1, 2, 4 … 30, each between half and all of it."""
    longest = min(LONGEST_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2 ** (attempt - 1))
    return random.uniform(longest / 2, longest)


def listen_for_stop(stop: threading.Event) -> None:
    """SIGTERM and SIGINT stop the worker while no RQ worker is running (RQ installs its own handlers)."""
    def request_stop(signum, frame):
        log.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def work_until_stopped(app, connection: Redis, stop: threading.Event) -> None:
    """Run RQ workers, one after the other, until SIGTERM or SIGINT. An RQ worker ends when Redis goes away
    (or on any error RQ does not handle); after a wait, a fresh one registers and starts its scheduler."""
    attempt = 0
    unreleased = None  # the scheduler of an earlier worker, whose lock Redis was away to release
    while not stop.is_set():
        listen_for_stop(stop)
        started = time.monotonic()
        worker = None
        try:
            worker = AppWorker([sync_queue(app)], connection=connection, stopping=stop)
            if attempt:
                log.info("Redis at %s answers again: starting worker %s", redis_address(connection), worker.name)
            if unreleased is not None:  # else a fresh scheduler would wait for that lock to expire
                unreleased.release_locks()
                unreleased = None
            worker.work(with_scheduler=True)
            problem = worker.lost or "RQ's work loop ended on an error (logged above)"
        except RedisLost as lost:  # in bootstrap, before RQ's loop
            problem = lost
        except StopRequested:  # a signal while RQ's handlers were still installed
            stop.set()
        except REDIS_AWAY as error:  # while making the worker
            problem = RedisLost(str(error) or error.__class__.__name__)
        except SQLAlchemyError as error:
            problem = f"database error outside a job ({one_line(error)})"
        except Exception as error:
            log.exception("the worker failed")
            problem = f"the worker failed ({error.__class__.__name__}: {error})"
        finally:
            if worker is not None:
                worker.teardown()  # work() did, unless it failed early
                if worker.scheduler is not None and worker.scheduler.acquired_locks:
                    unreleased = worker.scheduler
        if stop.is_set():
            break
        if worker is not None and worker.bootstrapped and time.monotonic() - started > LONGEST_WAIT_SECONDS:
            attempt = 0  # it worked for a while: this is a new outage
        attempt += 1
        wait = wait_before_attempt(attempt)
        if isinstance(problem, RedisLost) and problem.unreachable:
            log.warning("Redis unreachable at %s (%s): retrying in %.1f s", redis_address(connection), problem.reason, wait)
        elif isinstance(problem, RedisLost):
            log.warning("Redis at %s %s: registering anew in %.1f s", redis_address(connection), problem.reason, wait)
        else:
            log.warning("%s: starting again in %.1f s", problem, wait)
        stop.wait(wait)


def repeat_pass(name: str, every: float, one_pass, stop: threading.Event) -> None:
    """Run `one_pass` every `every` seconds until stopped. Redis or the database away for a moment fails a
    pass, logged once until a pass works again; the next pass tries again."""
    failing = None  # what made the last pass fail
    while not stop.wait(every):
        try:
            one_pass()
            if failing:
                log.info("%s pass works again", name)
                failing = None
        except REDIS_AWAY as error:
            failing = report_once(failing, "Redis", f"{name} pass failed: Redis unreachable ({error})")
        except SQLAlchemyError as error:
            failing = report_once(failing, "database", f"{name} pass failed: database error ({one_line(error)})")
        except Exception:
            log.exception("%s pass failed", name)
            failing = "other"


def requeue_loop(app, stop: threading.Event) -> None:
    """The requeue pass (runs/recovery.py), one worker at a time: a lock in Redis lets one pass in an interval."""
    connection = redis_connection(app)
    lock_key = f"{app.config['REDIS_KEY_PREFIX']}:requeue-lock"
    every = app.config["REQUEUE_EVERY_SECONDS"]

    def requeue_pass() -> None:
        if not connection.set(lock_key, "1", nx=True, px=max(int(every * 900), 500)):
            return
        with app.app_context():
            try:
                queued = sync_run_requeue_pending()
            finally:
                db.session.remove()
        if queued:
            log.info("requeue pass: queued %d pending run(s)", queued)

    repeat_pass("requeue", every, requeue_pass, stop)


def dispatch_loop(app, stop: threading.Event) -> None:
    """The dispatch pass (runs/dispatch.py): the jobs of the events the webhook stored are queued. Every
    worker runs it; the database's claim keeps two from queuing one event twice."""
    def dispatch_pass() -> None:
        with app.app_context():
            try:
                events_dispatch()
            finally:
                db.session.remove()

    repeat_pass("dispatch", max(app.config["DISPATCH_EVERY_SECONDS"], 0.05), dispatch_pass, stop)  # 0 would spin


def one_line(error: SQLAlchemyError) -> str:
    """The driver's message, without SQLAlchemy's statement and link, on one line."""
    return f"{error.__class__.__name__}: {' '.join(str(getattr(error, 'orig', None) or error).split())}"


def report_once(failing: str | None, kind: str, message: str) -> str:
    if failing != kind:
        log.warning(message)
    return kind


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
    threading.Thread(target=dispatch_loop, args=(app, stop), name="dispatch", daemon=True).start()
    try:
        with app.app_context():
            work_until_stopped(app, connection, stop)
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
