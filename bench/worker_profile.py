"""Where a worker's CPU goes while it syncs an invoice, in one process and one thread.

    .venv/bin/python bench/worker_profile.py    (INVOICES=300; DATABASE_URL / REDIS_URL as for the benches)

The runs are made and queued as in bench/worker_bench.py (a repeat customer whose products are known, a
Paid → Draft invoice rule), then each is run by calling the job's function here, in this thread, as the
worker does after RQ hands it the job. The fake Stripe and e-conomic answer from threads of this process;
only this thread's CPU is counted, so their work is not in the figures. Prints, per invoice:

1. CPU time of a sync, no instrumentation;
2. its CPU by step, timed with the thread's CPU clock around the functions that make a sync (the steps
   nest, each line includes those under it; waiting on the database, Redis or HTTP is not CPU);
3. the top functions by their own CPU time under cProfile (which inflates small, frequent calls: read
   it for names, and 2. for shares).
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import environment, prepare_merchant  # noqa: E402
from bench.intake_profile import Steps  # noqa: E402
from doubles.economic import FakeEconomic  # noqa: E402
from doubles.stripe import FakeStripe, make_invoice  # noqa: E402

INVOICES = int(os.environ.get("INVOICES", 300))
WARM_UP = 50


def instrument(steps: Steps) -> None:
    import requests
    import sqlalchemy.engine
    import sqlalchemy.orm

    import portal.crypto
    import portal.merchant_config as merchant_config
    import portal.runs.jobs as jobs
    import portal.runs.recording as recording
    import portal.runs.recovery as recovery
    import portal.sync.engine as engine

    steps.wrap(jobs, "sync_run_execute", "the job (sync_run_execute)")
    steps.wrap(jobs, "_invoice_engine", "  engine built (_invoice_engine)")
    steps.wrap(jobs, "_clients_for", "    Stripe and e-conomic clients (_clients_for)")
    steps.wrap(portal.crypto.SecretBox, "decrypt", "      a secret decrypted (Fernet)")
    steps.wrap(jobs, "engine_settings_for", "    the merchant's settings (engine_settings_for)")
    steps.wrap(recovery.Heartbeat, "__enter__", "  heartbeat thread started")
    steps.wrap(recovery.Heartbeat, "__exit__", "  heartbeat thread stopped")
    steps.wrap(engine.SyncEngine, "run", "  SyncEngine.run")
    steps.wrap(engine.SyncEngine, "_fetch", "    fetch")
    steps.wrap(engine, "fetch_invoice", "      the invoice read from Stripe (fetch_invoice)")
    steps.wrap(engine.SyncEngine, "_vat_plan", "    vat")
    steps.wrap(engine.SyncEngine, "_customer", "    customer")
    steps.wrap(engine.SyncEngine, "_products", "    products")
    steps.wrap(engine, "plan_lines", "    plan_lines")
    steps.wrap(engine.SyncEngine, "_document", "    document")
    steps.wrap(engine.SyncEngine, "document_body", "      document_body (mappings)")
    steps.wrap(engine.SyncEngine, "_reconciled", "      reconciled")
    steps.wrap(recording.DatabaseRecorder, "_keep", "    the run's columns kept (DatabaseRecorder._keep)")
    steps.wrap(recording.DatabaseRecorder, "save", "    reports written and committed (DatabaseRecorder.save)")
    steps.wrap(recording.DatabaseRecorder, "step", "    an audit row kept (DatabaseRecorder.step)")
    steps.wrap(jobs, "sync_run_succeeded", "  sync_run_succeeded")
    steps.wrap(jobs, "entry_runs_after", "  entry_runs_after")
    steps.wrap(merchant_config, "merchant_row", "  a merchant config row read (merchant_row)")
    steps.wrap(requests.Session, "request", "  every HTTP request (requests.Session.request)")
    steps.wrap(sqlalchemy.engine.Connection, "_execute_context", "  every SQL statement (all steps)")
    steps.wrap(sqlalchemy.orm.Session, "commit", "  every commit (Session.commit)")


class Counts:
    """How many SQL statements and commits a sync makes."""

    def __init__(self) -> None:
        import sqlalchemy
        from sqlalchemy import event

        self.statements = self.commits = 0
        self._event, self._engine_class = event, sqlalchemy.engine.Engine

    def install(self):
        def statement(*args, **kwargs):
            self.statements += 1

        def commit(*args):
            self.commits += 1

        self._event.listen(self._engine_class, "before_cursor_execute", statement)
        self._event.listen(self._engine_class, "commit", commit)

        def uninstall():
            self._event.remove(self._engine_class, "before_cursor_execute", statement)
            self._event.remove(self._engine_class, "commit", commit)
        return uninstall


def statements_of_one_sync(app, jobs, run_id: int) -> None:
    """Print the SQL statements of one more sync (a run not yet run), in order."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from portal.extensions import db

    def show(connection, cursor, statement, parameters, context, executemany):
        print("   ", " ".join(statement.split())[:150])

    with app.app_context():
        print("\nThe SQL of one sync:")
        event.listen(Engine, "before_cursor_execute", show)
        event.listen(Engine, "commit", lambda connection: print("    COMMIT"))
        try:
            jobs.sync_run_execute(run_id)
        finally:
            event.remove(Engine, "before_cursor_execute", show)
        db.session.remove()


def main() -> None:
    with environment() as (env, tmp), FakeStripe() as stripe_fake, FakeEconomic() as economic_fake:
        env.update({"STRIPE_API_BASE": stripe_fake.url, "ECONOMIC_API_URL": economic_fake.url})
        os.environ.update(env)
        from portal import create_app
        from portal.extensions import db
        from portal.models import RunStatus, SyncRule, SyncRun
        import portal.runs.jobs as jobs
        from portal.runs.services import sync_run_create

        app = create_app()
        merchant = prepare_merchant(app, stripe_fake.api_key)
        rule = SyncRule(trigger="paid", document_type="draft_invoice", write_back_to_stripe=False)
        run_ids = []
        with app.app_context():
            for n in range(2 + WARM_UP + 4 * INVOICES):  # the last for SHOW_SQL
                invoice, customer, products = make_invoice(number=f"WP-{n:05d}")
                stripe_fake.add_invoice(invoice, customer, products)
                run, _ = sync_run_create(merchant["id"], merchant["stripe_account_id"], invoice["id"], rule)
                db.session.commit()
                run_ids.append(run.id)
            db.session.remove()

        def cpu_per_invoice(ids: list[int]) -> float:
            started = time.thread_time()
            with app.app_context():
                for run_id in ids:
                    jobs.sync_run_execute(run_id)  # looked up each time, so that instrument() can wrap it
                    db.session.remove()  # as AppWorker.perform_job does after each job
            return 1000 * (time.thread_time() - started) / len(ids)

        batches = [run_ids[1 + WARM_UP + k * INVOICES:1 + WARM_UP + (k + 1) * INVOICES] for k in range(4)]
        cpu_per_invoice(run_ids[:1 + WARM_UP])  # the first makes the customer and products; then warm
        plain = cpu_per_invoice(batches[0])
        counts = Counts()
        uninstall = counts.install()
        cpu_per_invoice(batches[1])
        uninstall()
        steps = Steps()
        instrument(steps)
        instrumented = cpu_per_invoice(batches[2])
        spent = dict(steps.spent)
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        cpu_per_invoice(batches[3])
        profile.disable()
        if os.environ.get("PROFILE_OUT"):
            profile.dump_stats(os.environ["PROFILE_OUT"])
        with app.app_context():
            statuses = set(db.session.scalars(db.select(SyncRun.status).where(SyncRun.id != run_ids[-1]).distinct()))
        assert statuses == {RunStatus.SUCCEEDED}, statuses

        print(f"{env['DATABASE_URL'].split(':')[0]}, one thread, {INVOICES} invoices (repeat customer, known products): "
              f"CPU per sync {plain:.2f} ms ({instrumented:.2f} ms instrumented); "
              f"{counts.statements / INVOICES:.1f} SQL statements and {counts.commits / INVOICES:.1f} commits per sync")
        for label in steps.order:
            ms = 1000 * spent.get(label, 0.0) / INVOICES
            print(f"  {label:70s} {ms:6.2f} ms {ms / instrumented:6.1%}")
        if os.environ.get("SHOW_SQL"):
            statements_of_one_sync(app, jobs, run_ids[-1])
        print("\nTop functions by own CPU time under cProfile:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
        if os.environ.get("SHOW_CUMULATIVE"):
            pstats.Stats(profile).sort_stats("cumulative").print_stats(os.environ["SHOW_CUMULATIVE"], 60)


if __name__ == "__main__":
    main()
