"""The Stripe webhook endpoint: verify, store, answer. Nothing slow happens here."""

from __future__ import annotations

from flask import jsonify, request

from ..extensions import csrf, db, limiter
from .. import runs  # a module reference: portal.runs imports settings, which import this package
from . import bp
from sqlalchemy import update

from ..models import SyncRun
from .services import WebhookRejected, event_intake, event_verify, merchant_by_webhook_key


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
    intake = event_intake(merchant, event, payload)
    if intake.duplicate:
        db.session.rollback()  # nothing of this delivery is kept: the first one was
        return jsonify(received=True, duplicate=True), 200
    if intake.new_run_id is not None:  # the job id goes in with the run: one commit, not two
        job_id = runs.job_id_for(intake.new_run_id, 1)
        db.session.execute(update(SyncRun).where(SyncRun.id == intake.new_run_id).values(job_id=job_id))
    db.session.commit()
    # Only now that the run is committed may a worker see its job.
    if intake.new_run_id is not None:
        runs.sync_run_enqueue_id(intake.new_run_id, attempt=1, job_id_committed=True)
    return jsonify(received=True), 200
