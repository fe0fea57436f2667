"""The Stripe webhook endpoint: verify, store, queue, answer. Nothing slow happens here."""

from __future__ import annotations

from flask import jsonify, request

from ..extensions import csrf
from ..runs.queueing import events_signal
from . import bp
from .services import WebhookRejected, event_store, intake_connection, webhook_event_verified


@bp.route("/webhooks/stripe/<webhook_key>", methods=["POST"])
@csrf.exempt
def stripe_event(webhook_key: str):
    payload = request.get_data(cache=False)
    with intake_connection() as connection:
        try:
            target, event = webhook_event_verified(connection, webhook_key, payload, request.headers.get("Stripe-Signature"))
        except WebhookRejected as rejected:
            return jsonify(error=rejected.reason), rejected.status
        event_id = event_store(connection, target, event, payload)
    if event_id is None:
        return jsonify(received=True, duplicate=True), 200
    # Only now that the event is committed may the dispatcher look for it; Redis down, the requeue pass queues it.
    events_signal(target.merchant_id)
    return jsonify(received=True), 200
