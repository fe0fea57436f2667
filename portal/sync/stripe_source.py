"""Everything we read from Stripe goes through the official SDK, via a client made here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import stripe

from .http import http_session

DEFAULT_API_BASE = "https://api.stripe.com"
SDK_TIMEOUT_SECONDS = 80  # stripe.RequestsClient's own default


class _RequestsClientCalling(stripe.RequestsClient):
    """The SDK's requests client, calling `before_request` before each request (outside the SDK's own error
    handling, so that what it raises is not taken for a network error)."""

    def __init__(self, before_request: Callable[[], None], **kwargs) -> None:
        super().__init__(**kwargs)
        self.before_request = before_request

    def request_with_retries(self, *args, **kwargs):
        self.before_request()
        return super().request_with_retries(*args, **kwargs)

    def request_stream_with_retries(self, *args, **kwargs):
        self.before_request()
        return super().request_stream_with_retries(*args, **kwargs)


def stripe_client(api_key: str, api_base: str = DEFAULT_API_BASE, max_network_retries: int = 2,
                  timeout: float | tuple[float, float] | None = None,
                  before_request: Callable[[], None] | None = None) -> stripe.StripeClient:
    """A StripeClient for one merchant's key, pointed at `api_base` (a staging server or a test double),
    on this thread's kept HTTP session for that address.

    `timeout` (seconds, or (connect, read)) for reads a person waits on; the SDK's default is 80 s.
    `before_request`: called before every request, e.g. to commit what a run learnt so far.
    """
    options = {"timeout": timeout if timeout is not None else SDK_TIMEOUT_SECONDS, "session": http_session(api_base)}
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=max_network_retries,
        http_client=(_RequestsClientCalling(before_request, **options) if before_request is not None
                     else stripe.RequestsClient(**options)),
    )


def stripe_error_words(error: stripe.StripeError) -> str:
    """Stripe's own message for an error (without the request id), or its kind."""
    return error.user_message or getattr(error, "_message", None) or str(error) or error.__class__.__name__


def key_mode(api_key: str) -> str:
    """'test' or 'live', read from the key's prefix (sk_test_…, rk_live_…)."""
    return "test" if "_test_" in api_key else "live"


INVOICE_EXPAND = ["customer", "total_taxes.tax_rate_details.tax_rate"]
LINES_PAGE = 100


def fetch_invoice(client: stripe.StripeClient, invoice_id: str) -> dict:
    """The invoice as it is now, as plain JSON (decimal amounts stay Stripe's strings), with its customer and
    tax rates expanded and every line page read.

    Read with the SDK's `raw_request`: the same client, key, retries and errors as the typed services,
    without building a StripeObject for every nested object only to turn it back into a dict (that took
    half the CPU of a read).
    """
    data = _get(client, f"/v1/invoices/{invoice_id}", expand=INVOICE_EXPAND)
    lines = data.get("lines") or {}
    if lines.get("has_more"):
        data["lines"] = {**lines, "data": _list_all(client, f"/v1/invoices/{invoice_id}/lines"), "has_more": False}
    return data


def _get(client: stripe.StripeClient, path: str, **params) -> dict:
    return client.raw_request("get", path, **params).data  # parsed by the SDK already (into OrderedDicts)


def _list_all(client: stripe.StripeClient, path: str, **params) -> list[dict]:
    """Every item of a Stripe list, page by page."""
    items: list[dict] = []
    params = {"limit": LINES_PAGE, **params}
    while True:
        page = _get(client, path, **params)
        items.extend(page["data"])
        if not page.get("has_more") or not page["data"]:
            return items
        params["starting_after"] = page["data"][-1]["id"]


def invoice_payments_paid(client: stripe.StripeClient, invoice_id: str) -> list[dict]:
    """The invoice's payments that were paid (InvoicePayment objects, `inpay_…`), oldest first."""
    payments = _list_all(client, "/v1/invoice_payments", invoice=invoice_id, status="paid")
    return sorted(payments, key=lambda payment: payment.get("created") or 0)


def charge_refunds(client: stripe.StripeClient, charge_id: str) -> list[dict]:
    """The refunds of a charge (`re_…`)."""
    return _list_all(client, "/v1/refunds", charge=charge_id)


def created_between(client: stripe.StripeClient, resource: str, start: int, end: int, **filters) -> list[dict]:
    """Every object of a Stripe list (`refunds`, `payouts`, `credit_notes`, …) created in [start, end)."""
    return _list_all(client, f"/v1/{resource}", created={"gte": start, "lt": end}, **filters)


@dataclass(frozen=True)
class InvoiceFacts:
    """What the history shows of a Stripe invoice before (or without) a sync: number, customer, amount."""

    number: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    total_minor: int | None = None
    currency: str | None = None


def invoice_facts_of(invoice: dict) -> InvoiceFacts:
    """The invoice's number, customer and total (nothing known for anything that is not an invoice)."""
    if not isinstance(invoice, dict) or invoice.get("object") not in (None, "invoice"):
        return InvoiceFacts()
    total = invoice.get("total")
    return InvoiceFacts(
        number=invoice.get("number") or None, customer_name=invoice.get("customer_name") or None,
        customer_email=invoice.get("customer_email") or None,
        total_minor=total if isinstance(total, int) and not isinstance(total, bool) else None,
        currency=(invoice.get("currency") or "").upper() or None,
    )


def event_object(payload: str | None) -> dict:
    """The Stripe object a stored event's payload carries (data.object); {} once the payload was pruned ("")
    or when it is not a Stripe event."""
    try:
        obj = (json.loads(payload or "{}").get("data") or {}).get("object")
    except (ValueError, AttributeError):
        return {}
    return obj if isinstance(obj, dict) else {}
