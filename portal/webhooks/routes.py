"""The Stripe webhook endpoint: verify, store, answer. Nothing slow happens here."""

from __future__ import annotations

from flask import jsonify, request

from ..extensions import csrf, db, limiter
from .. import runs  # a module reference: portal.runs imports settings, which import this package
from . import bp
from .services import WebhookRejected, event_route, event_store, event_verify, merchant_by_webhook_key


@bp.route("/webhooks/stripe/<webhook_key>", methods=["POST"])
@csrf.exempt
@limiter.exempt
def stripe_event(webhook_key: str):
    try:
        merchant = merchant_by_webhook_key(webhook_key)
        if merchant is None:
            raise WebhookRejected(404, "Unknown webhook URL.")
        secret = merchant.connection.stripe_webhook_secret if merchant.connection else None
        payload = request.get_data(cache=False)
        event = event_verify(payload, request.headers.get("Stripe-Signature"), secret)
    except WebhookRejected as rejected:
        return jsonify(error=rejected.reason), rejected.status
    stored = event_store(merchant, event, payload)
    if stored is None:
        db.session.rollback()
        return jsonify(received=True, duplicate=True), 200
    run, created = event_route(merchant, stored, event)
    db.session.commit()
    # Only now that the run is committed may a worker see its job.
    if run is not None and created:
        runs.sync_run_enqueue(run)
    return jsonify(received=True), 200
