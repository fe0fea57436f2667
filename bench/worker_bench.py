"""Worker throughput against the fake e-conomic, beside a no-op RQ job (the queue's ceiling).

    .venv/bin/python bench/worker_bench.py   (INVOICES=200 to change the load)

Prints e-conomic calls per invoice for a new customer and for a repeat customer with known products,
invoices synced per second by one worker at 0 ms and at 50 ms per e-conomic call, and peak RSS.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, peak_rss_mib, prepare_merchant  # noqa: E402
from doubles.economic import FakeEconomic  # noqa: E402
from doubles.stripe import FakeStripe, make_invoice  # noqa: E402

INVOICES = int(os.environ.get("INVOICES", 200))


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

        def sync(batch: list[dict]) -> float:
            with app.app_context():
                for invoice in batch:
                    run, _ = sync_run_create(merchant["id"], invoice["id"], rule)
                    db.session.commit()
                    sync_run_enqueue(run)
                db.session.remove()
            started = time.perf_counter()
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
            finally:
                stop_process(worker)
            return elapsed

        calls_before = len(economic_fake.requests)
        sync(invoices[:1])
        new_customer_calls = len(economic_fake.requests) - calls_before
        calls_before = len(economic_fake.requests)
        sync(invoices[1:2])
        repeat_calls = len(economic_fake.requests) - calls_before

        fast = sync(invoices[2:2 + INVOICES])
        economic_fake.latency = 0.05
        slow = sync(invoices[2 + INVOICES:1 + 2 * INVOICES])
        with app.app_context():
            failed = db.session.scalar(db.select(db.func.count()).select_from(SyncRun).where(SyncRun.status.in_(("failed", "held"))))

        queue = sync_queue(app)
        for n in range(INVOICES):  # ids under our key prefix, so a shared Redis is cleaned of them afterwards
            queue.enqueue("bench.jobs.noop", job_id=f"{env['REDIS_KEY_PREFIX']}-noop-{n}")
        started = time.perf_counter()
        worker = start_worker(env, tmp / "worker-noop.log")
        try:
            while queue.count:
                time.sleep(0.02)
            noop = time.perf_counter() - started
        finally:
            stop_process(worker)
        print(f"one worker (RQ SimpleWorker), {INVOICES} invoices per run, {env['DATABASE_URL'].split(':')[0]}; "
              f"times include the worker's start (about 1 s)")
        print(f"  e-conomic calls per invoice: new customer and new products {new_customer_calls}, repeat customer with known products {repeat_calls}")
        print(f"  no-op RQ job (ceiling):        {INVOICES / noop:6.1f} jobs/s")
        print(f"  sync, e-conomic at 0 ms/call:  {INVOICES / fast:6.1f} invoices/s")
        print(f"  sync, e-conomic at 50 ms/call: {(INVOICES - 1) / slow:6.1f} invoices/s   (failed or held runs: {failed})")
        print(f"  peak RSS of the worker: {sync.rss:.0f} MiB")


if __name__ == "__main__":
    main()
