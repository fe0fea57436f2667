"""The Stripe webhook endpoint: verify, store, answer. Nothing slow happens here, and nothing but the database:
the workers' dispatch pass queues the stored event's job (portal.runs.dispatch)."""

from __future__ import annotations

from flask import Response, jsonify, request

from ..extensions import csrf
from . import bp
from .services import WebhookRejected, event_store, intake_connection, webhook_event_verified

RECEIVED = b'{"received":true}\n'
DUPLICATE = b'{"duplicate":true,"received":true}\n'


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
    # The same answer every time, so built by hand: jsonify's serializer is a measurable share of a delivery.
    return Response(RECEIVED if event_id is not None else DUPLICATE, mimetype="application/json")
