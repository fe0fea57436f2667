"""Where a webhook delivery's CPU goes, in one process and one thread, beside the no-op route.

    .venv/bin/python bench/intake_profile.py    (DELIVERIES=2000; DATABASE_URL / REDIS_URL as for the benches)

The WSGI environs are built beforehand and handed straight to the app (bench/bench_wsgi.py's, with the
no-op route), so no HTTP client or server is in the figures: only what a gunicorn worker's thread runs
for a request. Prints, per request:

1. CPU time of the no-op route and of a delivery, no instrumentation;
2. a delivery's CPU by step, timed with the thread's CPU clock around a dozen functions (waiting on the
   database or Redis is not CPU and is not counted; the steps nest, each line includes those under it);
3. on PostgreSQL, the CPU the database backend spent on each statement (/proc/<pid>/schedstat, so
   only when the server runs on this machine);
4. the top functions by their own CPU time under cProfile (which inflates small, frequent calls: read
   it for names, and 2. for shares).
"""

from __future__ import annotations

import cProfile
import functools
import os
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import SECRET, analyze_tables, environment, prepare_merchant  # noqa: E402
from doubles.stripe import make_invoice, signed_event  # noqa: E402

DELIVERIES = int(os.environ.get("DELIVERIES", 2000))
WARM_UP = 200


class Steps:
    """CPU seconds of this thread spent inside each wrapped function."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.order: list[str] = []

    def wrap(self, owner, name: str, label: str) -> None:
        """Time `owner.name` under `label` (a step the code no longer has is left out)."""
        function = getattr(owner, name, None)
        if function is None:
            return
        self.order.append(label)

        @functools.wraps(function)
        def timed(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.spent[label] += time.thread_time() - started

        setattr(owner, name, timed)


class OrjsonWithTimedLoads:
    """The orjson module as portal.webhooks.services sees it, with loads timed."""

    def __init__(self, steps: Steps) -> None:
        self.loads = orjson.loads
        steps.wrap(self, "loads", "      orjson.loads of the event")

    def __getattr__(self, name):
        return getattr(orjson, name)


class BackendCpu:
    """CPU the PostgreSQL backend spent on each statement, by statement (nanoseconds, schedstat)."""

    def __init__(self) -> None:
        self.spent: dict[str, int] = defaultdict(int)

    @staticmethod
    def _ns(pid: int) -> int:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])

    def install(self):
        import sqlalchemy.engine

        original = sqlalchemy.engine.Connection._execute_context

        def timed(connection, dialect, constructor, statement, *args, **kwargs):
            pid = connection.connection.dbapi_connection.info.backend_pid
            before = self._ns(pid)
            try:
                return original(connection, dialect, constructor, statement, *args, **kwargs)
            finally:
                text = " ".join(str(statement).split())
                if not text.startswith(("ANALYZE", "SHOW")):  # analyze_tables's, between batches
                    self.spent[text[:70]] += self._ns(pid) - before

        sqlalchemy.engine.Connection._execute_context = timed
        return lambda: setattr(sqlalchemy.engine.Connection, "_execute_context", original)


def instrument(app, steps: Steps) -> None:
    import sqlalchemy.engine
    import stripe

    import portal.crypto
    import portal.webhooks.routes as routes
    import portal.webhooks.services as services

    steps.wrap(app, "wsgi_app", "Flask app (wsgi_app)")
    steps.wrap(app, "preprocess_request", "  before_request hooks (talisman, CSRF, …)")
    steps.wrap(app, "dispatch_request", "  the view (stripe_event)")
    steps.wrap(routes, "webhook_event_verified", "    merchant found, event verified (webhook_event_verified)")
    steps.wrap(services, "webhook_target", "      merchant and secret (webhook_target, kept 30 s)")
    steps.wrap(portal.crypto.SecretBox, "decrypt", "      signing secret decrypted (Fernet)")
    steps.wrap(services, "event_verify", "      event_verify")
    steps.wrap(stripe.WebhookSignature, "verify_header", "      Stripe signature check (HMAC-SHA256)")
    services.orjson = OrjsonWithTimedLoads(steps)
    steps.wrap(routes, "intake_connection", "    pooled connection checked out (intake_connection)")
    steps.wrap(routes, "event_store", "    event stored (event_store: INSERT … ON CONFLICT, commit)")
    steps.wrap(sqlalchemy.engine.Connection, "commit", "      commit")
    steps.wrap(routes, "Response", "    the answer (a fixed body)")
    steps.wrap(app, "process_response", "  after_request hooks (talisman headers, …)")
    steps.wrap(sqlalchemy.engine.Connection, "_execute_context", "  every SQL statement (all steps)")


def main() -> None:
    from werkzeug.test import EnvironBuilder

    redis = "Redis at REDIS_URL" if os.environ.get("REDIS_URL") else "embedded Valkey"
    with environment() as (env, tmp):
        from bench.bench_wsgi import app

        merchant = prepare_merchant(app)
        invoice, _, _ = make_invoice(number="PROFILE")
        url = f"/webhooks/stripe/{merchant['webhook_key']}"

        def environs(path: str, count: int, first: int) -> list[dict]:
            made = []
            for n in range(first, first + count):
                payload, signature = signed_event("invoice.paid", {**invoice, "id": f"in_profile_{n}"}, SECRET, f"evt_profile_{n}")
                made.append(EnvironBuilder(path, method="POST", data=payload, base_url="http://127.0.0.1:8000",
                                           headers={"Stripe-Signature": signature, "Content-Type": "application/json"}).get_environ())
            return made

        statuses = []

        def start_response(status, headers, exc_info=None):
            statuses.append(status)

        def cpu_per_request(batch: list[dict]) -> float:
            analyze_tables(app)  # as autovacuum would as the tables grow (a test server may have it off)
            started = time.thread_time()
            for environ in batch:
                for _ in app(environ, start_response):
                    pass
            return 1000 * (time.thread_time() - started) / len(batch)

        cpu_per_request(environs("/bench/noop", WARM_UP, 0))
        cpu_per_request(environs(url, WARM_UP, 0))
        noop = cpu_per_request(environs("/bench/noop", DELIVERIES, 0))
        delivery = cpu_per_request(environs(url, DELIVERIES, WARM_UP))
        steps = Steps()
        instrument(app, steps)
        instrumented = cpu_per_request(environs(url, DELIVERIES, WARM_UP + DELIVERIES))
        spent = dict(steps.spent)  # the wrappers stay on under cProfile
        backend = None
        if env["DATABASE_URL"].startswith("postgres"):
            backend = BackendCpu()
            uninstall = backend.install()
            cpu_per_request(environs(url, DELIVERIES, WARM_UP + 3 * DELIVERIES))
            uninstall()
        profile = cProfile.Profile(time.thread_time)
        batch = environs(url, DELIVERIES, WARM_UP + 4 * DELIVERIES)
        profile.enable()
        cpu_per_request(batch)
        profile.disable()
        assert set(statuses) == {"200 OK"}, set(statuses)

        database = env["DATABASE_URL"].split(":")[0]
        print(f"{database} + {redis}, "
              f"one thread, {DELIVERIES} requests a route: CPU per request {noop:.3f} ms for the no-op route, "
              f"{delivery:.3f} ms for a delivery ({instrumented:.3f} ms instrumented)")
        for label in steps.order:
            ms = 1000 * spent.get(label, 0.0) / DELIVERIES
            print(f"  {label:78s} {ms:6.3f} ms {ms / instrumented:6.1%}")
        if backend is not None:
            total = sum(backend.spent.values()) / 1e6 / DELIVERIES
            print(f"\nPostgreSQL backend CPU per delivery: {total:.3f} ms, by statement:")
            for statement, ns in sorted(backend.spent.items(), key=lambda item: -item[1]):
                print(f"  {ns / 1e6 / DELIVERIES:6.3f} ms  {statement}")
        print("\nTop functions by own CPU time under cProfile:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
