"""Shared set-up for the benchmarks: a temporary instance, its database, a Redis, a merchant."""

from __future__ import annotations

import os
import re
import statistics
import tempfile
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_benchmark"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM), in MiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


@contextmanager
def database_url(tmp: Path):
    """DATABASE_URL with a fresh schema of our own (dropped afterwards), or a SQLite file in `tmp`."""
    import uuid
    from urllib.parse import quote

    from sqlalchemy import create_engine, text

    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("postgres"):
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def environment():
    """Env for the app and its processes: a temporary SQLite file (or DATABASE_URL) and a Redis
    (REDIS_URL, or an embedded Valkey started here)."""
    from launch.embedded_redis import spawn

    import uuid

    with tempfile.TemporaryDirectory() as folder, database_url(Path(folder)) as url:
        tmp = Path(folder)
        run = uuid.uuid4().hex[:8]
        env = {
            "INSTANCE_PATH": str(tmp), "SECRET_KEY": "bench", "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": url, "SESSION_COOKIE_SECURE": "0",
            # Our own queue and key prefix: a shared Redis keeps everything else it holds.
            "RQ_QUEUE": f"invoice-sync-bench-{run}", "REDIS_KEY_PREFIX": f"invoice-sync-bench-{run}",
        }
        redis_process = None
        if os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            redis_process, env["REDIS_URL"] = spawn(tmp / "valkey", persist=False)
        os.environ.update(env)
        try:
            yield env, tmp
        finally:
            if redis_process is not None:
                redis_process.terminate()
                redis_process.wait()
            else:
                import redis

                connection = redis.Redis.from_url(env["REDIS_URL"])
                for pattern in (f"*{env['REDIS_KEY_PREFIX']}*",):
                    for key in connection.scan_iter(match=pattern):
                        connection.delete(key)
                connection.srem("rq:queues", f"rq:queue:{env['RQ_QUEUE']}")


def prepare_merchant(app, stripe_key: str = "sk_test_fake") -> dict:
    """Migrate and create a merchant with connections, a Paid → Draft Invoice rule and settings."""
    from flask_migrate import upgrade

    from portal.auth.services import merchant_create
    from portal.extensions import db
    from portal.models import Connection, SyncRule, SyncSettings

    with app.app_context():
        upgrade()
        merchant = merchant_create("Bench ApS")
        stripe_account = merchant.stripe_accounts[0]
        stripe_account.secret_key, stripe_account.webhook_secret = stripe_key, SECRET
        db.session.add(Connection(merchant_id=merchant.id, economic_app_secret_token="app", economic_agreement_grant_token="grant"))
        db.session.add(SyncRule(merchant_id=merchant.id, trigger="paid", document_type="draft_invoice", write_back_to_stripe=False))
        db.session.add(SyncSettings(merchant_id=merchant.id, payment_terms_number=1, customer_group_number=1, vat_zone_domestic=1,
                                    vat_zone_eu_with_vat_id=2, vat_zone_eu_without_vat_id=2, vat_zone_outside_eu=3,
                                    layout_number=19, new_product_group_number=1, default_product_number="MISC"))
        db.session.commit()
        return {"id": merchant.id, "stripe_account_id": stripe_account.id, "webhook_key": stripe_account.webhook_key}


def analyze_tables(app) -> bool:
    """On PostgreSQL, ANALYZE the app's tables (in the bench's own schema), as autovacuum does on a
    production server while they grow; returns True when this server's autovacuum is off.

    A test server with autovacuum off never gathers statistics, and without them the planner finds an
    invoice's run through the (merchant, status, updated_at) index, reading every run of the merchant:
    a delivery's database CPU then grows with each one stored (about 0.2 ms a thousand runs).
    """
    from sqlalchemy import text

    from portal.extensions import db

    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            return False
        with db.engine.connect() as connection:
            autovacuum_off = connection.exec_driver_sql("SHOW autovacuum").scalar() == "off"
            connection.execute(text("ANALYZE " + ", ".join(f'"{table}"' for table in db.metadata.tables)))
            connection.commit()
        db.engine.dispose()
    return autovacuum_off
