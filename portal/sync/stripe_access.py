"""What a Stripe key can do: the account it belongs to and the reads the sync needs, asked of Stripe once each
(a list of one object). A restricted key (rk_…) may lack some; Stripe answers those with a 403 naming the
permission, and the merchant is told which in plain words."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import stripe

from .stripe_source import stripe_error_words

# (resource, what the merchant calls it, when it is needed)
ALWAYS = "always"
ACCESS_NEEDED: tuple[tuple[str, str, str], ...] = (
    ("invoices", "Invoices (read)", ALWAYS),
    ("customers", "Customers (read)", ALWAYS),
    ("products", "Products (read)", ALWAYS),
    ("tax_rates", "Tax rates (read)", ALWAYS),
    ("invoice_payments", "Invoice payments (read)", "payments_enabled"),
    ("charges", "Charges (read)", "refunds_enabled"),
    ("refunds", "Refunds (read)", "refunds_enabled"),
    ("credit_notes", "Credit notes (read)", "credit_notes_enabled"),
    ("payouts", "Payouts (read)", "payouts_enabled"),
    ("balance_transactions", "Balance transactions (read)", "payouts_enabled"),
    ("webhook_endpoints", "Webhook endpoints (to create the endpoint for you)", ALWAYS),
)


@dataclass
class KeyAccess:
    """What Stripe said of a key. `refused`: the key itself was refused (the message says why); `missing`:
    the reads a restricted key lacks, by the merchant's name for them."""

    refused: str | None = None
    account_ref: str | None = None
    account_name: str | None = None
    livemode: bool | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.refused is None and not self.missing


def key_access(client: stripe.StripeClient, secret_key: str, enabled: set[str]) -> KeyAccess:
    """Ask Stripe what the key can do. `enabled`: the journal settings turned on (payments_enabled, …), whose
    reads are needed too. Raises nothing for refusals: they are in the result."""
    access = KeyAccess(livemode=not ("_test_" in secret_key))
    try:
        account = json.loads(client.raw_request("get", "/v1/account").body)
    except stripe.PermissionError:
        account = None  # a restricted key without account access: the rest still tells what it can do
    except stripe.StripeError as error:
        access.refused = stripe_error_words(error)
        return access
    if account is not None:
        access.account_ref = account.get("id")
        profile = account.get("business_profile") or {}
        dashboard = (account.get("settings") or {}).get("dashboard") or {}
        access.account_name = profile.get("name") or dashboard.get("display_name")
    for resource, words, needed_when in ACCESS_NEEDED:
        if needed_when != ALWAYS and needed_when not in enabled:
            continue
        try:
            client.raw_request("get", f"/v1/{resource}", limit=1)
        except stripe.PermissionError:
            access.missing.append(words)
        except stripe.AuthenticationError as error:
            access.refused = stripe_error_words(error)
            return access
    return access
