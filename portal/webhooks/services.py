"""Storing verified Stripe events. Nothing here calls Stripe or e-conomic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

import stripe
from sqlalchemy import select

from .. import runs  # a module reference: portal.runs imports settings, which import this package
from ..extensions import db
from ..models import Connection, Merchant, SyncRule, SyncRun, WebhookEvent, insert_if_absent, utcnow
from ..settings.sync_config import rule_for
from .rules import decide


class WebhookRejected(Exception):
    """A delivery we refuse, with the HTTP status and a short reason for Stripe's dashboard."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WebhookTarget:
    """Whose endpoint a delivery reached: the merchant, its signing secret and its sync rule."""

    merchant_id: int
    signing_secret: str | None
    rule: SyncRule | None  # None until the merchant's rule row exists (rule_for creates it)


def webhook_target(webhook_key: str) -> WebhookTarget | None:
    """The merchant behind a webhook URL, in one query (this runs on every delivery)."""
    row = db.session.execute(
        select(Merchant.id, Connection.stripe_webhook_secret, SyncRule)
        .outerjoin(Connection, Connection.merchant_id == Merchant.id)
        .outerjoin(SyncRule, SyncRule.merchant_id == Merchant.id)
        .where(Merchant.webhook_key == webhook_key)
    ).first()
    return WebhookTarget(*row) if row else None


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


@dataclass
class Intake:
    """What became of a verified event: stored or a duplicate, and the run it queued (if new)."""

    duplicate: bool
    new_run_id: int | None = None
    first_job_id: str | None = None  # the job id stored with the new run


def event_intake(target: WebhookTarget, event: dict, payload: bytes) -> Intake:
    """Store the event with what the merchant's rule made of it, creating the run it calls for.

    Both inserts are INSERT … ON CONFLICT DO NOTHING on unique keys, so repeated and concurrent
    deliveries agree without locks: one event row per Stripe event, one run per invoice and document.
    """
    invoice_id = _invoice_id(event)
    merchant_id = target.merchant_id
    rule = target.rule or rule_for(merchant_id)
    decision = decide(event["type"], event["data"]["object"], rule)
    outcome, reason = "ignored", decision.reason or "The event names no invoice."
    run_id = new_run_id = first_job_id = None
    if decision.sync and invoice_id:
        first_job_id = runs.job_id_for_new_run()
        new_run_id = runs.sync_run_insert(merchant_id, invoice_id, rule, job_id=first_job_id)
        run_id = new_run_id or db.session.scalar(
            select(SyncRun.id).where(*runs.sync_run_key(merchant_id, invoice_id, rule.document_type)))
        outcome = "queued" if new_run_id else "duplicate"
        reason = None if new_run_id else (
            f"A sync of this invoice into a {rule.DOCUMENT_TYPES[rule.document_type]} exists already (run {run_id}).")
    created = event.get("created")
    event_id = insert_if_absent(WebhookEvent, {
        "merchant_id": merchant_id,
        "stripe_event_id": event["id"][:255],
        "type": event["type"][:100],
        "livemode": bool(event.get("livemode")),
        "api_version": event["api_version"][:40] if isinstance(event.get("api_version"), str) else None,
        "stripe_created_at": datetime.fromtimestamp(created, timezone.utc) if isinstance(created, int) else None,
        "stripe_invoice_id": invoice_id,
        "received_at": utcnow(),
        "payload": payload.decode("utf-8"),
        "outcome": outcome,
        "ignored_reason": reason[:500] if reason else None,
        "sync_run_id": run_id,
    }, ["merchant_id", "stripe_event_id"])
    if event_id is None:
        return Intake(duplicate=True)
    return Intake(duplicate=False, new_run_id=new_run_id, first_job_id=first_job_id if new_run_id else None)
