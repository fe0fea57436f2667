"""Addresses others follow back to the portal: Stripe's webhook, e-conomic's return from its grant page, an
invitation link. They must be the portal's public address, not whatever host a request came in on."""

from __future__ import annotations

from flask import current_app, url_for


def public_url_for(endpoint: str, **values) -> str:
    """The endpoint's absolute URL: on PUBLIC_BASE_URL when set, else on this request's address."""
    base = current_app.config["PUBLIC_BASE_URL"]
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)
