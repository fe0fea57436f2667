from flask import Blueprint

bp = Blueprint("webhooks", __name__)

# The Stripe events a merchant enables on the webhook endpoint.
WEBHOOK_EVENTS = ("invoice.sent", "invoice.paid", "invoice.finalized", "invoice.voided")

from . import routes  # noqa: E402,F401  (registers the views)
