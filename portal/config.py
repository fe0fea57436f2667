"""Configuration read from environment variables, with defaults that are safe for local use.

Every value can be overridden by the environment; nothing here talks to the network.
Secrets that have no value configured (the Flask secret key, the encryption key) are generated
once into the instance folder, so a fresh clone works and restarts keep sessions and data readable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def instance_secret(instance_path: str, filename: str, make) -> str:
    """Read a secret kept in the instance folder, creating it (mode 0600) on first use."""
    path = Path(instance_path) / filename
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def embedded_redis_url(instance_path: str) -> str | None:
    """The URL of the embedded Redis-compatible server that `make run` started, if any."""
    path = Path(instance_path) / "embedded-redis.url"
    return path.read_text().strip() if path.exists() else None


def load_config(instance_path: str) -> dict:
    """Build the app's configuration from the environment."""
    secret_key = os.environ.get("SECRET_KEY") or instance_secret(
        instance_path, "secret_key", lambda: secrets.token_urlsafe(48)
    )
    keys = os.environ.get("ENCRYPTION_KEYS") or instance_secret(
        instance_path, "encryption.key", lambda: Fernet.generate_key().decode()
    )
    database_url = os.environ.get("DATABASE_URL") or (
        "sqlite:///" + str(Path(instance_path) / "portal.db")
    )
    if database_url.startswith("postgres://"):  # the spelling Heroku-style hosts hand out
        database_url = "postgresql://" + database_url[len("postgres://"):]
    redis_url = os.environ.get("REDIS_URL") or embedded_redis_url(instance_path)
    return {
        "SECRET_KEY": secret_key,
        # Newest key first; older keys still decrypt until `flask secrets rotate` re-encrypts.
        "ENCRYPTION_KEYS": [k.strip() for k in keys.split(",") if k.strip()],
        "SQLALCHEMY_DATABASE_URI": database_url,
        # A pooled connection idle this long is pinged before use (one that died meanwhile, say in a
        # database restart, is replaced); busy connections are not, a ping per request being a round trip.
        "DATABASE_PING_AFTER_IDLE_SECONDS": float(os.environ.get("DATABASE_PING_AFTER_IDLE_SECONDS", "10")),
        "REDIS_URL": redis_url,
        "RQ_QUEUE": os.environ.get("RQ_QUEUE", "invoice-sync"),
        # Our own Redis keys (caches, progress) start with this, so one Redis can serve several setups.
        "REDIS_KEY_PREFIX": os.environ.get("REDIS_KEY_PREFIX", "invoice-sync"),
        # A worker renews the lease of the run it is running every RUN_HEARTBEAT_SECONDS; a run "running"
        # whose lease has not been renewed for RUN_LEASE_SECONDS lost its worker (killed mid-run) and is taken
        # back by the next requeue pass: within lease + pass interval (90 s) of a live worker being there.
        "RUN_HEARTBEAT_SECONDS": env_int("RUN_HEARTBEAT_SECONDS", 10),
        "RUN_LEASE_SECONDS": env_int("RUN_LEASE_SECONDS", 60),
        "REQUEUE_EVERY_SECONDS": env_int("REQUEUE_EVERY_SECONDS", 30),
        # Every worker looks this often for events the webhook stored and queues their jobs (runs/dispatch.py):
        # the most an event waits before its job is queued, at the cost of one indexed read per look.
        "DISPATCH_EVERY_SECONDS": float(os.environ.get("DISPATCH_EVERY_SECONDS", "0.2")),
        # A run or stored event still waiting this long without a live job in Redis is queued again. A job
        # "started" this long without claiming its run (or deciding its event) is presumed dead: keep it
        # well above an event job's longest read of Stripe (two tries of at most HTTP_TIMEOUT_SECONDS).
        "REQUEUE_AFTER_SECONDS": env_int("REQUEUE_AFTER_SECONDS", 120),
        # Stripe's event bodies (up to 1 MiB each) are kept this long; the event's row and outcome stay.
        "EVENT_PAYLOAD_RETENTION_DAYS": env_int("EVENT_PAYLOAD_RETENTION_DAYS", 30),
        # Transient failures retry after 30 s, 60 s, 2 min … up to 6 h apart, 10 attempts in all (about a day).
        "RETRY_BASE_SECONDS": float(os.environ.get("RETRY_BASE_SECONDS", "30")),
        "RETRY_MAX_SECONDS": float(os.environ.get("RETRY_MAX_SECONDS", str(6 * 3600))),
        "RETRY_MAX_ATTEMPTS": env_int("RETRY_MAX_ATTEMPTS", 10),
        "ECONOMIC_CHOICES_CACHE_SECONDS": env_int("ECONOMIC_CHOICES_CACHE_SECONDS", 300),
        "ECONOMIC_API_URL": os.environ.get("ECONOMIC_API_URL", "https://restapi.e-conomic.com").rstrip("/"),
        # Where merchants open documents in e-conomic's own web app (links on the invoice timeline).
        "ECONOMIC_APP_URL": os.environ.get("ECONOMIC_APP_URL", "https://secure.e-conomic.com").rstrip("/"),
        # "Connect e-conomic" (e-conomic's app-install flow): the grant page, and the integration's app in
        # e-conomic's developer agreement. Without both app tokens, merchants paste their tokens instead.
        # The App Secret Token is a secret: it is stored encrypted with each connection and never logged.
        "ECONOMIC_INSTALL_URL": os.environ.get("ECONOMIC_INSTALL_URL", "https://secure.e-conomic.com/secure/api1/requestaccess.aspx"),
        "ECONOMIC_APP_PUBLIC_TOKEN": os.environ.get("ECONOMIC_APP_PUBLIC_TOKEN", "").strip(),
        "ECONOMIC_APP_SECRET_TOKEN": os.environ.get("ECONOMIC_APP_SECRET_TOKEN", "").strip(),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/"),
        # Set by `make demo`: where the demo's fake Stripe takes "send a test invoice" orders.
        "DEMO_STRIPE_CONTROL_URL": os.environ.get("DEMO_STRIPE_CONTROL_URL", "").rstrip("/"),
        "HTTP_TIMEOUT_SECONDS": float(os.environ.get("HTTP_TIMEOUT_SECONDS", "20")),
        # Cookies: HttpOnly and SameSite=Lax always; Secure unless running locally over plain HTTP.
        "SESSION_COOKIE_SECURE": env_bool("SESSION_COOKIE_SECURE", True),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "FORCE_HTTPS": env_bool("FORCE_HTTPS", False),
        "TRUSTED_PROXIES": env_int("TRUSTED_PROXIES", 0),
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", "").rstrip("/"),
        # A signed-in session ends after this long without a request, and this long after signing in.
        "SESSION_IDLE_MINUTES": env_int("SESSION_IDLE_MINUTES", 60),
        "SESSION_MAX_HOURS": env_int("SESSION_MAX_HOURS", 12),
        # Sign-in attempts allowed per window (portal/auth/limits.py): per e-mail from one address, and per
        # address whatever the e-mail. Each is counted before the password is checked, and given back when
        # it was right, so only failures use them up.
        "SIGNIN_ATTEMPTS_PER_ACCOUNT": env_int("SIGNIN_ATTEMPTS_PER_ACCOUNT", 5),
        "SIGNIN_ATTEMPTS_PER_ADDRESS": env_int("SIGNIN_ATTEMPTS_PER_ADDRESS", 20),
        "SIGNIN_WINDOW_MINUTES": env_int("SIGNIN_WINDOW_MINUTES", 15),
        # Argon2id cost; the defaults are RFC 9106's low-memory profile (64 MiB, 3 passes, 4 lanes),
        # above OWASP's minimum of 19 MiB and 2 passes.
        "ARGON2_TIME_COST": env_int("ARGON2_TIME_COST", 3),
        "ARGON2_MEMORY_COST_KIB": env_int("ARGON2_MEMORY_COST_KIB", 65536),
        "ARGON2_PARALLELISM": env_int("ARGON2_PARALLELISM", 4),
        "MAX_CONTENT_LENGTH": env_int("MAX_CONTENT_LENGTH", 1024 * 1024),
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the session
    }
