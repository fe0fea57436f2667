"""The Stripe webhook endpoint: verify, store, answer. Nothing slow happens here."""

from __future__ import annotations

from flask import jsonify, request

from ..extensions import csrf, limiter
from ..runs.queueing import sync_run_enqueue_new
from . import bp
from .services import WebhookRejected, event_intake, event_verify, intake_connection, webhook_target


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
        intake = event_intake(connection, target, event, payload)
    if intake.duplicate:
        return jsonify(received=True, duplicate=True), 200
    # Only now that the run is committed may a worker see its job.
    if intake.new_run_id is not None:
        sync_run_enqueue_new(intake.new_run_id, intake.first_job_id)
    return jsonify(received=True), 200
