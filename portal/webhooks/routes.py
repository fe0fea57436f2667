"""The Stripe webhook endpoint: verify, store, queue, answer. Nothing slow happens here."""

from __future__ import annotations

from flask import jsonify, request

from ..extensions import csrf, limiter
from ..runs.queueing import event_enqueue
from . import bp
from .services import WebhookRejected, event_store, event_verify, intake_connection, webhook_target


@bp.route("/webhooks/stripe/<webhook_key>", methods=["POST"])
@csrf.exempt
@limiter.exempt
def stripe_event(webhook_key: str):
    with intake_connection() as connection:
        try:
            target = webhook_target(connection, webhook_key)
            if target is None:
                raise WebhookRejected(404, "Unknown webhook URL.")
            payload = request.get_data(cache=False)
            event = event_verify(payload, request.headers.get("Stripe-Signature"), target.signing_secret)
        except WebhookRejected as rejected:
            return jsonify(error=rejected.reason), rejected.status
        event_id = event_store(connection, target.merchant_id, event, payload)
    if event_id is None:
        return jsonify(received=True, duplicate=True), 200
    # Only now that the event is committed may a worker see its job; Redis down, the requeue pass queues it.
    event_enqueue(event_id)
    return jsonify(received=True), 200
