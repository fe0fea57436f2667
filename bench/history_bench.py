"""Sync history page cost at 1,000 and 100,000 runs for one merchant.

    .venv/bin/python bench/history_bench.py            # SQLite file in a temporary folder
    DATABASE_URL=postgresql://… .venv/bin/python bench/history_bench.py   # a fresh schema, dropped after

Seeds runs spread over a year, then times GET /history (first page) and a deep page (a keyset cursor
90 % of the way down), as a signed-in merchant sees them, and prints the medians. Goal: the deep page
at 100,000 runs costs no more than twice the first page at 1,000.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from portal import create_app  # noqa: E402
from portal.auth.services import merchant_create, user_create  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.history.selectors import encode_cursor  # noqa: E402
from portal.models import SyncRun  # noqa: E402

REPEATS = 30
PASSWORD = "benchmark password 1"


def database_url(tmp: Path) -> tuple[str, callable]:
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("postgres"):
        return f"sqlite:///{tmp / 'bench.db'}", lambda: None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop():
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}", drop


def seed(merchant_id: int, stripe_account_id: int, start: int, count: int) -> None:
    now = datetime.now(timezone.utc)
    statuses = ["succeeded"] * 17 + ["failed", "retrying", "queued"]
    rows = []
    for n in range(start, start + count):
        moment = now - timedelta(minutes=5 * n)  # newest first, about a year for 100,000
        rows.append(dict(
            merchant_id=merchant_id, stripe_account_id=stripe_account_id, stripe_invoice_id=f"in_bench_{n}", document_type="draft_invoice", trigger="paid",
            write_back_to_stripe=True, status=statuses[n % len(statuses)], attempts=1, will_retry=False,
            document_create_started=True, stripe_invoice_number=f"BENCH-{n:06d}", customer_name=f"Customer {n % 997}",
            customer_email=f"customer{n % 997}@example.com", currency="DKK", total_minor=10000 + n,
            economic_draft_number=n, created_at=moment, updated_at=moment,
        ))
        if len(rows) == 5000:
            db.session.execute(insert(SyncRun), rows)
            rows = []
    if rows:
        db.session.execute(insert(SyncRun), rows)
    db.session.commit()
    # Fresh statistics, as autovacuum (PostgreSQL) would soon have; SQLite's planner needs none here.
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE sync_runs"))
        db.session.commit()


def median_ms(client, url: str) -> float:
    client.get(url)  # warm
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(samples)


def deep_cursor(merchant_id: int, total: int) -> str:
    position = int(total * 0.9)
    run = db.session.execute(
        db.select(SyncRun.updated_at, SyncRun.id).where(SyncRun.merchant_id == merchant_id)
        .order_by(SyncRun.updated_at.desc(), SyncRun.id.desc()).offset(position).limit(1)
    ).one()
    return encode_cursor(run.updated_at, run.id)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        os.environ["INSTANCE_PATH"] = str(tmp)
        url, drop = database_url(tmp)
        app = create_app({
            "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "SESSION_COOKIE_SECURE": False,
            "ENCRYPTION_KEYS": [Fernet.generate_key().decode()], "RATELIMIT_STORAGE_URI": "memory://",
            "ARGON2_TIME_COST": 2, "ARGON2_MEMORY_COST_KIB": 19456, "ARGON2_PARALLELISM": 1,
        })
        try:
            with app.app_context():
                from flask_migrate import upgrade

                upgrade()
                merchant = merchant_create("Bench ApS")
                user_create(merchant, "bench@example.com", PASSWORD)
                db.session.commit()
                merchant_id, stripe_account_id = merchant.id, merchant.stripe_accounts[0].id
            client = app.test_client()
            page = client.get("/login").get_data(as_text=True)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
            client.post("/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token})
            results = {}
            seeded = 0
            for total in (1_000, 100_000):
                with app.app_context():
                    seed(merchant_id, stripe_account_id, seeded, total - seeded)
                    seeded = total
                    cursor = deep_cursor(merchant_id, total)
                first = median_ms(client, "/history")
                deep = median_ms(client, f"/history?after={quote(cursor)}")
                results[total] = (first, deep)
                print(f"{total:>7,} runs: first page {first:7.2f} ms   deep page (90 %) {deep:7.2f} ms   (median of {REPEATS})")
            ratio = results[100_000][1] / results[1_000][0]
            print(f"deep page at 100,000 / first page at 1,000 = {ratio:.2f} (goal ≤ 2.00)  [{url.split(':')[0]}]")
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
            drop()


if __name__ == "__main__":
    main()
