"""Fixtures: a real database (SQLite file, or a fresh PostgreSQL schema when DATABASE_URL is set)
and a real Redis (an embedded Valkey, or REDIS_URL with keys under a prefix of this run only)."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from launch.embedded_redis import spawn as spawn_embedded_redis
from portal import create_app
from portal.extensions import db

from .helpers import make_account

RUN_ID = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session", autouse=True)
def instance_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("instance")
    os.environ["INSTANCE_PATH"] = str(path)
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    process, url = spawn_embedded_redis(tmp_path_factory.mktemp("valkey"), persist=False)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("postgres"):
        yield "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.db")
        return
    # A schema of our own, dropped afterwards: nothing else in the database is touched.
    schema = f"test_{RUN_ID}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(scope="session")
def base_config(database_url, redis_url):
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "RQ_QUEUE": f"invoice-sync-test-{RUN_ID}",
        "REDIS_KEY_PREFIX": f"invoice-sync-test-{RUN_ID}",
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
        "SECRET_KEY": "test-secret-key",
        "SESSION_COOKIE_SECURE": False,
        # OWASP's minimum for argon2id (19 MiB, 2 passes, 1 lane) keeps the suite quick.
        "ARGON2_TIME_COST": 2,
        "ARGON2_MEMORY_COST_KIB": 19456,
        "ARGON2_PARALLELISM": 1,
        "ECONOMIC_API_URL": "https://restapi.e-conomic.com",
        "STRIPE_API_BASE": "https://api.stripe.com",
    }


@pytest.fixture(scope="session")
def migrated_database(base_config):
    """The schema, made by the migrations exactly as production makes it."""
    from flask_migrate import upgrade

    app = create_app(base_config)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return True


@pytest.fixture
def app(base_config, migrated_database):
    """The app, with no context pushed: each test request gets its own, as in production
    (a context held open across requests would share `g` between them)."""
    app = create_app(dict(base_config))
    yield app
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as connection:
            for table in reversed(db.metadata.sorted_tables):
                connection.execute(table.delete())
        redis = app.extensions.get("redis")
        if redis is not None:
            # Only what this test run made: its own key prefix, queue and job ids.
            patterns = (f"{app.config['REDIS_KEY_PREFIX']}:*", f"rq:job:{app.config['REDIS_KEY_PREFIX']}-*", f"rq:*{app.config['RQ_QUEUE']}*")
            for pattern in patterns:
                for key in redis.scan_iter(match=pattern):
                    redis.delete(key)
            redis.srem("rq:queues", f"rq:queue:{app.config['RQ_QUEUE']}")
            redis.close()
        for engine in db.engines.values():  # the intake's engine too
            engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def account(app):
    """A merchant with one admin user."""
    with app.app_context():
        return make_account()


@pytest.fixture
def other_account(app):
    """A second merchant, whose data the first must never see."""
    with app.app_context():
        return make_account("Other Shop A/S", "owner@other.test")
