"""The webhook's work: find the merchant, verify the signature, store the event. Nothing here calls Stripe or
e-conomic or decides what an event makes: a job does that (portal.runs.jobs.event_job)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
import sqlalchemy as sa
import stripe
from flask import current_app
from sqlalchemy import bindparam, select

from ..extensions import INTAKE_ENGINE, db
from ..models import StripeAccount, WebhookEvent, insert_if_absent, utcnow


class WebhookRejected(Exception):
    """A delivery we refuse, with the HTTP status and a short reason for Stripe's dashboard."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WebhookTarget:
    """Whose endpoint a delivery reached: the merchant, its Stripe account, and that account's signing secret."""

    merchant_id: int
    stripe_account_id: int
    signing_secret: str | None


# Built once: building a statement costs more CPU than running the cached one.
_TARGET_QUERY = select(StripeAccount.merchant_id, StripeAccount.id, StripeAccount.webhook_secret).where(
    StripeAccount.webhook_key == bindparam("webhook_key"))


TARGET_CACHE_SECONDS = 30.0


def webhook_target(connection: sa.Connection, webhook_key: str, fresh: bool = False) -> WebhookTarget | None:
    """The merchant and Stripe account behind a webhook URL, and its signing secret (this runs on every delivery).

    Read in one query and kept for TARGET_CACHE_SECONDS in this process: the query and the secret's
    decryption are a large share of a delivery. `fresh` reads it again (a signature that does not verify
    against the kept secret is checked against the saved one, so a new secret works at once). Callers
    pass a Core connection rather than using the ORM session: on this path its bookkeeping costs more.
    """
    kept: dict[str, tuple[float, WebhookTarget]] = current_app.extensions.setdefault("webhook_targets", {})
    now = time.monotonic()
    if not fresh:
        cached = kept.get(webhook_key)
        if cached is not None and cached[0] > now:
            return cached[1]
    row = connection.execute(_TARGET_QUERY, {"webhook_key": webhook_key}).first()
    if row is None:
        kept.pop(webhook_key, None)
        return None
    target = WebhookTarget(row.merchant_id, row.id, row.webhook_secret)
    kept[webhook_key] = (now + TARGET_CACHE_SECONDS, target)
    return target


def webhook_event_verified(connection: sa.Connection, webhook_key: str, payload: bytes,
                           signature: str | None) -> tuple[WebhookTarget, dict]:
    """Whose a delivery is and its verified event; `WebhookRejected` when the URL is unknown or the signature
    does not check out against the account's signing secret as saved now."""
    target = webhook_target(connection, webhook_key)
    if target is None:
        raise WebhookRejected(404, "Unknown webhook URL.")
    try:
        return target, event_verify(payload, signature, target.signing_secret)
    except WebhookRejected:
        saved = webhook_target(connection, webhook_key, fresh=True)
        if saved is None:
            raise WebhookRejected(404, "Unknown webhook URL.") from None
        if saved == target:
            raise
        return saved, event_verify(payload, signature, saved.signing_secret)


def event_verify(payload: bytes, signature: str | None, secret: str | None) -> dict:
    """The event as a dict when the payload is signed with `secret`; else `WebhookRejected`."""
    if not secret:
        raise WebhookRejected(400, "No webhook signing secret is configured for this Stripe account.")
    if not signature:
        raise WebhookRejected(400, "Missing Stripe-Signature header.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(400, "Body is not UTF-8.") from None
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
    except stripe.SignatureVerificationError as error:
        raise WebhookRejected(400, f"Signature verification failed: {error.user_message or error}") from None
    try:
        event = orjson.loads(payload)  # a fifth of json.loads' CPU on a Stripe event, a tenth of a delivery's
    except orjson.JSONDecodeError:
        raise WebhookRejected(400, "Body is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise WebhookRejected(400, "Body is not a Stripe event (no id or type).")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookRejected(400, "Body is not a Stripe event (no data.object).")
    return event


EVENT_KEY = ["merchant_id", "stripe_event_id"]

# SQLite takes one writer at a time, and a writer that finds it locked sleeps (1, 2, 5, 10 … ms) before it
# tries again. The intake's threads in one process take turns here instead, on a lock that wakes the next at
# once: at 16 connections the intake's p99 fell from 107 to 59 ms (bench/intake_bench.py).
_SQLITE_WRITER = threading.Lock()


def event_store(connection: sa.Connection, target: WebhookTarget, event: dict, payload: bytes) -> int | None:
    """Store a verified event, undecided ("received"): its id, or None when it was stored before (a
    repeated delivery keeps nothing of its own). One INSERT … ON CONFLICT DO NOTHING on the event's
    unique key, so concurrent deliveries agree without locks (on SQLite, this process's threads write one at a
    time). What the event makes is decided by a job."""
    row = _event_row(target, event, payload)
    with _SQLITE_WRITER if connection.dialect.name == "sqlite" else nullcontext():
        event_id = insert_if_absent(WebhookEvent, row, EVENT_KEY, on=connection)
    connection.commit()
    return event_id


def _invoice_id(event: dict) -> str | None:
    obj = event["data"]["object"]
    if obj.get("object") == "invoice" and isinstance(obj.get("id"), str):
        return obj["id"]
    return None


def _event_row(target: WebhookTarget, event: dict, payload: bytes) -> dict:
    created = event.get("created")
    return {
        "merchant_id": target.merchant_id,
        "stripe_account_id": target.stripe_account_id,
        "stripe_event_id": event["id"][:255],
        "type": event["type"][:100],
        "livemode": bool(event.get("livemode")),
        "api_version": event["api_version"][:40] if isinstance(event.get("api_version"), str) else None,
        "stripe_created_at": datetime.fromtimestamp(created, timezone.utc) if isinstance(created, int) else None,
        "stripe_invoice_id": _invoice_id(event),
        "received_at": utcnow(),
        "payload": payload.decode("utf-8"),
        "outcome": "received",
    }


@contextmanager
def intake_connection() -> Iterator[sa.Connection]:
    """A pooled Core connection for one delivery, from the intake's engine, in autocommit: the intake's one
    INSERT is atomic on its own. On PostgreSQL that saves the BEGIN and COMMIT round trips; on SQLite the
    write lock is then held only inside that one statement, never across a switch between Python threads,
    so concurrent deliveries rarely find the database locked (a locked SQLite makes the waiter sleep,
    leaving the CPU idle)."""
    with db.engines[INTAKE_ENGINE].connect() as connection:
        yield connection
