"""Storing verified Stripe events. Nothing here calls Stripe or e-conomic."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import Merchant, SyncRun, WebhookEvent
from .. import runs
from ..settings.sync_config import rule_for
from .rules import decide


class WebhookRejected(Exception):
    """A delivery we refuse, with the HTTP status and a short reason for Stripe's dashboard."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def merchant_by_webhook_key(webhook_key: str) -> Merchant | None:
    return db.session.scalar(select(Merchant).where(Merchant.webhook_key == webhook_key))


def event_verify(payload: bytes, signature: str | None, secret: str | None) -> dict:
    """The event as a dict when the payload is signed with `secret`; else `WebhookRejected`."""
    if not secret:
        raise WebhookRejected(400, "No webhook signing secret is configured for this merchant.")
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
        event = json.loads(text)
    except ValueError:
        raise WebhookRejected(400, "Body is not valid JSON.") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise WebhookRejected(400, "Body is not a Stripe event (no id or type).")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise WebhookRejected(400, "Body is not a Stripe event (no data.object).")
    return event


def _invoice_id(event: dict) -> str | None:
    obj = event["data"]["object"]
    if obj.get("object") == "invoice" and isinstance(obj.get("id"), str):
        return obj["id"]
    return None


def event_store(merchant: Merchant, event: dict, payload: bytes) -> WebhookEvent | None:
    """Store the event; None when this merchant has it already (Stripe delivers at least once)."""
    created = event.get("created")
    stored = WebhookEvent(
        merchant_id=merchant.id,
        stripe_event_id=event["id"][:255],
        type=event["type"][:100],
        livemode=bool(event.get("livemode")),
        api_version=(event.get("api_version") or None) if isinstance(event.get("api_version"), str) else None,
        stripe_created_at=datetime.fromtimestamp(created, timezone.utc) if isinstance(created, int) else None,
        stripe_invoice_id=_invoice_id(event),
        payload=payload.decode("utf-8"),
    )
    try:
        with db.session.begin_nested():
            db.session.add(stored)
    except IntegrityError:
        return None
    return stored


def event_route(merchant: Merchant, stored: WebhookEvent, event: dict) -> tuple[SyncRun | None, bool]:
    """Apply the merchant's rule: a run for the invoice (new or existing), or the event marked ignored."""
    rule = rule_for(merchant.id)
    decision = decide(stored.type, event["data"]["object"], rule)
    if not decision.sync or not stored.stripe_invoice_id:
        stored.outcome = "ignored"
        stored.ignored_reason = decision.reason or "The event names no invoice."
        return None, False
    run, created = runs.sync_run_create(merchant.id, stored.stripe_invoice_id, rule)
    stored.outcome = "queued" if created else "duplicate"
    if not created:
        stored.ignored_reason = f"A sync of this invoice into a {rule.DOCUMENT_TYPES[run.document_type]} exists already (run {run.id})."
    stored.sync_run_id = run.id
    return run, created
