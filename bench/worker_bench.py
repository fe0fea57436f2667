"""Worker throughput against the fake e-conomic, beside a no-op RQ job (the queue's ceiling).

    .venv/bin/python bench/worker_bench.py   (INVOICES=200 to change the load)

Prints e-conomic calls per invoice for a new customer and for a repeat customer with known products,
invoices synced per second by one worker at 0 ms and at 50 ms per e-conomic call, and peak RSS.

Each rate is given twice: from the worker's start to the last job's end (what the first figures in the
README measured), and in steady state, from the first job's start to the last job's end as recorded by
the runs and by RQ. The worker takes about a second to start, so the first figure of the no-op job is
mostly that second; the steady-state ratio is the honest one.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, peak_rss_mib, prepare_merchant  # noqa: E402
from doubles.economic import FakeEconomic  # noqa: E402
from doubles.stripe import FakeStripe, make_invoice  # noqa: E402

INVOICES = int(os.environ.get("INVOICES", 200))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    from tests.live import start_worker, stop_process

    with environment() as (env, tmp), FakeStripe() as stripe_fake, FakeEconomic() as economic_fake:
        env.update({"STRIPE_API_BASE": stripe_fake.url, "ECONOMIC_API_URL": economic_fake.url, "REQUEUE_EVERY_SECONDS": "3600"})
        os.environ.update(env)
        from portal import create_app
        from portal.extensions import db
        from portal.models import FINISHED_STATUSES, SyncRule, SyncRun
        from portal.queue import sync_queue
        from portal.runs.queueing import sync_run_enqueue
        from portal.runs.services import sync_run_create

        app = create_app()
        merchant = prepare_merchant(app, stripe_fake.api_key)
        invoices = []
        for n in range(1 + 2 * INVOICES):
            invoice, customer, products = make_invoice(number=f"WB-{n:05d}")
            stripe_fake.add_invoice(invoice, customer, products)
            invoices.append(invoice)
        rule = SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=False)

        def steady_seconds() -> float:
            """First attempt's start to last attempt's end of the runs just synced."""
            with app.app_context():
                first, last = db.session.execute(db.select(db.func.min(SyncRun.started_at), db.func.max(SyncRun.finished_at))
                                                 .where(SyncRun.id > sync.last_run_id)).one()
                sync.last_run_id = db.session.scalar(db.select(db.func.max(SyncRun.id)))
                db.session.remove()
            return (last - first).total_seconds()

        def sync(batch: list[dict]) -> float:
            with app.app_context():
                for invoice in batch:
                    run, _ = sync_run_create(merchant["id"], merchant["stripe_account_id"], invoice["id"], rule)
                    db.session.commit()
                    sync_run_enqueue(run)
                db.session.remove()
            started = time.perf_counter()
            sync.doubles_cpu = own_cpu_seconds()
            worker = start_worker(env, tmp / "worker.log")
            try:
                while True:
                    with app.app_context():
                        left = db.session.scalar(db.select(db.func.count()).select_from(SyncRun).where(
                            SyncRun.status.not_in(FINISHED_STATUSES)))
                        db.session.remove()
                    if not left:
                        break
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
                sync.rss = peak_rss_mib(worker.pid)
                sync.worker_cpu = process_cpu_seconds(worker.pid)
            finally:
                stop_process(worker)
            sync.doubles_cpu = own_cpu_seconds() - sync.doubles_cpu
            return elapsed

        sync.last_run_id = 0
        calls_before = len(economic_fake.requests)
        sync(invoices[:1])
        new_customer_calls = len(economic_fake.requests) - calls_before
        calls_before = len(economic_fake.requests)
        sync(invoices[1:2])
        repeat_calls = len(economic_fake.requests) - calls_before
        steady_seconds()

        fast = sync(invoices[2:2 + INVOICES])
        fast_steady = steady_seconds()
        fast_worker_cpu, fast_doubles_cpu = sync.worker_cpu, sync.doubles_cpu
        economic_fake.latency = 0.05
        slow = sync(invoices[2 + INVOICES:1 + 2 * INVOICES])
        slow_steady = steady_seconds()
        with app.app_context():
            failed = db.session.scalar(db.select(db.func.count()).select_from(SyncRun).where(SyncRun.status.in_(("failed", "held"))))

        queue = sync_queue(app)
        finished_before = queue.finished_job_registry.count  # the sync jobs' (kept for their result_ttl)
        for n in range(INVOICES):  # ids under our key prefix, so a shared Redis is cleaned of them afterwards
            queue.enqueue("bench.jobs.noop", job_id=f"{env['REDIS_KEY_PREFIX']}-noop-{n}")
        started = time.perf_counter()
        worker = start_worker(env, tmp / "worker-noop.log")
        try:
            while queue.finished_job_registry.count < finished_before + INVOICES:  # a job just taken is in no list
                time.sleep(0.02)
            noop = time.perf_counter() - started
        finally:
            stop_process(worker)
        from rq.job import Job

        done = Job.fetch_many([f"{env['REDIS_KEY_PREFIX']}-noop-{n}" for n in range(INVOICES)], connection=queue.connection)
        noop_steady = (max(job.ended_at for job in done) - min(job.started_at for job in done)).total_seconds()
        # What a worker's start costs, to take out of the worker's CPU for a batch.
        worker = start_worker(env, tmp / "worker-idle.log")
        try:
            from rq import Worker

            deadline = time.monotonic() + 30
            while not Worker.all(queue=queue) and time.monotonic() < deadline:
                time.sleep(0.02)
            start_cpu = process_cpu_seconds(worker.pid)
        finally:
            stop_process(worker)
        print(f"one worker (RQ SimpleWorker), {INVOICES} invoices per run, {env['DATABASE_URL'].split(':')[0]}; "
              f"times include the worker's start (about 1 s)")
        print(f"  e-conomic calls per invoice: new customer and new products {new_customer_calls}, repeat customer with known products {repeat_calls}")
        print(f"  {'':31s} {'from the start':>16s} {'steady state':>14s}")
        print(f"  {'no-op RQ job (ceiling):':31s} {INVOICES / noop:9.1f} jobs/s {INVOICES / noop_steady:9.1f} jobs/s")
        print(f"  {'sync, e-conomic at 0 ms/call:':31s} {INVOICES / fast:9.1f} inv/s  {INVOICES / fast_steady:9.1f} inv/s "
              f"  ({1000 * fast_steady / INVOICES:.1f} ms an invoice)")
        print(f"  {'sync, e-conomic at 50 ms/call:':31s} {(INVOICES - 1) / slow:9.1f} inv/s  {(INVOICES - 1) / slow_steady:9.1f} inv/s "
              f"  (failed or held runs: {failed})")
        print(f"  CPU per invoice at 0 ms/call: the worker {1000 * (fast_worker_cpu - start_cpu) / INVOICES:.1f} ms "
              f"(its start of {start_cpu:.2f} s taken out), the fake Stripe and e-conomic in this process "
              f"{1000 * fast_doubles_cpu / INVOICES:.1f} ms")
        print(f"  sync at 0 ms / no-op: {noop / fast:.0%} from the start, {noop_steady / fast_steady:.0%} in steady state")
        # A sync job pays RQ's handling of a job (the no-op's whole time) and waits while the doubles answer.
        floor_ms = 1000 * noop_steady / INVOICES + 1000 * fast_doubles_cpu / INVOICES
        print(f"  the most a sync could reach against these doubles: {1000 / floor_ms:.0f} inv/s in steady state "
              f"({noop_steady / INVOICES * 1000 / floor_ms:.0%} of the no-op job), were its own work free: RQ's handling "
              f"of a job {1000 * noop_steady / INVOICES:.1f} ms + the doubles answering {1000 * fast_doubles_cpu / INVOICES:.1f} ms")
        print(f"  peak RSS of the worker: {sync.rss:.0f} MiB")


if __name__ == "__main__":
    main()
