"""The merchant's webhook endpoint in Stripe, made, kept in step and deleted through Stripe's API.

One endpoint per Stripe account: the signing secret Stripe returns when it creates the endpoint goes into the
account's encrypted `webhook_secret`, the endpoint's id into `webhook_endpoint_id`. Each function changes the
account only when Stripe agreed, or (404) to forget an endpoint deleted in Stripe meanwhile; the caller
commits. Every refusal is a `WebhookEndpointError` whose message is for the merchant.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import stripe

from ..models import StripeAccount
from ..sync.stripe_source import DEFAULT_API_BASE, stripe_client, stripe_error_words

TIMEOUT = (5.0, 30.0)  # a person waits on these calls


class WebhookEndpointError(Exception):
    """Stripe (or the portal) refused; `message` says why in the merchant's words. `forgotten`: the endpoint
    was gone in Stripe and the account forgot it, a change the caller commits."""

    def __init__(self, message: str, forgotten: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.forgotten = forgotten


def webhook_endpoint_create(account: StripeAccount, url: str, events: list[str], *, api_base: str = DEFAULT_API_BASE) -> str:
    """Create the endpoint for `url` with `events` and store its id and signing secret. Returns the id."""
    if account.webhook_endpoint_id:
        raise WebhookEndpointError(f"The webhook endpoint is already created in Stripe ({account.webhook_endpoint_id}): "
                                   "use Update the endpoint's events instead of making a second one.")
    client = _client(account, api_base)
    try:
        endpoint = client.v1.webhook_endpoints.create(params={
            "url": url, "enabled_events": list(events), "description": f"Invoice Sync (e-conomic): {account.label}",
        })
    except stripe.StripeError as error:
        raise WebhookEndpointError(_refusal(error, url)) from error
    account.webhook_endpoint_id = endpoint.id
    account.webhook_secret = endpoint.secret
    return endpoint.id


def webhook_endpoint_update(account: StripeAccount, events: list[str], *, api_base: str = DEFAULT_API_BASE) -> None:
    """Set the endpoint's `enabled_events` to `events`."""
    endpoint_id = _endpoint_id(account)
    client = _client(account, api_base)
    try:
        client.v1.webhook_endpoints.update(endpoint_id, params={"enabled_events": list(events)})
    except stripe.StripeError as error:
        _forget_if_gone(account, error)
        raise WebhookEndpointError(_refusal(error)) from error


def webhook_endpoint_delete(account: StripeAccount, *, api_base: str = DEFAULT_API_BASE) -> None:
    """Delete the endpoint in Stripe and forget its id and signing secret."""
    endpoint_id = _endpoint_id(account)
    client = _client(account, api_base)
    try:
        client.v1.webhook_endpoints.delete(endpoint_id)
    except stripe.StripeError as error:
        _forget_if_gone(account, error)
        raise WebhookEndpointError(_refusal(error)) from error
    _forget(account)


def _client(account: StripeAccount, api_base: str) -> stripe.StripeClient:
    if not account.secret_key:
        raise WebhookEndpointError(f"Enter and save the secret key of the Stripe account “{account.label}” first.")
    return stripe_client(account.secret_key, api_base, timeout=TIMEOUT)


def _endpoint_id(account: StripeAccount) -> str:
    if not account.webhook_endpoint_id:
        raise WebhookEndpointError("No webhook endpoint was created from here: use Create the webhook endpoint for me first.")
    return account.webhook_endpoint_id


def _forget(account: StripeAccount) -> None:
    account.webhook_endpoint_id = None
    account.webhook_secret = None


def _forget_if_gone(account: StripeAccount, error: stripe.StripeError) -> None:
    if error.http_status == 404:
        endpoint_id = account.webhook_endpoint_id
        _forget(account)
        raise WebhookEndpointError(f"The webhook endpoint {endpoint_id} no longer exists in Stripe (deleted there?), so the "
                                   "portal forgot it and its signing secret. Create it again, or paste a signing secret.",
                                   forgotten=True) from error


def _refusal(error: stripe.StripeError, url: str | None = None) -> str:
    if url is not None and (error.param if isinstance(error, stripe.InvalidRequestError) else None) == "url" and _is_local(url):
        return (f"Stripe cannot reach {url}: it is an address on this computer or network, not on the internet. Set "
                "PUBLIC_BASE_URL to the portal's public address (for example https://sync.example.com) and try again, "
                "or add the endpoint in Stripe by hand and paste its signing secret.")
    if isinstance(error, stripe.APIConnectionError):
        return "Stripe could not be reached; nothing was changed. Try again in a moment."
    reason = stripe_error_words(error)
    return f"Stripe refused: {reason}"


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified
