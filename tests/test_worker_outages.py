"""Outages under a running `python worker.py`: Redis stopped and restarted empty, the database away while a
job claims its run. The worker rides them out (it never exits) and every invoice ends with one document."""

from __future__ import annotations

import signal
import socket
import sqlite3
import threading
import time
from contextlib import suppress

import pytest
from redis.exceptions import RedisError
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.engine import make_url

from launch.embedded_redis import free_port, spawn as spawn_redis
from portal import create_app
from portal.extensions import db
from portal.models import WebhookEvent
from portal.queue import redis_connection
from portal.runs.queueing import event_job_id

from .live import alive, descendants, start_worker, stop_process, wait_for
from .test_worker_processes import configure, deliver, fakes, run_status, seeded_invoice, worker_env  # noqa: F401 (fakes is a fixture)


def live_children(pid: int) -> list[int]:
    """The worker's living child processes: its RQ scheduler, when it holds the scheduler lock."""
    return [child for child in descendants(pid) if alive(child)]


def worker_names(portal) -> set[str]:
    """The RQ workers registered in the portal's Redis."""
    with portal.app_context():
        try:
            return {worker.name for worker in Worker.all(connection=redis_connection())}
        except RedisError:
            return set()


def synced(app, invoice_id):
    return (run := run_status(app, invoice_id)) and run.status in ("succeeded", "failed", "held") and run


@pytest.fixture
def redis_on_fixed_port(tmp_path):
    """An embedded Redis on a port of its own, which the test may stop and start again, empty, on that port."""
    port = free_port()
    servers = []

    def start():
        process, url = spawn_redis(tmp_path / f"valkey-{len(servers)}", port=port, persist=False)
        servers.append(process)
        return process, url

    yield start
    for process in servers:
        stop_process(process)


def close(portal) -> None:
    """Release the test's own app (its Redis and database connections) once its worker has stopped."""
    with portal.app_context():
        redis_connection().close()
        db.session.remove()
        db.engine.dispose()


def test_a_worker_rides_out_redis_restarted_empty(app, base_config, account, fakes, redis_on_fixed_port, tmp_path):
    """Redis goes away for 8 s while a job is in hand, and comes back without its data: the worker waits,
    registers anew, and every invoice is synced once: the one in hand, one delivered while Redis was
    down (stored, then queued by the requeue pass) and one delivered after."""
    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake)
    in_hand, during, after = (seeded_invoice(stripe_fake, number) for number in ("O-0001", "O-0002", "O-0003"))
    redis_process, redis_url = redis_on_fixed_port()
    portal = create_app({**base_config, "REDIS_URL": redis_url})  # the web app
    log_path = tmp_path / "worker.log"
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path, redis_url), log_path)
    try:
        wait_for(lambda: len(worker_names(portal)) == 1, what="the worker to register")
        wait_for(lambda: live_children(worker.pid), what="the worker's RQ scheduler")
        economic_fake.delay_after_create = 2  # the job is still in hand when Redis goes
        assert deliver(portal.test_client(), account, in_hand).status_code == 200
        wait_for(lambda: economic_fake.posts("/invoices/drafts"), what="the job to create its draft")

        stop_process(redis_process)
        down_since = time.monotonic()
        economic_fake.delay_after_create = 0
        assert deliver(portal.test_client(), account, during).status_code == 200
        assert run_status(app, during["id"]) is None  # stored; its job could not be queued
        while time.monotonic() - down_since < 8:
            assert worker.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.2)
        assert "Redis unreachable at 127.0.0.1:" in log_path.read_text()

        redis_on_fixed_port()  # the same port, nothing in it
        assert deliver(portal.test_client(), account, after).status_code == 200
        runs = [wait_for(lambda i=invoice: synced(app, i["id"]), timeout=60, what=f"{invoice['number']} to be synced")
                for invoice in (in_hand, during, after)]

        assert [run.status for run in runs] == ["succeeded"] * 3, [run.last_error for run in runs]
        assert [run.attempts for run in runs] == [1, 1, 1]
        drafts = economic_fake.documents("invoices/drafts")
        assert sorted(draft["references"]["other"] for draft in drafts) == ["O-0001", "O-0002", "O-0003"]
        assert worker.poll() is None  # the same process all along
        assert len(worker_names(portal)) == 1
        # One scheduler: the one the worker started before the outage is gone.
        wait_for(lambda: len(live_children(worker.pid)) == 1, timeout=10, what="exactly one scheduler process")
        assert "quitting" not in log_path.read_text()
    finally:
        stop_process(worker)
        close(portal)


def test_a_worker_registers_anew_when_redis_restarts_empty_at_once(app, base_config, account, fakes, redis_on_fixed_port,
                                                                   tmp_path):
    """Back within a second, Redis has forgotten the worker: its next heartbeat notices, and a fresh RQ worker
    (and scheduler) takes over in the same process."""
    stripe_fake, economic_fake = fakes
    configure(app, account.merchant_id, stripe_fake)
    invoice = seeded_invoice(stripe_fake, "O-0004")
    redis_process, redis_url = redis_on_fixed_port()
    portal = create_app({**base_config, "REDIS_URL": redis_url})
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path, redis_url), tmp_path / "worker.log")
    try:
        [before] = wait_for(lambda: worker_names(portal), what="the worker to register")
        wait_for(lambda: live_children(worker.pid), what="the worker's RQ scheduler")
        stop_process(redis_process)
        redis_on_fixed_port()
        [now] = wait_for(lambda: worker_names(portal), timeout=30, what="the worker to register anew")
        assert now != before and worker.poll() is None
        assert deliver(portal.test_client(), account, invoice).status_code == 200
        run = wait_for(lambda: synced(app, invoice["id"]), timeout=30, what="the invoice to be synced")
        assert run.status == "succeeded" and len(economic_fake.documents("invoices/drafts")) == 1
        wait_for(lambda: len(live_children(worker.pid)) == 1, timeout=10, what="exactly one scheduler process")
    finally:
        stop_process(worker)
        close(portal)


def test_sigterm_stops_a_worker_waiting_for_redis(app, base_config, fakes, redis_on_fixed_port, tmp_path):
    """However long Redis stays away, SIGTERM stops the worker at once, its scheduler with it."""
    stripe_fake, economic_fake = fakes
    redis_process, redis_url = redis_on_fixed_port()
    log_path = tmp_path / "worker.log"
    worker = start_worker(worker_env(base_config, stripe_fake, economic_fake, tmp_path, redis_url), log_path)
    try:
        scheduler = wait_for(lambda: live_children(worker.pid), what="the worker's RQ scheduler")
        stop_process(redis_process)
        # A few attempts in, the worker waits seconds between them.
        wait_for(lambda: log_path.read_text().count("Redis unreachable at") >= 3, timeout=20,
                 what="the worker to try Redis three times")
        asked = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=5) == 0
        assert time.monotonic() - asked < 2
        wait_for(lambda: not any(alive(pid) for pid in scheduler), timeout=5, what="its scheduler to be gone")
    finally:
        stop_process(worker)


class TcpForwarder:
    """127.0.0.1:<port> forwarded to the database server. `cut()` closes the port and every connection
    through it (a database restart, a network cut); `restore()` listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.lock = threading.Lock()
        self.sockets: set[socket.socket] = set()
        self.accepted = 0
        self.listening: tuple[threading.Event, threading.Thread] | None = None
        self.restore()

    def restore(self) -> None:
        if self.listening:
            return
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the port again at once
        listener.settimeout(0.1)
        closing = threading.Event()
        thread = threading.Thread(target=self._accept, args=(listener, closing), daemon=True)
        thread.start()
        self.listening = (closing, thread)

    def cut(self) -> None:
        if self.listening:
            closing, thread = self.listening
            self.listening = None
            closing.set()
            thread.join(5)
        with self.lock:
            sockets, self.sockets = self.sockets, set()
        for sock in sockets:
            self._close(sock)

    close = cut

    def _accept(self, listener: socket.socket, closing: threading.Event) -> None:
        with listener:
            while not closing.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                try:
                    server = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    client.close()
                    continue
                server.settimeout(None)
                with self.lock:
                    self.sockets |= {client, server}
                    self.accepted += 1
                for source, target in ((client, server), (server, client)):
                    threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        with self.lock:
            self.sockets.discard(sock)


class SqliteWriteLock:
    """SQLite cannot be switched off: the test holds its write lock instead, so each write of the worker waits
    out its busy timeout (10 s) and fails with "database is locked", as it would fail with a server away."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.connection: sqlite3.Connection | None = None

    def cut(self) -> None:
        self.connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.connection.execute("BEGIN IMMEDIATE")

    def restore(self) -> None:
        if self.connection is not None:
            self.connection.execute("ROLLBACK")
            self.connection.close()
            self.connection = None

    close = restore


@pytest.fixture
def database_outage(base_config):
    """How to take the database away from the worker, and the DATABASE_URL the worker is to use."""
    url = make_url(base_config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        outage, worker_url = SqliteWriteLock(url.database), base_config["SQLALCHEMY_DATABASE_URI"]
    else:
        outage = TcpForwarder((url.host or "127.0.0.1", url.port or 5432))
        worker_url = url.set(host="127.0.0.1", port=outage.port).render_as_string(hide_password=False)
    yield outage, worker_url
    outage.close()


def event_job(app) -> Job | None:
    with app.app_context():
        event_id = db.session.scalar(select(WebhookEvent.id))
        db.session.remove()
        try:
            return Job.fetch(event_job_id(event_id), connection=redis_connection())
        except NoSuchJobError:
            return None


def test_a_job_that_cannot_reach_the_database_is_retried_and_its_run_succeeds(
        app, base_config, account, fakes, database_outage, tmp_path):
    """The database goes away while the job fetches the invoice, just before it makes and claims the run:
    the job fails, RQ retries it (5 s later), and by then the database is back."""
    stripe_fake, economic_fake = fakes
    outage, worker_database_url = database_outage
    configure(app, account.merchant_id, stripe_fake)
    invoice = seeded_invoice(stripe_fake, "O-0003")
    fetching, go_on = threading.Event(), threading.Event()
    answer = stripe_fake.handle

    def first_fetch_waits(request):
        if request.path == f"/v1/invoices/{invoice['id']}" and not fetching.is_set():
            fetching.set()
            go_on.wait(10)
        return answer(request)

    stripe_fake.handle = first_fetch_waits
    log_path = tmp_path / "worker.log"
    # Only RQ's retry brings the job back here: the requeue pass would also take back an event whose job has
    # been "started" longer than REQUEUE_AFTER_SECONDS (1 s in worker_env), as a job whose worker died.
    env = {**worker_env(base_config, stripe_fake, economic_fake, tmp_path), "DATABASE_URL": worker_database_url,
           "REQUEUE_AFTER_SECONDS": "600"}
    worker = start_worker(env, log_path)
    try:
        assert deliver(app.test_client(), account, invoice).status_code == 200
        wait_for(fetching.is_set, what="the job to read its event and fetch the invoice")
        outage.cut()
        away_since = time.monotonic()
        go_on.set()
        job = wait_for(lambda: (j := event_job(app)) and j.get_status() == JobStatus.SCHEDULED and j, timeout=30,
                       what="RQ to schedule the failed job's retry")
        assert job.retries_left == 2
        time.sleep(max(0.0, 3 - (time.monotonic() - away_since)))  # a few seconds without the database
        assert worker.poll() is None
        outage.restore()

        run = wait_for(lambda: synced(app, invoice["id"]), timeout=60, what="the retried job to sync the invoice")
        assert run.status == "succeeded", (run.last_error, log_path.read_text()[-3000:])
        assert run.attempts == 1  # the failed attempt never got as far as the run
        [draft] = economic_fake.documents("invoices/drafts")
        assert draft["references"]["other"] == "O-0003"
        assert worker.poll() is None
    finally:
        go_on.set()
        outage.restore()
        stop_process(worker)
