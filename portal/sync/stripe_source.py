"""Everything we read from Stripe goes through the official SDK, via a client made here."""

from __future__ import annotations

import stripe

DEFAULT_API_BASE = "https://api.stripe.com"


def stripe_client(api_key: str, api_base: str = DEFAULT_API_BASE, max_network_retries: int = 2,
                  timeout: float | tuple[float, float] | None = None) -> stripe.StripeClient:
    """A StripeClient for one merchant's key, pointed at `api_base` (a staging server or a test double).

    `timeout` (seconds, or (connect, read)) for reads a person waits on; the SDK's default is 80 s.
    """
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=max_network_retries,
        http_client=stripe.RequestsClient(timeout=timeout) if timeout is not None else None,
    )


def key_mode(api_key: str) -> str:
    """'test' or 'live', read from the key's prefix (sk_test_…, rk_live_…)."""
    return "test" if "_test_" in api_key else "live"


def check_invoice_access(client: stripe.StripeClient) -> None:
    """Raise a `stripe.StripeError` unless the key may list invoices, which every sync needs."""
    client.v1.invoices.list(params={"limit": 1})


def fetch_invoice(client: stripe.StripeClient, invoice_id: str) -> dict:
    """The invoice as it is now, as a plain dict, with its customer and tax rates expanded and every line
    page read."""
    invoice = client.v1.invoices.retrieve(
        invoice_id, params={"expand": ["customer", "total_taxes.tax_rate_details.tax_rate"]})
    data = invoice.to_dict()
    lines = data.get("lines") or {}
    if lines.get("has_more"):
        all_lines = [line.to_dict() for line in client.v1.invoices.line_items.list(invoice_id, params={"limit": 100}).auto_paging_iter()]
        data["lines"] = {**lines, "data": all_lines, "has_more": False}
    return data
